/* The fixed newstyle handshake.
 *
 * The server greets, the client answers with its flags, then sends
 * options until one of them (EXPORT_NAME, or GO with a good export) moves
 * the connection to transmission.  Every option is length-checked before
 * its payload is trusted; a payload over OPT_MAX bytes, a bad magic or a
 * short read ends the connection with one log line.  The whole handshake
 * has --handshake-timeout (each read waits only what is left of it:
 * nbd_read_full), so neither a silent client nor one that trickles a
 * byte at a time can hold a connection forever.
 *
 * TLS (tls.c): with --tls=on or require, NBD_OPT_STARTTLS is answered
 * with an ACK and the TLS handshake; negotiation then starts over inside
 * TLS, and what was negotiated before it (structured replies, the meta
 * context) is forgotten, as the spec says.  Negotiation reads the socket
 * unbuffered, so plaintext a client sent after STARTTLS is never taken
 * for data inside TLS.  With require, every option
 * before TLS but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD, and
 * NBD_OPT_EXPORT_NAME, which has no error reply, a disconnect.  A refusal
 * is logged once per connection (c->refused); the client's going away
 * after it is not logged again.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

#define OPT_MAX 65536u
#define META_CONTEXT_ID 1u
#define BASE_ALLOCATION "base:allocation"

/* Transmission flags of an export. */
static uint16_t
export_tflags (const struct nbd_export *e)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
               NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
               NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
  if (e->read_only)
    f |= NBD_FLAG_READ_ONLY;
  if (scsi_lu_store (e->lu)->caps & STORE_CAP_FAST_ZERO)
    f |= NBD_FLAG_SEND_FAST_ZERO;
  return f;
}

void
nbd_encode_greeting (uint8_t g[NBD_GREETING_SIZE])
{
  be_put64 (g, NBD_MAGIC);
  be_put64 (g + 8, NBD_IHAVEOPT);
  be_put16 (g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

void
nbd_encode_opt_reply (uint8_t h[NBD_OPT_REPLY_SIZE], uint32_t opt, uint32_t type,
                      uint32_t len)
{
  be_put64 (h, NBD_REP_MAGIC);
  be_put32 (h + 8, opt);
  be_put32 (h + 12, type);
  be_put32 (h + 16, len);
}

static int
send_reply (struct nbd_conn *c, uint32_t opt, uint32_t type,
            const void *data, uint32_t len)
{
  uint8_t h[NBD_OPT_REPLY_SIZE];

  nbd_encode_opt_reply (h, opt, type, len);
  struct iovec iov[2] = { { h, sizeof h }, { (void *) data, len } };
  return nbd_writev_full (c, iov, len ? 2 : 1);
}

/* NBD_OPT_LIST's replies, copied out of the export table under its
 * lock and sent after it (a client that reads slowly holds no lock):
 * NBD_REP_SERVER's payload is the name's length, the name, then the
 * description. */
struct list_buf {
  uint8_t *buf;
  size_t len, cap;
  bool failed;
};

static void
list_one (struct nbd_export *e, void *arg)
{
  struct list_buf *lb = arg;
  size_t n = strlen (e->name), dn = e->description ? strlen (e->description) : 0;

  if (dn > 4096)
    dn = 4096;
  size_t need = 4 + 4 + n + dn;
  if (lb->len + need > lb->cap) {
    size_t cap = (lb->cap + need) * 2;
    uint8_t *b = realloc (lb->buf, cap);
    if (b == NULL) {
      lb->failed = true;
      return;
    }
    lb->buf = b;
    lb->cap = cap;
  }
  uint8_t *p = lb->buf + lb->len;
  be_put32 (p, (uint32_t) (4 + n + dn));     /* this record's length */
  be_put32 (p + 4, (uint32_t) n);
  memcpy (p + 8, e->name, n);
  memcpy (p + 8 + n, e->description, dn);
  lb->len += need;
}

static int
opt_list (struct nbd_conn *c, uint32_t opt)
{
  struct list_buf lb = { 0 };
  int s = 0;

  nbd_export_each (c->srv, true, list_one, &lb);
  if (lb.failed) {
    free (lb.buf);
    static const char msg[] = "the server is out of memory";
    return send_reply (c, opt, NBD_REP_ERR_POLICY, msg, sizeof msg - 1);
  }
  for (size_t off = 0; off < lb.len && s == 0; ) {
    uint32_t rl = be_get32 (lb.buf + off);
    s = send_reply (c, opt, NBD_REP_SERVER, lb.buf + off + 4, rl);
    off += 4 + rl;
  }
  free (lb.buf);
  if (s == 0)
    s = send_reply (c, opt, NBD_REP_ACK, NULL, 0);
  return s;
}

static int
send_info_export (struct nbd_conn *c, uint32_t opt, struct nbd_export *e)
{
  uint8_t d[12];

  be_put16 (d, NBD_INFO_EXPORT);
  be_put64 (d + 2, e->io->size);
  be_put16 (d + 10, export_tflags (e));
  return send_reply (c, opt, NBD_REP_INFO, d, sizeof d);
}

static int info_go_reply (struct nbd_conn *c, uint32_t opt, struct nbd_export *e,
                          bool want_name, bool want_desc);

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 to start transmission (GO on a
 * known export), 0 to go on negotiating, -1 to close. */
static int
opt_info_go (struct nbd_conn *c, uint32_t opt, const uint8_t *p, uint32_t len)
{
  uint32_t nlen;
  uint16_t nreq;
  struct nbd_export *e;
  bool want_name = false, want_desc = false;

  if (len < 6 || (nlen = be_get32 (p)) > len - 6 ||
      (nreq = be_get16 (p + 4 + nlen), len != 6 + nlen + 2u * nreq))
    return send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0) == -1 ? -1 : 0;
  for (unsigned i = 0; i < nreq; i++) {
    uint16_t t = be_get16 (p + 6 + nlen + 2 * i);
    if (t == NBD_INFO_NAME) want_name = true;
    if (t == NBD_INFO_DESCRIPTION) want_desc = true;
  }
  e = nbd_export_get (c->srv, (const char *) p + 4, nlen);
  if (e == NULL) {
    static const char msg[] = "no such export";
    return send_reply (c, opt, NBD_REP_ERR_UNKNOWN, msg, sizeof msg - 1) == -1 ? -1 : 0;
  }
  int r = info_go_reply (c, opt, e, want_name, want_desc);
  if (r == 1) {
    nbd_export_put (c->srv, c->exp);     /* (none yet, in practice) */
    c->exp = e;
  }
  else
    nbd_export_put (c->srv, e);
  return r;
}

/* What INFO and GO send about an export the caller holds a use of. */
static int
info_go_reply (struct nbd_conn *c, uint32_t opt, struct nbd_export *e,
               bool want_name, bool want_desc)
{
  if (want_name) {
    size_t n = strlen (e->name);
    uint8_t d[2 + 4096];
    be_put16 (d, NBD_INFO_NAME);
    memcpy (d + 2, e->name, n);
    if (send_reply (c, opt, NBD_REP_INFO, d, (uint32_t) (2 + n)) == -1)
      return -1;
  }
  if (want_desc && e->description) {
    size_t n = strlen (e->description);
    uint8_t d[2 + 4096];
    if (n > 4096) n = 4096;
    be_put16 (d, NBD_INFO_DESCRIPTION);
    memcpy (d + 2, e->description, n);
    if (send_reply (c, opt, NBD_REP_INFO, d, (uint32_t) (2 + n)) == -1)
      return -1;
  }
  /* Block sizes are always sent: the minimum protects the client from
   * read-modify-write, the maximum bounds READ and WRITE payloads. */
  uint8_t bs[14];
  be_put16 (bs, NBD_INFO_BLOCK_SIZE);
  be_put32 (bs + 2, scsi_lu_block_size (e->lu));
  be_put32 (bs + 6, 4096);
  be_put32 (bs + 10, nbd_export_max_payload (e));
  if (send_reply (c, opt, NBD_REP_INFO, bs, sizeof bs) == -1 ||
      send_info_export (c, opt, e) == -1 ||
      send_reply (c, opt, NBD_REP_ACK, NULL, 0) == -1)
    return -1;
  return opt == NBD_OPT_GO ? 1 : 0;
}

/* LIST_META_CONTEXT and SET_META_CONTEXT: only base:allocation exists. */
static int
opt_meta_context (struct nbd_conn *c, uint32_t opt, const uint8_t *p, uint32_t len)
{
  uint32_t nlen, nq, pos;
  bool match = false;

  if (opt == NBD_OPT_SET_META_CONTEXT && !c->structured)
    return send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
  if (len < 8 || (nlen = be_get32 (p)) > len - 8)
    return send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
  nq = be_get32 (p + 4 + nlen);
  pos = 8 + nlen;
  for (uint32_t i = 0; i < nq; i++) {
    uint32_t qlen;
    if (len - pos < 4 || (qlen = be_get32 (p + pos)) > len - pos - 4)
      return send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    const char *q = (const char *) p + pos + 4;
    if ((qlen == strlen (BASE_ALLOCATION) && memcmp (q, BASE_ALLOCATION, qlen) == 0) ||
        (opt == NBD_OPT_LIST_META_CONTEXT && qlen == 5 && memcmp (q, "base:", 5) == 0))
      match = true;
    pos += 4 + qlen;
  }
  if (pos != len)
    return send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
  struct nbd_export *e = nbd_export_get (c->srv, (const char *) p + 4, nlen);
  if (e == NULL)
    return send_reply (c, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
  nbd_export_put (c->srv, e);
  if (nq == 0 && opt == NBD_OPT_LIST_META_CONTEXT)
    match = true;                       /* an empty query lists everything */
  if (opt == NBD_OPT_SET_META_CONTEXT)
    c->base_allocation = match;
  if (match) {
    uint8_t d[4 + sizeof BASE_ALLOCATION];
    be_put32 (d, META_CONTEXT_ID);
    memcpy (d + 4, BASE_ALLOCATION, strlen (BASE_ALLOCATION));
    if (send_reply (c, opt, NBD_REP_META_CONTEXT, d,
                    (uint32_t) (4 + strlen (BASE_ALLOCATION))) == -1)
      return -1;
  }
  return send_reply (c, opt, NBD_REP_ACK, NULL, 0);
}

static int
fail (struct nbd_conn *c, const char *what)
{
  log_warn ("%s: handshake failed: %s", c->peer, what);
  NSTAT_INC (c->srv, handshake_failures);
  return -1;
}

/* A read of the client's failed: said as the time running out when it
 * did (the whole handshake has --handshake-timeout), else as what. */
static int
read_failed (struct nbd_conn *c, const char *what)
{
  if (errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK)
    return fail (c, "not completed within the handshake timeout");
  return fail (c, what);
}

/* A refusal the client is told of: logged once for the connection. */
static void
refusal (struct nbd_conn *c, const char *what)
{
  if (c->refused)
    return;
  c->refused = true;
  log_warn ("%s: refused: %s", c->peer, what);
  NSTAT_INC (c->srv, handshake_failures);
}

/* NBD_OPT_STARTTLS: 0 to go on negotiating (over TLS if it started), -1
 * to close. */
static int
opt_starttls (struct nbd_conn *c, uint32_t len)
{
  static const char off[] = "TLS is not enabled on this server";
  static const char again[] = "TLS is already started";
  char why[256];

  if (c->srv->cfg.tls == NBD_TLS_OFF) {
    refusal (c, "the client asked for TLS, which this server does not offer");
    return send_reply (c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY, off, sizeof off - 1);
  }
  if (c->tls)
    return send_reply (c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, again, sizeof again - 1);
  if (len != 0)
    return send_reply (c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, NULL, 0);
  if (send_reply (c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0) == -1)
    return -1;
  if (nbd_tls_handshake (c, why, sizeof why) == -1) {
    c->refused = true;                  /* said here; a close is no news */
    fail (c, why);
    return -1;
  }
  c->structured = false;
  c->base_allocation = false;
  return 0;
}

int
nbd_handshake (struct nbd_conn *c)
{
  uint8_t g[NBD_GREETING_SIZE], cf[4], oh[16];
  uint8_t *payload = NULL;
  int r = -1;

  nbd_encode_greeting (g);
  if (nbd_write_full (c, g, sizeof g) == -1)
    return fail (c, "cannot send the greeting");
  if (nbd_read_full (c, cf, 4) == -1)
    return read_failed (c, "no client flags");
  uint32_t cflags = be_get32 (cf);
  if (!(cflags & NBD_FLAG_C_FIXED_NEWSTYLE))
    return fail (c, "client does not speak fixed newstyle");
  if (cflags & ~(uint32_t) (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
    return fail (c, "unknown client flags");
  c->no_zeroes = (cflags & NBD_FLAG_C_NO_ZEROES) != 0;

  payload = malloc (OPT_MAX);
  if (payload == NULL)
    return fail (c, "out of memory");
  for (;;) {
    if (nbd_read_full (c, oh, sizeof oh) == -1) {
      if (c->refused)
        log_debug ("%s: closed after its refusal", c->peer);
      else
        read_failed (c, "connection lost during option negotiation");
      goto out;
    }
    if (be_get64 (oh) != NBD_IHAVEOPT) {
      fail (c, "bad option magic");
      goto out;
    }
    uint32_t opt = be_get32 (oh + 8), len = be_get32 (oh + 12);
    if (len > OPT_MAX) {
      fail (c, "option payload too large");
      goto out;
    }
    if (nbd_read_full (c, payload, len) == -1) {
      read_failed (c, "option payload truncated");
      goto out;
    }
    if (atomic_load (&c->srv->stopping)) {
      send_reply (c, opt, NBD_REP_ERR_SHUTDOWN, NULL, 0);
      goto out;
    }
    int s = 0;
    if (c->srv->cfg.tls == NBD_TLS_REQUIRE && c->tls == NULL &&
        opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
      static const char msg[] = "this server requires TLS";
      refusal (c, "the client did not start TLS, which this server requires");
      if (opt == NBD_OPT_EXPORT_NAME)
        goto out;                       /* no error reply exists for it */
      if (send_reply (c, opt, NBD_REP_ERR_TLS_REQD, msg, sizeof msg - 1) == -1)
        goto out;
      continue;
    }
    switch (opt) {
    case NBD_OPT_EXPORT_NAME: {
      struct nbd_export *e = nbd_export_get (c->srv, (const char *) payload, len);
      if (e == NULL) {
        fail (c, "unknown export name");
        goto out;
      }
      c->exp = e;                /* its use is the connection's from now */
      uint8_t d[10 + 124] = { 0 };
      be_put64 (d, e->io->size);
      be_put16 (d + 8, export_tflags (e));
      if (nbd_write_full (c, d, c->no_zeroes ? 10 : sizeof d) == -1)
        goto out;
      r = 0;
      goto out;
    }
    case NBD_OPT_ABORT:
      send_reply (c, opt, NBD_REP_ACK, NULL, 0);
      goto out;
    case NBD_OPT_LIST:
      if (len != 0) {
        s = send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
        break;
      }
      s = opt_list (c, opt);
      break;
    case NBD_OPT_STARTTLS:
      if (opt_starttls (c, len) == -1)
        goto out;
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      s = opt_info_go (c, opt, payload, len);
      if (s == 1) {
        r = 0;
        goto out;
      }
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      if (len != 0)
        s = send_reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
      else {
        c->structured = true;
        s = send_reply (c, opt, NBD_REP_ACK, NULL, 0);
      }
      break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
      s = opt_meta_context (c, opt, payload, len);
      break;
    default:
      s = send_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
      break;
    }
    if (s == -1) {
      fail (c, "cannot send an option reply");
      goto out;
    }
  }
 out:
  free (payload);
  return r;
}
