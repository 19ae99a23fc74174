/* Shared by the NBD fuzz targets: one server on a 1 MiB in-memory disk
 * (512-byte blocks, the size the seed corpus was recorded against) with
 * two exports, "" and the read-only "ro"; a conversation over a
 * socketpair; and the check that a closed connection gave everything
 * back.
 *
 * The conversation sends and receives at once (poll), so an input that
 * asks for more replies than the socket buffers hold cannot deadlock the
 * client against a server whose sender waits for it to read.  Each
 * received chunk goes to a callback, so a target may check the replies
 * without keeping them. */
#ifndef SGBLK_FUZZ_NBD_HARNESS_H
#define SGBLK_FUZZ_NBD_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "be.h"
#include "cache.h"
#include "log.h"
#include "nbd.h"

#define FUZZ_DISK_SIZE (1u << 20)

static struct nbd_server *fuzz_srv;
static struct scsi_cmd_pool *fuzz_cmds;
static struct sgv_pool *fuzz_sgv;

static void
fuzz_nbd_setup (void)
{
  static struct blkio io;
  static struct nbd_export exps[2];
  struct sgv_pool_config sc = { .name = "fuzz" };

  if (fuzz_srv != NULL)
    return;
  log_init ("fuzz", false, -1);
  struct store *store = cache_create (&(struct cache_config) { .size = FUZZ_DISK_SIZE });
  fuzz_sgv = sgv_pool_create (&sc);
  fuzz_cmds = scsi_cmd_pool_create (NULL);
  struct scsi_lu_config lc = { .store = store, .sgv = fuzz_sgv, .block_size = 512 };
  struct scsi_lu *lu = scsi_lu_create (&lc);
  if (store == NULL || fuzz_sgv == NULL || fuzz_cmds == NULL || lu == NULL)
    abort ();
  blkio_init (&io, lu, fuzz_sgv);
  exps[0] = (struct nbd_export) { .name = "", .lu = lu, .cmds = fuzz_cmds,
                                  .sgv = fuzz_sgv, .io = &io };
  exps[1] = exps[0];
  exps[1].name = "ro";
  exps[1].description = "the same disk, read-only";
  exps[1].read_only = true;
  struct nbd_server_config nc = { .threads = 2, .exports = exps, .nexports = 2 };
  fuzz_srv = nbd_server_create (&nc);
  if (fuzz_srv == NULL || nbd_server_start (fuzz_srv) == -1)
    abort ();
}

/* Called with each piece of the server's bytes, in order. */
typedef void (*fuzz_rx_fn) (void *opaque, const uint8_t *p, size_t n);

/* Send pre then data to a new connection, then end the client's side;
 * read (passing to rx) until the server closes.  Aborts if anything the
 * connection took stays out after it closed. */
static void
fuzz_nbd_converse (const uint8_t *pre, size_t npre, const uint8_t *data, size_t size,
                   fuzz_rx_fn rx, void *opaque)
{
  int sv[2];
  static uint8_t buf[65536];
  struct nbd_server_stats before;

  fuzz_nbd_setup ();
  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1)
    return;
  nbd_server_get_stats (fuzz_srv, &before);
  if (nbd_server_add_connection (fuzz_srv, sv[0]) == -1) {
    close (sv[1]);
    return;
  }
  fcntl (sv[1], F_SETFL, O_NONBLOCK);
  size_t sent = 0, total = npre + size;
  bool wr_open = true;
  for (;;) {
    if (wr_open && sent == total) {
      shutdown (sv[1], SHUT_WR);
      wr_open = false;
    }
    struct pollfd pf = { sv[1], POLLIN | (wr_open ? POLLOUT : 0), 0 };
    if (poll (&pf, 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      abort ();
    }
    if (pf.revents & POLLIN || pf.revents & (POLLHUP | POLLERR)) {
      ssize_t r = recv (sv[1], buf, sizeof buf, 0);
      if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR))
        break;
      if (r > 0 && rx)
        rx (opaque, buf, (size_t) r);
    }
    if (wr_open && (pf.revents & POLLOUT)) {
      const uint8_t *p = sent < npre ? pre + sent : data + (sent - npre);
      size_t n = sent < npre ? npre - sent : total - sent;
      ssize_t w = send (sv[1], p, n, MSG_NOSIGNAL);
      if (w > 0)
        sent += (size_t) w;
      else if (w == -1 && errno != EAGAIN && errno != EINTR)
        sent = total;                  /* the server closed; stop sending */
    }
  }
  close (sv[1]);
  for (int i = 0; i < 10000; i++) {
    struct nbd_server_stats st;
    nbd_server_get_stats (fuzz_srv, &st);
    if (st.connections_open == 0)
      break;
    usleep (100);
  }
  struct nbd_server_stats st;
  struct scsi_pool_stats cp;
  struct sgv_stats vs;
  nbd_server_get_stats (fuzz_srv, &st);
  scsi_cmd_pool_get_stats (fuzz_cmds, &cp);
  sgv_pool_get_stats (fuzz_sgv, &vs);
  if (st.connections_open != 0 || cp.in_use != 0 || vs.in_use != 0 ||
      st.cleanup_stuck != before.cleanup_stuck)
    abort ();
}

#endif
