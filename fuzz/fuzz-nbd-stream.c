/* libFuzzer target: an arbitrary byte stream from a client, from the
 * first byte of the handshake on, into a server over a socketpair.  The
 * server must survive it, clean the connection up, and leave no command or
 * vector out.  A fuzz input that starts with 'G' gets a valid handshake
 * (with structured replies) prepended, so that the transmission phase is
 * reached too. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "be.h"
#include "cache.h"
#include "log.h"
#include "nbd.h"

static struct store *store;
static struct sgv_pool *sgv;
static struct scsi_cmd_pool *cmds;
static struct scsi_lu *lu;
static struct blkio io;
static struct nbd_export exp;
static struct nbd_server *srv;

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
setup (void)
{
  struct sgv_pool_config sc = { .name = "fuzz" };
  log_init ("fuzz", false, -1);
  store = cache_create (&(struct cache_config) { .size = 1 << 20 });
  sgv = sgv_pool_create (&sc);
  cmds = scsi_cmd_pool_create (NULL);
  struct scsi_lu_config lc = { .store = store, .sgv = sgv, .block_size = 512 };
  lu = scsi_lu_create (&lc);
  blkio_init (&io, lu, sgv);
  exp = (struct nbd_export) { .name = "", .lu = lu, .cmds = cmds, .sgv = sgv, .io = &io };
  struct nbd_server_config nc = { .threads = 2, .exports = &exp, .nexports = 1 };
  srv = nbd_server_create (&nc);
  nbd_server_start (srv);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int sv[2];
  uint8_t pre[64];
  size_t npre = 0;
  char drain[65536];

  if (srv == NULL)
    setup ();
  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1)
    return 0;
  struct nbd_server_stats before;
  nbd_server_get_stats (srv, &before);
  if (nbd_server_add_connection (srv, sv[0]) == -1) {
    close (sv[1]);
    return 0;
  }
  if (size > 0 && data[0] == 'G') {      /* flags, STRUCTURED_REPLY, GO "" */
    be_put32 (pre, 3);
    memcpy (pre + 4, "IHAVEOPT", 8); be_put32 (pre + 12, 8); be_put32 (pre + 16, 0);
    memcpy (pre + 20, "IHAVEOPT", 8); be_put32 (pre + 28, 7); be_put32 (pre + 32, 6);
    be_put32 (pre + 36, 0); pre[40] = 0; pre[41] = 0;
    npre = 42;
    data++;
    size--;
  }
  if (npre)
    send (sv[1], pre, npre, MSG_NOSIGNAL);
  if (size)
    send (sv[1], data, size, MSG_NOSIGNAL);
  shutdown (sv[1], SHUT_WR);
  /* Read whatever the server says until it closes: it must close. */
  while (recv (sv[1], drain, sizeof drain, 0) > 0)
    ;
  close (sv[1]);
  for (int i = 0; i < 10000; i++) {
    struct nbd_server_stats st;
    nbd_server_get_stats (srv, &st);
    if (st.connections_open == 0)
      break;
    usleep (100);
  }
  struct nbd_server_stats st;
  struct scsi_pool_stats cp;
  struct sgv_stats vs;
  nbd_server_get_stats (srv, &st);
  scsi_cmd_pool_get_stats (cmds, &cp);
  sgv_pool_get_stats (sgv, &vs);
  if (st.connections_open != 0 || cp.in_use != 0 || vs.in_use != 0 ||
      st.cleanup_stuck != before.cleanup_stuck)
    abort ();
  return 0;
}
