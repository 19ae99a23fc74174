/* A connection's life: handshake, reading requests, cleanup.
 *
 * The connection thread is the only reader of its socket.  It receives
 * into a 64 KiB buffer as much as the socket holds, so a burst of pipelined
 * request headers costs one recv; a write payload is copied out of what is
 * already buffered and the rest is read straight into the request's sgv
 * vector.  Replies are written by the workers, never by this thread,
 * except that it never writes at all once transmission starts.
 *
 * Cleanup runs here when reading ends (NBD_CMD_DISC, a lost or broken
 * socket, or the server stopping), in the order DESIGN.md requires:
 * reading has stopped; wait for every request in flight to complete (queued
 * reads of a dead socket are aborted rather than executed); then flush the
 * store and the sgv pool, so vectors cached while unjamming are released
 * too; then check that every command and vector is back; then free.  The
 * wait ends on lack of progress, never by spinning.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

int
nbd_read_full (struct nbd_conn *c, void *buf, size_t n)
{
  uint8_t *p = buf;

  while (n > 0) {
    ssize_t r = recv (c->fd, p, n, 0);
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
nbd_writev_full (int fd, struct iovec *iov, int cnt)
{
  while (cnt > 0) {
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t) (cnt > 1024 ? 1024 : cnt) };
    ssize_t r = sendmsg (fd, &m, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
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
nbd_write_full (int fd, const void *buf, size_t n)
{
  struct iovec iov = { (void *) buf, n };
  return nbd_writev_full (fd, &iov, 1);
}

/* Make at least n bytes available in the receive buffer.  0, or -1 on EOF
 * or error. */
static int
rx_fill (struct nbd_conn *c, size_t n)
{
  if (c->rx_end - c->rx_start >= n)
    return 0;
  if (c->rx_start > 0) {                 /* keep the unparsed bytes at the front */
    memmove (c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
    c->rx_end -= c->rx_start;
    c->rx_start = 0;
  }
  while (c->rx_end < n) {
    ssize_t r = recv (c->fd, c->rx + c->rx_end, NBD_RXBUF - c->rx_end, 0);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    c->rx_end += (size_t) r;
  }
  return 0;
}

/* Read len payload bytes into v (or discard them, v NULL). */
static int
read_payload (struct nbd_conn *c, struct sgv_vec *v, size_t len)
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
    ssize_t r = readv (c->fd, iov, cnt);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    done += (size_t) r;
  }
  return 0;
}

static struct nbd_job *
get_job (struct nbd_conn *c)
{
  struct nbd_job *j;

  pthread_mutex_lock (&c->lock);
  while ((j = c->free_jobs) == NULL)
    pthread_cond_wait (&c->cond, &c->lock);
  c->free_jobs = j->next;
  c->inflight++;
  pthread_mutex_unlock (&c->lock);
  return j;
}

/* A vector for len bytes; waits out a moment of memory shortage rather
 * than failing the request.  NULL with ESHUTDOWN when the server stops,
 * or E2BIG when no vector of the pool is that large. */
struct sgv_vec *
nbd_get_vec (struct nbd_conn *c, size_t len)
{
  struct sgv_vec *v = blkio_vec_get (c->exp->io, len);

  if (v)
    atomic_fetch_add (&c->vecs_out, 1);
  return v;
}

#define INLINE_MAX (64u * 1024)

static uint16_t
allowed_flags (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ:         return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
  case NBD_CMD_WRITE:        return NBD_CMD_FLAG_FUA;
  case NBD_CMD_TRIM:         return NBD_CMD_FLAG_FUA;
  case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
  case NBD_CMD_BLOCK_STATUS: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
  default:                   return NBD_CMD_FLAG_FUA;
  }
}

/* Decide what a request is: fills j, reads its payload.  Returns -1 if
 * the stream is lost (the job is not queued). */
static int
parse_request (struct nbd_conn *c, struct nbd_job *j, const uint8_t *h)
{
  uint64_t size = scsi_lu_nblocks (c->exp->lu) * scsi_lu_block_size (c->exp->lu);
  uint32_t max = nbd_export_max_payload (c->exp);
  bool past_end;

  j->flags = rd16 (h + 4);
  j->type = rd16 (h + 6);
  j->cookie = rd64 (h + 8);
  j->offset = rd64 (h + 16);
  j->length = rd32 (h + 24);
  j->error = 0;
  j->vec = NULL;
  j->cmd = NULL;
  past_end = j->offset > size || j->length > size - j->offset;

  if (j->type == NBD_CMD_WRITE) {
    if (c->exp->read_only)
      j->error = EPERM;
    else if (j->length == 0 || j->length > max)
      j->error = EINVAL;
    else if (past_end)
      j->error = ENOSPC;
    if (j->error == 0 && (j->flags & ~allowed_flags (j->type)))
      j->error = EINVAL;
    if (j->error) {                       /* stay in step with the stream */
      if (read_payload (c, NULL, j->length) == -1)
        return -1;
    }
    else {
      j->vec = nbd_get_vec (c, j->length);
      if (j->vec == NULL)
        return -1;
      if (read_payload (c, j->vec, j->length) == -1) {
        sgv_free (c->exp->sgv, j->vec);
        atomic_fetch_sub (&c->vecs_out, 1);
        j->vec = NULL;
        return -1;
      }
      NSTAT_ADD (c->srv, bytes_written, j->length);
    }
  }
  else if (j->type > NBD_CMD_BLOCK_STATUS || j->type == NBD_CMD_DISC)
    j->error = EINVAL;
  else if (j->flags & ~allowed_flags (j->type))
    j->error = EINVAL;
  else if (j->type == NBD_CMD_READ) {
    if (j->length == 0)
      j->error = EINVAL;
    else if (j->length > max)
      j->error = (j->flags & NBD_CMD_FLAG_DF) ? EOVERFLOW : EINVAL;
    else if (past_end)
      j->error = EINVAL;
  }
  else if (j->type == NBD_CMD_TRIM || j->type == NBD_CMD_WRITE_ZEROES) {
    if (c->exp->read_only)
      j->error = EPERM;
    else if (past_end)
      j->error = ENOSPC;
  }
  else if (j->type == NBD_CMD_BLOCK_STATUS) {
    if (!c->base_allocation || j->length == 0 || past_end)
      j->error = EINVAL;
  }
  else if (j->type == NBD_CMD_CACHE && past_end)
    j->error = EINVAL;

  if (j->error == 0 && atomic_load (&c->srv->stopping))
    j->error = ESHUTDOWN;
  if (j->error == 0) {
    j->cmd = scsi_cmd_get (c->exp->cmds, true);
    atomic_fetch_add (&c->cmds_out, 1);
  }
  return 0;
}

static void
release_job (struct nbd_conn *c, struct nbd_job *j)
{
  pthread_mutex_lock (&c->lock);
  j->next = c->free_jobs;
  c->free_jobs = j;
  c->inflight--;
  c->completions++;
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
}

void
nbd_job_finish (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;

  if (j->cmd) {
    scsi_cmd_put (c->exp->cmds, j->cmd);
    atomic_fetch_sub (&c->cmds_out, 1);
    j->cmd = NULL;
  }
  if (j->vec) {
    sgv_free (c->exp->sgv, j->vec);
    atomic_fetch_sub (&c->vecs_out, 1);
    j->vec = NULL;
  }
  release_job (c, j);    /* last touch of c: cleanup may free it after this */
}

static void
transmission (struct nbd_conn *c)
{
  bool memory_store = (scsi_lu_store (c->exp->lu)->caps & STORE_CAP_MEMORY) != 0;

  for (;;) {
    /* About to wait for the client: first give it the replies held. */
    if (c->rx_end - c->rx_start < NBD_REQUEST_SIZE)
      nbd_flush_replies (c);
    if (rx_fill (c, NBD_REQUEST_SIZE) == -1) {
      if (c->rx_end != c->rx_start)
        log_warn ("%s: connection lost in the middle of a request header", c->peer);
      else
        log_debug ("%s: connection closed by the client", c->peer);
      atomic_store (&c->dead, true);
      return;
    }
    const uint8_t *h = c->rx + c->rx_start;
    if (rd32 (h) != NBD_REQUEST_MAGIC) {
      log_warn ("%s: bad request magic 0x%08x; disconnecting", c->peer, rd32 (h));
      atomic_store (&c->dead, true);
      return;
    }
    uint8_t hdr[NBD_REQUEST_SIZE];
    memcpy (hdr, h, sizeof hdr);
    c->rx_start += NBD_REQUEST_SIZE;
    NSTAT_INC (c->srv, requests);
    if (rd16 (hdr + 6) == NBD_CMD_DISC) {
      log_debug ("%s: client sent NBD_CMD_DISC", c->peer);
      return;
    }
    struct nbd_job *j = get_job (c);
    j->conn = c;
    j->batch_reply = false;
    if (parse_request (c, j, hdr) == -1) {
      log_warn ("%s: connection lost in the middle of a request payload", c->peer);
      atomic_store (&c->dead, true);
      if (j->cmd) {
        scsi_cmd_put (c->exp->cmds, j->cmd);
        atomic_fetch_sub (&c->cmds_out, 1);
        j->cmd = NULL;
      }
      release_job (c, j);
      return;
    }
    /* Run a small read or write in this thread rather than wake a worker
     * for it when the store answers from memory: the handoff would cost
     * more than the work.  Anything that may wait for a disk goes to the
     * pool, so that such requests overlap. */
    if (memory_store && j->length <= INLINE_MAX &&
        (j->type == NBD_CMD_READ || j->type == NBD_CMD_WRITE)) {
      j->batch_reply = true;
      nbd_job_run (j);
    }
    else
      nbd_queue_job (c->srv, j);
  }
}

static void
cleanup (struct nbd_conn *c)
{
  struct nbd_server *s = c->srv;
  bool stuck = false;

  c->state = NBD_CONN_DRAINING;
  nbd_flush_replies (c);               /* replies held for a batch go out first */
  /* (2) Every request in flight completes or is aborted. */
  pthread_mutex_lock (&c->lock);
  while (c->inflight > 0) {
    uint64_t before = c->completions;
    struct timespec dl;
    clock_gettime (CLOCK_REALTIME, &dl);
    dl.tv_sec += NBD_CLEANUP_TIMEOUT;
    int r = 0;
    while (c->inflight > 0 && c->completions == before && r != ETIMEDOUT)
      r = pthread_cond_timedwait (&c->cond, &c->lock, &dl);
    if (r == ETIMEDOUT && c->completions == before) {
      stuck = true;
      break;
    }
  }
  unsigned left = c->inflight;
  pthread_mutex_unlock (&c->lock);
  if (stuck) {
    log_error ("%s: cleanup: %u requests made no progress for %d s; giving up on them",
               c->peer, left, NBD_CLEANUP_TIMEOUT);
    NSTAT_INC (s, cleanup_stuck);
  }

  /* (3) Only now flush: vectors cached while unjamming go too. */
  if (c->exp) {
    if (store_flush (scsi_lu_store (c->exp->lu)) == -1)
      log_error ("%s: cleanup: flushing the store failed: %m", c->peer);
    sgv_pool_flush (c->exp->sgv);
  }

  /* (4) Everything the connection took is back. */
  int cmds = atomic_load (&c->cmds_out), vecs = atomic_load (&c->vecs_out);
  if (cmds || vecs)
    log_error ("%s: cleanup: %d commands and %d vectors not returned", c->peer, cmds, vecs);
  c->state = NBD_CONN_CLOSED;
}

static void
conn_free (struct nbd_conn *c)
{
  pthread_mutex_destroy (&c->send_lock);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->cond);
  free (c->rx);
  free (c);
}

void *
nbd_conn_thread (void *arg)
{
  struct nbd_conn *c = arg;
  struct nbd_server *s = c->srv;
  struct timeval tv = { .tv_sec = NBD_HANDSHAKE_TIMEOUT };

  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (nbd_handshake (c) == 0) {
    tv.tv_sec = 0;
    setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->state = NBD_CONN_TRANSMISSION;
    log_debug ("%s: transmission on export '%s'%s", c->peer, c->exp->name,
               c->structured ? " with structured replies" : "");
    transmission (c);
    cleanup (c);
  }

  /* Leave the server's list (nbd_server_stop shuts down listed sockets,
   * so the socket is closed only once it is off the list); the last one
   * out wakes nbd_server_stop. */
  pthread_mutex_lock (&s->clock);
  for (struct nbd_conn **pp = &s->conns; *pp; pp = &(*pp)->next_conn)
    if (*pp == c) {
      *pp = c->next_conn;
      break;
    }
  close (c->fd);
  s->nconns--;
  pthread_cond_broadcast (&s->ccond);
  pthread_mutex_unlock (&s->clock);
  /* A connection whose cleanup gave up may still be referenced by a
   * stuck worker: leak it rather than free memory in use. */
  pthread_mutex_lock (&c->lock);
  bool idle = c->inflight == 0;
  pthread_mutex_unlock (&c->lock);
  if (idle)
    conn_free (c);
  return NULL;
}
