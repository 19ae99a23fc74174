/* Socket I/O and reply encoding: the bytes on the wire.
 *
 * Reading: the session is the only reader of its socket.  It receives
 * into a 64 KiB buffer as much as the socket holds, so a burst of
 * pipelined request headers costs one recv; a write payload is copied out
 * of what is already buffered and the rest is read straight into the
 * request's vector.
 *
 * Busy-polling: on a busy connection the next request is microseconds
 * away, and sleeping in recv costs this thread a context switch and the
 * client a wake-up in each send.  So in transmission a session whose
 * buffer ran dry first polls the socket (non-blocking recv) for up to
 * its window, c->poll_ns, and only then sleeps; but only while fewer
 * than the server's max_pollers sessions poll, so that polling never
 * takes the CPUs the clients need.  The window adapts: it goes back to
 * the full budget (cfg.busy_poll_us) whenever a request arrives within
 * it, polled for or not, and halves whenever it expires in vain, so an
 * idle connection stops polling after a few misses.
 *
 * All of it goes through the connection's I/O layer (tls.c), plain or
 * TLS.
 *
 * Replies are encoded into the job itself: a header in j->hdr, then the
 * read data as slices of j->vec, all in j->iov, ready for one sendmsg.
 * Nothing here knows which thread will send them.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"
#include "sync.h"

/* During the handshake each read may wait only what is left of the
 * whole handshake's time: a client that sends a byte now and then is
 * dropped when the time is up, as a silent one is (SO_RCVTIMEO alone
 * restarts with every byte).  ETIMEDOUT once it is up. */
static int
handshake_time_left (struct nbd_conn *c)
{
  uint64_t now = sync_now_ns ();

  if (now >= c->hs_deadline_ns) {
    errno = ETIMEDOUT;
    return -1;
  }
  uint64_t left_us = (c->hs_deadline_ns - now + 999) / 1000;
  struct timeval tv = { .tv_sec = (time_t) (left_us / 1000000),
                        .tv_usec = (suseconds_t) (left_us % 1000000) };
  return setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

int
nbd_read_full (struct nbd_conn *c, void *buf, size_t n)
{
  uint8_t *p = buf;

  while (n > 0) {
    if (c->hs_deadline_ns && handshake_time_left (c) == -1)
      return -1;
    ssize_t r = nbd_io_recv (c, p, n, false);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = ECONNRESET;
      return -1;
    }
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

int
nbd_writev_full (struct nbd_conn *c, struct iovec *iov, int cnt)
{
  while (cnt > 0) {
    ssize_t r = nbd_io_sendv (c, iov, cnt > 1024 ? 1024 : cnt, false);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;                       /* EAGAIN: the send timeout passed */
    }
    while (cnt > 0 && (size_t) r >= iov->iov_len) {
      r -= (ssize_t) iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (uint8_t *) iov->iov_base + r;
      iov->iov_len -= (size_t) r;
    }
  }
  return 0;
}

int
nbd_write_full (struct nbd_conn *c, const void *buf, size_t n)
{
  struct iovec iov = { (void *) buf, n };
  return nbd_writev_full (c, &iov, 1);
}

#define POLL_MIN_NS 2000u               /* a window below this is closed */

/* Receive into the buffer, polling first if the window is open.  Like
 * recv: bytes, 0 at end of stream, -1 with errno. */
static ssize_t
rx_recv (struct nbd_conn *c)
{
  struct nbd_server *s = c->srv;
  uint8_t *p = c->rx + c->rx_end;
  size_t room = NBD_RXBUF - c->rx_end;
  uint64_t budget = (uint64_t) s->cfg.busy_poll_us * 1000u;
  ssize_t r;

  /* Under TLS, a record may be decrypted and waiting already: the
   * socket would say nothing of it. */
  if (nbd_io_pending (c) > 0)
    return nbd_io_recv (c, p, room, false);
  if (c->poll_ns >= POLL_MIN_NS) {
    if (atomic_fetch_add (&s->pollers, 1) < s->max_pollers) {
      uint64_t end = sync_now_ns () + c->poll_ns;
      do
        r = nbd_io_recv (c, p, room, true);
      while (r == -1 && (errno == EAGAIN || errno == EINTR) && sync_now_ns () < end);
      atomic_fetch_sub (&s->pollers, 1);
      if (r != -1 || (errno != EAGAIN && errno != EINTR)) {
        c->poll_ns = budget;
        return r;
      }
      c->poll_ns /= 2;                   /* in vain */
    }
    else
      atomic_fetch_sub (&s->pollers, 1);
  }
  uint64_t t0 = budget ? sync_now_ns () : 0;
  r = nbd_io_recv (c, p, room, false);
  if (budget && r > 0 && sync_now_ns () - t0 < budget)
    c->poll_ns = budget;                 /* polling would have caught it */
  return r;
}

/* Requests completed so far, and whether any is in flight. */
static uint64_t
completions (struct nbd_conn *c, bool *busy)
{
  pthread_mutex_lock (&c->lock);
  uint64_t n = c->completions;
  *busy = c->inflight > 0;
  pthread_mutex_unlock (&c->lock);
  return n;
}

int
nbd_rx_fill (struct nbd_conn *c, size_t n)
{
  bool busy;
  uint64_t mark = 0;

  if (c->rx_end - c->rx_start >= n)
    return 0;
  if (c->rx_start > 0) {                 /* keep the unparsed bytes at the front */
    memmove (c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
    c->rx_end -= c->rx_start;
    c->rx_start = 0;
  }
  /* With an idle timeout, the socket's receive timeout is that long: when
   * it passes with nothing in flight and nothing completed meanwhile,
   * the client has been idle that long. */
  if (c->idle_timeout)
    mark = completions (c, &busy);
  while (c->rx_end < n) {
    ssize_t r = rx_recv (c);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && errno == EAGAIN && c->idle_timeout) {
      uint64_t now = completions (c, &busy);
      if (busy || now != mark) {
        mark = now;
        continue;
      }
      errno = ETIMEDOUT;
      return -1;
    }
    if (r <= 0)
      return -1;
    c->rx_end += (size_t) r;
  }
  return 0;
}

int
nbd_read_payload (struct nbd_conn *c, struct sgv_vec *v, size_t len)
{
  size_t have = c->rx_end - c->rx_start, done;

  done = have < len ? have : len;
  if (v && done)
    sgv_copy_from_buf (v, 0, c->rx + c->rx_start, done);
  c->rx_start += done;
  while (done < len) {
    if (v == NULL) {                     /* discarding: through the buffer */
      size_t m = len - done < NBD_RXBUF ? len - done : NBD_RXBUF;
      c->rx_start = c->rx_end = 0;
      if (nbd_read_full (c, c->rx, m) == -1)
        return -1;
      done += m;
      continue;
    }
    /* What the buffer held may have ended mid-segment: 63 segments'
     * worth of bytes from there span at most 64 of them. */
    struct iovec iov[64];
    size_t n = len - done < 63 * SGV_MAX_SEG ? len - done : 63 * SGV_MAX_SEG;
    int cnt = sgv_slice (v, done, n, iov, 64);
    if (cnt < 0)
      return -1;
    ssize_t r = nbd_io_readv (c, iov, cnt);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    done += (size_t) r;
  }
  return 0;
}

int
nbd_errno_to_wire (int err)
{
  switch (err) {
  case 0:          return 0;
  case EPERM:
  case EROFS:      return NBD_EPERM;
  case EINVAL:     return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:     return NBD_ENOSPC;
  case EOVERFLOW:  return NBD_EOVERFLOW;
  case ENOTSUP:    return NBD_ENOTSUP;
  case ESHUTDOWN:  return NBD_ESHUTDOWN;
  default:         return NBD_EIO;    /* never ENOMEM: memory waits, it does not fail */
  }
}

static void
chunk_header (uint8_t *h, uint16_t flags, uint16_t type, uint64_t cookie,
              uint32_t len)
{
  be_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  be_put16 (h + 4, flags);
  be_put16 (h + 6, type);
  be_put64 (h + 8, cookie);
  be_put32 (h + 16, len);
}

static void
simple_header (uint8_t *h, uint32_t err, uint64_t cookie)
{
  be_put32 (h, NBD_SIMPLE_REPLY_MAGIC);
  be_put32 (h + 4, err);
  be_put64 (h + 8, cookie);
}

/* The reply is j->hdr's first n bytes alone. */
static void
header_only (struct nbd_job *j, size_t n)
{
  j->iov[0] = (struct iovec) { j->hdr, n };
  j->iovcnt = 1;
}

void
nbd_encode_ok (struct nbd_job *j)
{
  if (j->conn->structured) {
    chunk_header (j->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, j->cookie, 0);
    header_only (j, NBD_CHUNK_HEADER_SIZE);
  }
  else {
    simple_header (j->hdr, 0, j->cookie);
    header_only (j, NBD_SIMPLE_REPLY_SIZE);
  }
}

void
nbd_encode_error (struct nbd_job *j, int err)
{
  uint32_t wire = (uint32_t) nbd_errno_to_wire (err);

  NSTAT_INC (j->conn->srv, errors);
  if (!j->conn->structured) {
    simple_header (j->hdr, wire, j->cookie);
    header_only (j, NBD_SIMPLE_REPLY_SIZE);
    return;
  }
  /* An offset only where one is meaningful: a read that failed while
   * executing, whose range is valid.  A request refused as invalid (a
   * zero length, a range past the end) gets a plain error chunk: its
   * offset may lie outside anything the client may be told of. */
  bool with_offset = j->type == NBD_CMD_READ && j->error == 0;
  uint32_t len = with_offset ? 14 : 6;
  chunk_header (j->hdr, NBD_REPLY_FLAG_DONE,
                with_offset ? NBD_REPLY_TYPE_ERROR_OFFSET : NBD_REPLY_TYPE_ERROR,
                j->cookie, len);
  be_put32 (j->hdr + 20, wire);
  be_put16 (j->hdr + 24, 0);              /* no message */
  if (with_offset)
    be_put64 (j->hdr + 26, j->offset);
  header_only (j, NBD_CHUNK_HEADER_SIZE + len);
}

void
nbd_encode_data (struct nbd_job *j)
{
  uint8_t *h = j->hdr;

  if (j->conn->structured && sgv_is_zero (j->vec, 0, j->length)) {
    chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE, j->cookie, 12);
    be_put64 (h + 20, j->offset);
    be_put32 (h + 28, j->length);
    header_only (j, NBD_CHUNK_HEADER_SIZE + 12);
    return;
  }
  if (j->conn->structured) {
    chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, j->cookie,
                  8 + j->length);
    be_put64 (h + 20, j->offset);
    j->iov[0] = (struct iovec) { h, NBD_CHUNK_HEADER_SIZE + 8 };
  }
  else {
    simple_header (h, 0, j->cookie);
    j->iov[0] = (struct iovec) { h, NBD_SIMPLE_REPLY_SIZE };
  }
  int cnt = sgv_slice (j->vec, 0, j->length, j->iov + 1, (int) j->conn->srv->reply_iov - 1);
  if (cnt < 0) {                        /* cannot happen: the array fits the maximum */
    nbd_encode_error (j, EIO);
    return;
  }
  j->iovcnt = cnt + 1;
}

void
nbd_encode_block_status (struct nbd_job *j, const uint32_t *ext, unsigned n)
{
  /* Header, context id, then n pairs: at most (NBD_REPLY_HDR - 24) / 8
   * pairs fit the header buffer; more go in the vector. */
  chunk_header (j->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, j->cookie,
                4 + 8 * n);
  be_put32 (j->hdr + NBD_CHUNK_HEADER_SIZE, 1);   /* base:allocation's context id */
  j->iov[0] = (struct iovec) { j->hdr, NBD_CHUNK_HEADER_SIZE + 4 };
  j->iovcnt = 1;
  if (n == 0)
    return;
  uint8_t pairs[8 * 64];
  for (unsigned k = 0; k < n; k++) {
    be_put32 (pairs + 8 * k, ext[2 * k]);
    be_put32 (pairs + 8 * k + 4, ext[2 * k + 1]);
  }
  sgv_copy_from_buf (j->vec, 0, pairs, 8 * n);
  int cnt = sgv_slice (j->vec, 0, 8 * n, j->iov + 1, (int) j->conn->srv->reply_iov - 1);
  j->iovcnt = 1 + (cnt > 0 ? cnt : 0);
}
