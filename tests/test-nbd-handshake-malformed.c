/* Malformed and truncated handshakes: each bad client gets the reply the
 * NBD spec names, or is disconnected, and is counted; a good client after
 * it still negotiates and moves data. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nbd-test-client.h"

static struct server *s;

static int setup (void **state) { s = server_new (1 << 20, false); return 0; }
static int teardown (void **state) { server_free (s); return 0; }

/* The server closed the connection: the next read sees EOF, or a reset
 * when the server closed with our bytes still unread. */
static void
assert_closed (int fd)
{
  uint8_t b;
  ssize_t r = recv (fd, &b, 1, 0);
  assert_true (r == 0 || (r == -1 && errno == ECONNRESET));
}

static void
good_client_still_works (void)
{
  int fd = client_new (s);
  uint8_t w[4096], r[4096];
  negotiate (fd, true);
  memset (w, 0x3c, sizeof w);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_WRITE, 0, 8192, sizeof w, w, NULL), 0);
  assert_int_equal (roundtrip (fd, true, NBD_CMD_READ, 0, 8192, sizeof r, NULL, r), 0);
  assert_memory_equal (r, w, sizeof w);
  close (fd);
}

static uint64_t
handshake_failures (void)
{
  struct nbd_server_stats st;
  nbd_server_get_stats (s->srv, &st);
  return st.handshake_failures;
}

static void
a_client_without_fixed_newstyle_is_dropped (void **state)
{
  int fd = client_new (s);
  greet (fd, 0);
  assert_closed (fd);
  close (fd);
  fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE | 0x80);        /* unknown flag */
  assert_closed (fd);
  close (fd);
  usleep (100000);
  assert_int_equal (handshake_failures (), 2);
  good_client_still_works ();
}

static void
a_truncated_option_header_and_garbage_are_dropped (void **state)
{
  int fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  uint8_t half[8] = { 'I', 'H', 'A', 'V' };
  tx (fd, half, 4);
  close (fd);                                          /* hang up mid-header */
  fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  uint8_t junk[64];
  memset (junk, 0x5a, sizeof junk);
  tx (fd, junk, sizeof junk);                          /* bad option magic */
  assert_closed (fd);
  close (fd);
  usleep (100000);
  assert_true (handshake_failures () >= 2);
  good_client_still_works ();
}

static void
a_huge_option_length_is_dropped_without_reading_it (void **state)
{
  int fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  uint8_t h[16];
  be_put64 (h, NBD_IHAVEOPT);
  be_put32 (h + 8, NBD_OPT_GO);
  be_put32 (h + 12, 0x7fffffff);
  tx (fd, h, 16);
  assert_closed (fd);
  close (fd);
  good_client_still_works ();
}

static void
export_name_of_an_unknown_export_disconnects (void **state)
{
  int fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  send_opt (fd, NBD_OPT_EXPORT_NAME, "nope", 4);
  assert_closed (fd);
  close (fd);
  /* The right name works, with the 124 zero bytes when not declined. */
  fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  send_opt (fd, NBD_OPT_EXPORT_NAME, "disk", 4);
  uint8_t d[134];
  assert_int_equal (rx (fd, d, sizeof d), 0);
  assert_true (be_get64 (d) == 1 << 20);
  assert_true (be_get16 (d + 8) & NBD_FLAG_HAS_FLAGS);
  for (int i = 10; i < 134; i++)
    assert_int_equal (d[i], 0);
  close (fd);
}

static void
info_with_a_name_longer_than_the_option_is_invalid (void **state)
{
  int fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  uint8_t d[10];
  be_put32 (d, 100);                                       /* name length 100 in a 10-byte option */
  memcpy (d + 4, "disk", 4);
  be_put16 (d + 8, 0);
  send_opt (fd, NBD_OPT_INFO, d, sizeof d);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_INFO, NULL, 0, NULL), NBD_REP_ERR_INVALID);
  /* Unknown export name in GO. */
  be_put32 (d, 4);
  memcpy (d + 4, "nope", 4);
  send_opt (fd, NBD_OPT_GO, d, sizeof d);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_GO, NULL, 0, NULL), NBD_REP_ERR_UNKNOWN);
  close (fd);
}

static void
unknown_option_is_unsupported_and_negotiation_goes_on (void **state)
{
  int fd = client_new (s);
  uint8_t payload[100] = { 0 }, r[512], w[512];
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  send_opt (fd, 0x1234, payload, sizeof payload);
  assert_int_equal (read_opt_reply (fd, 0x1234, NULL, 0, NULL), NBD_REP_ERR_UNSUP);
  send_opt (fd, NBD_OPT_STARTTLS, NULL, 0);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_STARTTLS, NULL, 0, NULL), NBD_REP_ERR_POLICY);
  send_opt (fd, NBD_OPT_STRUCTURED_REPLY, "x", 1);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL), NBD_REP_ERR_INVALID);
  uint8_t q[12];
  be_put32 (q, 4); memcpy (q + 4, "disk", 4); be_put32 (q + 8, 0);
  send_opt (fd, NBD_OPT_SET_META_CONTEXT, q, sizeof q);   /* before STRUCTURED_REPLY */
  assert_int_equal (read_opt_reply (fd, NBD_OPT_SET_META_CONTEXT, NULL, 0, NULL), NBD_REP_ERR_INVALID);
  /* LIST names the export. */
  uint8_t l[64];
  uint32_t len;
  send_opt (fd, NBD_OPT_LIST, NULL, 0);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_LIST, l, sizeof l, &len), NBD_REP_SERVER);
  assert_int_equal (be_get32 (l), 4);
  assert_memory_equal (l + 4, "disk", 4);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_LIST, NULL, 0, NULL), NBD_REP_ACK);
  /* LIST_META_CONTEXT with an empty query lists base:allocation. */
  send_opt (fd, NBD_OPT_LIST_META_CONTEXT, q, sizeof q);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_LIST_META_CONTEXT, l, sizeof l, &len), NBD_REP_META_CONTEXT);
  assert_memory_equal (l + 4, "base:allocation", 15);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_LIST_META_CONTEXT, NULL, 0, NULL), NBD_REP_ACK);
  /* Then GO, simple replies, data. */
  uint8_t go[10];
  be_put32 (go, 4); memcpy (go + 4, "disk", 4); be_put16 (go + 8, 0);
  send_opt (fd, NBD_OPT_GO, go, sizeof go);
  uint32_t t;
  bool block_size = false;
  while ((t = read_opt_reply (fd, NBD_OPT_GO, l, sizeof l, &len)) == NBD_REP_INFO)
    if (be_get16 (l) == NBD_INFO_BLOCK_SIZE) {
      block_size = true;
      assert_int_equal (be_get32 (l + 2), 512);
      assert_int_equal (be_get32 (l + 6), 4096);
      assert_int_equal (be_get32 (l + 10), NBD_MAX_PAYLOAD);
    }
  assert_int_equal (t, NBD_REP_ACK);
  assert_true (block_size);
  memset (w, 7, sizeof w);
  assert_int_equal (roundtrip (fd, false, NBD_CMD_WRITE, 0, 0, 512, w, NULL), 0);
  assert_int_equal (roundtrip (fd, false, NBD_CMD_READ, 0, 0, 512, NULL, r), 0);
  assert_memory_equal (r, w, 512);
  close (fd);
}

static void
abort_is_acknowledged_then_closed (void **state)
{
  int fd = client_new (s);
  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE);
  send_opt (fd, NBD_OPT_ABORT, NULL, 0);
  assert_int_equal (read_opt_reply (fd, NBD_OPT_ABORT, NULL, 0, NULL), NBD_REP_ACK);
  assert_closed (fd);
  close (fd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (a_client_without_fixed_newstyle_is_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (a_truncated_option_header_and_garbage_are_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (a_huge_option_length_is_dropped_without_reading_it, setup, teardown),
    cmocka_unit_test_setup_teardown (export_name_of_an_unknown_export_disconnects, setup, teardown),
    cmocka_unit_test_setup_teardown (info_with_a_name_longer_than_the_option_is_invalid, setup, teardown),
    cmocka_unit_test_setup_teardown (unknown_option_is_unsupported_and_negotiation_goes_on, setup, teardown),
    cmocka_unit_test_setup_teardown (abort_is_acknowledged_then_closed, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
