/* A raw NBD client for the front-end's unit tests: it talks to a server
 * over a socketpair handed to nbd_server_add_connection, so tests can send
 * exactly the bytes they want, well-formed or not. */
#ifndef SGBLK_NBD_TEST_CLIENT_H
#define SGBLK_NBD_TEST_CLIENT_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "be.h"
#include "cache.h"
#include "nbd.h"
#include "../src/nbd/protocol.h"

struct server {
  struct store *store;
  struct sgv_pool *sgv;
  struct scsi_cmd_pool *cmds;
  struct scsi_lu *lu;
  struct blkio io;
  struct nbd_export exp;
  struct nbd_server *srv;
};

static inline struct server *
server_new (uint64_t size, bool read_only)
{
  struct server *s = calloc (1, sizeof *s);
  struct sgv_pool_config sc = { .name = "t" };
  s->store = cache_create (&(struct cache_config) { .size = size });
  s->sgv = sgv_pool_create (&sc);
  s->cmds = scsi_cmd_pool_create (NULL);
  struct scsi_lu_config lc = { .store = s->store, .sgv = s->sgv, .block_size = 512,
                               .read_only = read_only };
  s->lu = scsi_lu_create (&lc);
  blkio_init (&s->io, s->lu, s->sgv);
  s->exp = (struct nbd_export) { .name = "disk", .description = "test disk", .lu = s->lu,
                                 .cmds = s->cmds, .sgv = s->sgv, .io = &s->io,
                                 .read_only = read_only };
  struct nbd_server_config nc = { .threads = 2, .exports = &s->exp, .nexports = 1 };
  s->srv = nbd_server_create (&nc);
  nbd_server_start (s->srv);
  return s;
}

static inline void
server_free (struct server *s)
{
  nbd_server_stop (s->srv);
  nbd_server_destroy (s->srv);
  blkio_fini (&s->io);
  scsi_lu_destroy (s->lu);
  assert_int_equal (scsi_cmd_pool_destroy (s->cmds), 0);
  assert_int_equal (sgv_pool_destroy (s->sgv), 0);
  store_close (s->store);
  free (s);
}

/* A new client socket connected to the server. */
static inline int
client_new (struct server *s)
{
  int sv[2];
  struct timeval tv = { .tv_sec = 10 };
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  setsockopt (sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);   /* never hang a test */
  assert_int_equal (nbd_server_add_connection (s->srv, sv[0]), 0);
  return sv[1];
}

static inline int
rx (int fd, void *buf, size_t n)
{
  uint8_t *p = buf;
  while (n) {
    ssize_t r = recv (fd, p, n, 0);
    if (r <= 0) return -1;
    p += r; n -= (size_t) r;
  }
  return 0;
}

static inline void
tx (int fd, const void *buf, size_t n)
{
  assert_int_equal (send (fd, buf, n, MSG_NOSIGNAL), (ssize_t) n);
}


/* Read the greeting and send client flags. */
static inline void
greet (int fd, uint32_t cflags)
{
  uint8_t g[18], f[4];
  assert_int_equal (rx (fd, g, 18), 0);
  assert_true (be_get64 (g) == NBD_MAGIC);
  assert_true (be_get64 (g + 8) == NBD_IHAVEOPT);
  be_put32 (f, cflags);
  tx (fd, f, 4);
}

static inline void
send_opt (int fd, uint32_t opt, const void *data, uint32_t len)
{
  uint8_t h[16];
  be_put64 (h, NBD_IHAVEOPT);
  be_put32 (h + 8, opt);
  be_put32 (h + 12, len);
  tx (fd, h, 16);
  if (len) tx (fd, data, len);
}

/* One option reply; returns its type, the payload in data (up to max). */
static inline uint32_t
read_opt_reply (int fd, uint32_t opt, void *data, uint32_t max, uint32_t *len)
{
  uint8_t h[20], junk[256];
  assert_int_equal (rx (fd, h, 20), 0);
  assert_true (be_get64 (h) == NBD_REP_MAGIC);
  assert_int_equal (be_get32 (h + 8), opt);
  uint32_t l = be_get32 (h + 16);
  if (len) *len = l;
  for (uint32_t got = 0; got < l; ) {
    uint32_t m = l - got;
    if (data && got < max) { if (m > max - got) m = max - got; assert_int_equal (rx (fd, (uint8_t *) data + got, m), 0); }
    else { if (m > sizeof junk) m = sizeof junk; assert_int_equal (rx (fd, junk, m), 0); }
    got += m;
  }
  return be_get32 (h + 12);
}

/* Full negotiation: STRUCTURED_REPLY and base:allocation if asked, then
 * GO on "disk".  Returns the transmission flags. */
static inline uint16_t
negotiate (int fd, bool structured)
{
  uint8_t d[64];
  uint32_t t, len;
  uint16_t flags = 0;

  greet (fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  if (structured) {
    send_opt (fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    assert_int_equal (read_opt_reply (fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL), NBD_REP_ACK);
    uint8_t q[4 + 4 + 4 + 4 + 15];
    be_put32 (q, 4); memcpy (q + 4, "disk", 4); be_put32 (q + 8, 1); be_put32 (q + 12, 15);
    memcpy (q + 16, "base:allocation", 15);
    send_opt (fd, NBD_OPT_SET_META_CONTEXT, q, sizeof q);
    assert_int_equal (read_opt_reply (fd, NBD_OPT_SET_META_CONTEXT, d, sizeof d, NULL), NBD_REP_META_CONTEXT);
    assert_int_equal (be_get32 (d), 1);
    assert_int_equal (read_opt_reply (fd, NBD_OPT_SET_META_CONTEXT, NULL, 0, NULL), NBD_REP_ACK);
  }
  uint8_t go[4 + 4 + 2];
  be_put32 (go, 4); memcpy (go + 4, "disk", 4); be_put16 (go + 8, 0);
  send_opt (fd, NBD_OPT_GO, go, sizeof go);
  while ((t = read_opt_reply (fd, NBD_OPT_GO, d, sizeof d, &len)) == NBD_REP_INFO)
    if (be_get16 (d) == NBD_INFO_EXPORT)
      flags = be_get16 (d + 10);
  assert_int_equal (t, NBD_REP_ACK);
  return flags;
}

static inline void
request (int fd, uint16_t type, uint16_t flags, uint64_t cookie, uint64_t off,
         uint32_t len, const void *payload)
{
  uint8_t h[28];
  be_put32 (h, NBD_REQUEST_MAGIC);
  be_put16 (h + 4, flags);
  be_put16 (h + 6, type);
  be_put64 (h + 8, cookie);
  be_put64 (h + 16, off);
  be_put32 (h + 24, len);
  tx (fd, h, 28);
  if (payload) tx (fd, payload, len);
}

struct reply {
  uint64_t cookie;
  uint32_t error;            /* NBD wire value */
  uint16_t type;             /* last chunk type (structured) */
  bool hole;                 /* read answered with OFFSET_HOLE */
  uint32_t nextents;
  uint32_t extents[2 * 64];
};

/* Read one whole reply; read data (len bytes expected) goes to buf. */
static inline int
read_reply (int fd, bool structured, void *buf, uint32_t len, struct reply *r)
{
  uint8_t h[20];
  memset (r, 0, sizeof *r);
  if (!structured) {
    if (rx (fd, h, 16) == -1) return -1;
    assert_int_equal (be_get32 (h), NBD_SIMPLE_REPLY_MAGIC);
    r->error = be_get32 (h + 4);
    r->cookie = be_get64 (h + 8);
    if (r->error == 0 && buf && len)
      return rx (fd, buf, len);
    return 0;
  }
  for (;;) {
    if (rx (fd, h, 20) == -1) return -1;
    assert_int_equal (be_get32 (h), NBD_STRUCTURED_REPLY_MAGIC);
    uint16_t flags = be_get16 (h + 4);
    r->type = be_get16 (h + 6);
    r->cookie = be_get64 (h + 8);
    uint32_t l = be_get32 (h + 16);
    uint8_t *p = malloc (l + 1);
    if (l && rx (fd, p, l) == -1) { free (p); return -1; }
    if (r->type == NBD_REPLY_TYPE_OFFSET_DATA)
      memcpy (buf, p + 8, l - 8);
    else if (r->type == NBD_REPLY_TYPE_OFFSET_HOLE) {
      r->hole = true;
      memset (buf, 0, be_get32 (p + 8));
    }
    else if (r->type == NBD_REPLY_TYPE_BLOCK_STATUS) {
      r->nextents = (l - 4) / 8;
      for (uint32_t i = 0; i < 2 * r->nextents && i < 128; i++)
        r->extents[i] = be_get32 (p + 4 + 4 * i);
    }
    else if (r->type & 0x8000)
      r->error = be_get32 (p);
    free (p);
    if (flags & NBD_REPLY_FLAG_DONE)
      return 0;
  }
}

/* One request, its reply; returns the NBD error value. */
static inline uint32_t
roundtrip (int fd, bool structured, uint16_t type, uint16_t flags, uint64_t off,
           uint32_t len, const void *payload, void *out)
{
  struct reply r;
  request (fd, type, flags, 42, off, len, payload);
  assert_int_equal (read_reply (fd, structured, out, len, &r), 0);
  assert_true (r.cookie == 42);
  return r.error;
}

#endif
