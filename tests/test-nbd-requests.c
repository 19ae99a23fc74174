/* The transmission phase, driven with raw requests: data round trips,
 * structured replies (data, holes, block status, errors), the error codes
 * the spec names, unaligned requests, pipelining, a client that vanishes
 * mid-payload, and a server stop with requests in flight. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "nbd-test-client.h"

#define SIZE (8u << 20)
static struct server *s;
static int fd;

static int
setup (void **state)
{
  s = server_new (SIZE, false);
  fd = client_new (s);
  negotiate (fd, true);
  return 0;
}

static int
teardown (void **state)
{
  close (fd);
  server_free (s);
  return 0;
}

static void
fill (uint8_t *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t) (seed + i * 13 + (i >> 8));
}

static void
write_then_read_round_trips_and_zeroes_come_back_as_a_hole (void **state)
{
  static uint8_t w[1 << 20], r[1 << 20];
  struct reply rep;

  fill (w, sizeof w, 1);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, 4096, sizeof w, w, NULL), 0);
  request (fd, NBD_CMD_READ, 0, 7, 4096, sizeof r, NULL);
  assert_int_equal (read_reply (fd, true, r, sizeof r, &rep), 0);
  assert_int_equal (rep.type, NBD_REPLY_TYPE_OFFSET_DATA);
  assert_memory_equal (r, w, sizeof w);
  /* Never-written space reads as one hole chunk, also with DF. */
  memset (r, 0xff, 65536);
  request (fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 8, 4u << 20, 65536, NULL);
  assert_int_equal (read_reply (fd, true, r, 65536, &rep), 0);
  assert_true (rep.hole);
  for (int i = 0; i < 65536; i++)
    assert_int_equal (r[i], 0);
}

static void
fua_flush_trim_zero_and_cache_succeed_with_the_right_data (void **state)
{
  uint8_t w[65536], r[65536];

  fill (w, sizeof w, 2);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, sizeof w, w, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_TRIM, 0, 0, 16384, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, 0, 16384, 16384, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA,
                               32768, 8192, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 40960, 4096, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_CACHE, 0, 0, SIZE, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, sizeof r, NULL, r), 0);
  for (size_t i = 0; i < sizeof r; i++)
    assert_int_equal (r[i], i < 45056 ? 0 : w[i]);
}

static void
block_status_shows_holes_after_trim_and_data_after_write (void **state)
{
  uint8_t w[8192];
  struct reply rep;

  fill (w, sizeof w, 3);
  roundtrip (fd, true, NBD_CMD_WRITE, 0, 65536, sizeof w, w, NULL);
  request (fd, NBD_CMD_BLOCK_STATUS, 0, 9, 0, 1 << 20, NULL);
  assert_int_equal (read_reply (fd, true, NULL, 0, &rep), 0);
  assert_int_equal (rep.type, NBD_REPLY_TYPE_BLOCK_STATUS);
  assert_int_equal (rep.nextents, 3);
  assert_int_equal (rep.extents[0], 65536);  assert_int_equal (rep.extents[1], 3);
  assert_int_equal (rep.extents[2], 8192);   assert_int_equal (rep.extents[3], 0);
  assert_int_equal (rep.extents[4], (1 << 20) - 65536 - 8192);
  assert_int_equal (rep.extents[5], 3);
  /* REQ_ONE: exactly one extent. */
  request (fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 10, 65536, 1 << 20, NULL);
  assert_int_equal (read_reply (fd, true, NULL, 0, &rep), 0);
  assert_int_equal (rep.nextents, 1);
  assert_int_equal (rep.extents[0], 8192);
  assert_int_equal (rep.extents[1], 0);
  /* After a trim, a hole. */
  roundtrip (fd, true, NBD_CMD_TRIM, 0, 65536, 8192, NULL, NULL);
  request (fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 11, 65536, 8192, NULL);
  assert_int_equal (read_reply (fd, true, NULL, 0, &rep), 0);
  assert_int_equal (rep.extents[1], 3);
}

static void
whole_device_trim_and_zero_in_one_request_succeed (void **state)
{
  uint8_t w[4096], r[4096];

  fill (w, sizeof w, 4);
  roundtrip (fd, true, NBD_CMD_WRITE, 0, SIZE - 4096, sizeof w, w, NULL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_TRIM, 0, 0, SIZE, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, SIZE - 4096, 4096, NULL, r), 0);
  for (int i = 0; i < 4096; i++) assert_int_equal (r[i], 0);
  roundtrip (fd, true, NBD_CMD_WRITE, 0, 0, sizeof w, w, NULL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, 0, 0, SIZE, NULL, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, 4096, NULL, r), 0);
  for (int i = 0; i < 4096; i++) assert_int_equal (r[i], 0);
}

static void
requests_past_the_end_get_enospc_for_writes_and_einval_for_reads (void **state)
{
  uint8_t w[4096] = { 1 }, r[4096];

  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, SIZE, sizeof w, w, NULL), NBD_ENOSPC);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, SIZE - 512, sizeof w, w, NULL), NBD_ENOSPC);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, 0, SIZE - 512, 4096, NULL, NULL), NBD_ENOSPC);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_TRIM, 0, UINT64_MAX - 10, 4096, NULL, NULL), NBD_ENOSPC);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, SIZE, sizeof r, NULL, r), NBD_EINVAL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, UINT64_MAX - 10, sizeof r, NULL, r), NBD_EINVAL);
  /* Simple replies carry the same errors. */
  int sfd = client_new (s);
  negotiate (sfd, false);
  assert_int_equal (roundtrip (sfd, false, NBD_CMD_WRITE, 0, SIZE, sizeof w, w, NULL), NBD_ENOSPC);
  assert_int_equal (roundtrip (sfd, false, NBD_CMD_READ, 0, SIZE, sizeof r, NULL, r), NBD_EINVAL);
  assert_int_equal (roundtrip (sfd, false, NBD_CMD_WRITE, 0, 0, sizeof w, w, NULL), 0);
  assert_int_equal (roundtrip (sfd, false, NBD_CMD_READ, 0, 0, sizeof r, NULL, r), 0);
  assert_memory_equal (r, w, sizeof w);
  close (sfd);
}

static void
unaligned_write_is_exact_and_leaves_neighbours_intact (void **state)
{
  uint8_t base[8192], w[1000], r[8192];

  fill (base, sizeof base, 5);
  fill (w, sizeof w, 99);
  roundtrip (fd, true, NBD_CMD_WRITE, 0, 0, sizeof base, base, NULL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, 1, sizeof w, w, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE_ZEROES, 0, 3000, 77, NULL, NULL), 0);
  memcpy (base + 1, w, sizeof w);
  memset (base + 3000, 0, 77);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, sizeof r, NULL, r), 0);
  assert_memory_equal (r, base, sizeof r);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 3, 5, NULL, r), 0);
  assert_memory_equal (r, base + 3, 5);
}

static void
oversized_requests_are_refused_and_the_stream_stays_in_step (void **state)
{
  static uint8_t big[NBD_MAX_PAYLOAD + 4096];
  uint8_t r[512];

  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 512, NULL, NULL), NBD_EINVAL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, NBD_MAX_PAYLOAD + 512, NULL, NULL),
                    NBD_EOVERFLOW);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, 0, sizeof big, big, NULL), NBD_EINVAL);
  /* The payload was consumed: the next request is understood. */
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, 512, NULL, r), 0);
  assert_int_equal (roundtrip (fd, true, 99, 0, 0, 512, NULL, NULL), NBD_EINVAL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0x4000, 0, 512, NULL, r), NBD_EINVAL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_FLUSH, NBD_CMD_FLAG_DF, 0, 0, NULL, NULL), NBD_EINVAL);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, 0, NULL, r), NBD_EINVAL);
}

static void
a_read_only_export_refuses_write_type_commands (void **state)
{
  struct server *ro = server_new (1 << 20, true);
  int rfd = client_new (ro);
  uint8_t w[512] = { 9 }, r[512];
  uint16_t flags = negotiate (rfd, true);

  assert_true (flags & NBD_FLAG_READ_ONLY);
  assert_int_equal (roundtrip (rfd, true, NBD_CMD_WRITE, 0, 0, 512, w, NULL), NBD_EPERM);
  assert_int_equal (roundtrip (rfd, true, NBD_CMD_TRIM, 0, 0, 512, NULL, NULL), NBD_EPERM);
  assert_int_equal (roundtrip (rfd, true, NBD_CMD_WRITE_ZEROES, 0, 0, 512, NULL, NULL), NBD_EPERM);
  assert_int_equal (roundtrip (rfd, true, NBD_CMD_READ, 0, 0, 512, NULL, r), 0);
  close (rfd);
  server_free (ro);
}

static void
sixteen_pipelined_requests_all_get_their_replies (void **state)
{
  static uint8_t w[16][8192];
  uint8_t r[8192];
  bool seen[16] = { false };
  struct reply rep;

  for (int i = 0; i < 16; i++) {
    fill (w[i], sizeof w[i], (unsigned) i + 50);
    request (fd, NBD_CMD_WRITE, 0, 100 + (uint64_t) i, (uint64_t) i * 8192, sizeof w[i], w[i]);
  }
  for (int i = 0; i < 16; i++) {
    assert_int_equal (read_reply (fd, true, NULL, 0, &rep), 0);
    assert_true (rep.cookie >= 100 && rep.cookie < 116);
    assert_false (seen[rep.cookie - 100]);
    seen[rep.cookie - 100] = true;
    assert_int_equal (rep.error, 0);
  }
  for (int i = 0; i < 16; i++) {
    assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, (uint64_t) i * 8192, sizeof r, NULL, r), 0);
    assert_memory_equal (r, w[i], sizeof r);
  }
}

static void
a_client_vanishing_mid_payload_is_cleaned_up_and_costs_others_nothing (void **state)
{
  uint8_t w[65536], r[65536], half[32768];
  struct nbd_server_stats st;
  struct scsi_pool_stats cp;
  struct sgv_stats sv;

  fill (w, sizeof w, 6);
  roundtrip (fd, true, NBD_CMD_WRITE, 0, 0, sizeof w, w, NULL);
  for (int k = 0; k < 5; k++) {
    int vfd = client_new (s);
    negotiate (vfd, true);
    request (vfd, NBD_CMD_WRITE, 0, 1, 0, sizeof w, NULL);
    memset (half, 0xee, sizeof half);
    tx (vfd, half, sizeof half);
    close (vfd);
  }
  /* Wait for the five cleanups. */
  for (int i = 0; i < 100; i++) {
    nbd_server_get_stats (s->srv, &st);
    if (st.connections_open == 1)
      break;
    usleep (20000);
  }
  assert_int_equal (st.connections_open, 1);
  assert_int_equal (st.cleanup_stuck, 0);
  scsi_cmd_pool_get_stats (s->cmds, &cp);
  sgv_pool_get_stats (s->sgv, &sv);
  assert_int_equal (cp.in_use, 0);
  assert_int_equal (sv.in_use, 0);
  assert_int_equal (sv.cached, 0);          /* cleanup flushed the pool */
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 0, sizeof r, NULL, r), 0);
  assert_memory_equal (r, w, sizeof r);
}

struct stopper { struct nbd_server *srv; };
static void *
stop_server (void *p)
{
  nbd_server_stop (((struct stopper *) p)->srv);
  return NULL;
}

static void
stop_with_writes_in_flight_keeps_every_acknowledged_write (void **state)
{
  static uint8_t w[64][16384];
  uint8_t r[16384];
  struct reply rep;
  bool acked[64] = { false };
  struct stopper st = { s->srv };
  pthread_t t;

  for (int i = 0; i < 64; i++) {
    fill (w[i], sizeof w[i], (unsigned) i * 3 + 1);
    request (fd, NBD_CMD_WRITE, 0, (uint64_t) i, (uint64_t) i * 16384, sizeof w[i], w[i]);
  }
  pthread_create (&t, NULL, stop_server, &st);
  while (read_reply (fd, true, NULL, 0, &rep) == 0)
    if (rep.error == 0 && rep.cookie < 64)
      acked[rep.cookie] = true;
  pthread_join (t, NULL);
  int n = 0;
  for (int i = 0; i < 64; i++) {
    if (!acked[i])
      continue;
    n++;
    struct iovec iov = { r, sizeof r };
    assert_int_equal (store_pread (s->store, &iov, 1, (uint64_t) i * 16384), 0);
    assert_memory_equal (r, w[i], sizeof r);
  }
  assert_true (n > 0);
  printf ("%d of 64 writes acknowledged before the stop, all on the store\n", n);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (write_then_read_round_trips_and_zeroes_come_back_as_a_hole, setup, teardown),
    cmocka_unit_test_setup_teardown (fua_flush_trim_zero_and_cache_succeed_with_the_right_data, setup, teardown),
    cmocka_unit_test_setup_teardown (block_status_shows_holes_after_trim_and_data_after_write, setup, teardown),
    cmocka_unit_test_setup_teardown (whole_device_trim_and_zero_in_one_request_succeed, setup, teardown),
    cmocka_unit_test_setup_teardown (requests_past_the_end_get_enospc_for_writes_and_einval_for_reads, setup, teardown),
    cmocka_unit_test_setup_teardown (unaligned_write_is_exact_and_leaves_neighbours_intact, setup, teardown),
    cmocka_unit_test_setup_teardown (oversized_requests_are_refused_and_the_stream_stays_in_step, setup, teardown),
    cmocka_unit_test_setup_teardown (a_read_only_export_refuses_write_type_commands, setup, teardown),
    cmocka_unit_test_setup_teardown (sixteen_pipelined_requests_all_get_their_replies, setup, teardown),
    cmocka_unit_test_setup_teardown (a_client_vanishing_mid_payload_is_cleaned_up_and_costs_others_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown (stop_with_writes_in_flight_keeps_every_acknowledged_write, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
