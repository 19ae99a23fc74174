/* A connection's session: handshake, reading requests, cleanup.
 *
 * The session thread is the only reader of its socket.  For each request
 * it validates the header (validate.c), takes a job and what the request
 * needs (conn.c), reads a write's payload straight into the job's vector,
 * and either runs the request itself (a read or write of up to 1 MiB on
 * a store that answers from memory, or a write-back cache: a handoff
 * costs a large part of the work) or queues it for the shared workers.
 * Replies go through the connection's sender (send.c).
 *
 * Cleanup runs when reading ends (NBD_CMD_DISC, a lost or broken socket,
 * or the server stopping), in the order of docs/architecture.md,
 * "Disconnect cleanup": reading has stopped; every request in flight
 * completes (its reply sent, or dropped if the client is gone); then the
 * store and the sgv pool are flushed, so vectors cached while unjamming
 * are released too; then every command and vector must be back.  Waiting
 * ends on lack of progress, never by spinning: a client that takes no
 * replies for NBD_CLEANUP_TIMEOUT is cut off, and requests that still
 * make no progress are left holding their references (conn.c), so
 * nothing they use is freed or reused.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "log.h"
#include "sync.h"

/* Up to this size a read or write on an in-memory store or a write-back
 * cache runs in the session.  Handing a 1 MiB request on memory to a
 * worker and its reply back cost about a fifth of the work (245-265
 * against 185-210 us of daemon CPU per 1 MiB read, 240-345 against
 * 195-225 per write); 4 KiB random reads and writes on a cached file
 * went 2.2x and 2.3x faster run here (same run).  Larger requests still
 * overlap in the workers. */
#define INLINE_MAX (1024u * 1024)

/* Taking a job, a command or a vector may wait for one to come back, and
 * the replies the session holds keep theirs until they are sent: so when
 * one is not there at once, the held replies go first, then it waits. */
static struct nbd_job *
get_job (struct nbd_conn *c, uint64_t bytes)
{
  struct nbd_job *j = nbd_job_get (c, bytes, false);
  if (j == NULL) {
    nbd_send_batch (c);
    j = nbd_job_get (c, bytes, true);
  }
  return j;
}

static struct sgv_vec *
take_vec (struct nbd_job *j, size_t len)
{
  struct sgv_vec *v = nbd_job_take_vec (j, len, false);
  if (v == NULL && errno == EAGAIN) {
    nbd_send_batch (j->conn);
    v = nbd_job_take_vec (j, len, true);
  }
  return v;
}

static void
take_cmd (struct nbd_job *j)
{
  if (!nbd_job_take_cmd (j, false)) {
    nbd_send_batch (j->conn);
    nbd_job_take_cmd (j, true);
  }
}

/* Read one request and start it.  Returns false when reading ends. */
static bool
serve_one (struct nbd_conn *c, unsigned caps)
{
  /* About to wait for the client: first give it the replies held. */
  if (c->rx_end - c->rx_start < NBD_REQUEST_SIZE)
    nbd_send_batch (c);
  if (nbd_rx_fill (c, NBD_REQUEST_SIZE) == -1) {
    if (errno == ETIMEDOUT) {
      log_info ("%s: idle for %u s; closing the connection", c->peer, c->idle_timeout);
      NSTAT_INC (c->srv, idle_closed);
    }
    else if (c->rx_end != c->rx_start)
      log_warn ("%s: connection lost in the middle of a request header", c->peer);
    else
      log_debug ("%s: connection closed by the client", c->peer);
    return false;
  }
  const uint8_t *h = c->rx + c->rx_start;
  if (be_get32 (h) != NBD_REQUEST_MAGIC) {
    log_warn ("%s: bad request magic 0x%08x; disconnecting", c->peer, be_get32 (h));
    return false;
  }
  struct nbd_request r = {
    .flags = be_get16 (h + 4), .type = be_get16 (h + 6), .cookie = be_get64 (h + 8),
    .offset = be_get64 (h + 16), .length = be_get32 (h + 24),
  };
  c->rx_start += NBD_REQUEST_SIZE;
  NSTAT_INC (c->srv, requests);
  if (r.type == NBD_CMD_DISC) {
    log_debug ("%s: client sent NBD_CMD_DISC", c->peer);
    return false;
  }

  int err = nbd_validate_request (c, &r);
  if (err == 0 && atomic_load (&c->srv->stopping))
    err = ESHUTDOWN;
  bool data = err == 0 && (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE);
  struct nbd_job *j = get_job (c, data ? r.length : 0);
  j->flags = r.flags;
  j->type = r.type;
  j->cookie = r.cookie;
  j->offset = r.offset;
  j->length = r.length;
  j->error = err;
  if (r.type == NBD_CMD_WRITE) {
    struct sgv_vec *v = NULL;
    if (err == 0 && (v = take_vec (j, r.length)) == NULL)
      err = j->error = blkio_vec_error (errno);
    /* Read (or skip) the payload to stay in step with the stream. */
    if (nbd_read_payload (c, v, r.length) == -1) {
      if (errno == EAGAIN)              /* the idle timeout */
        log_warn ("%s: silent for %u s in the middle of a request payload; closing "
                  "the connection", c->peer, c->idle_timeout);
      else
        log_warn ("%s: connection lost in the middle of a request payload", c->peer);
      nbd_job_release (j);
      return false;
    }
    if (err == 0)
      NSTAT_ADD (c->srv, bytes_written, r.length);
  }
  if (err == 0)
    take_cmd (j);
  /* Run here only what waits for nothing the session holds: an aligned
   * request (no read-modify-write buffers), whose read vector is taken
   * here, on memory or, without FUA, on a write-back cache. */
  bool here = err == 0 && data && r.length <= INLINE_MAX &&
              ((caps & STORE_CAP_MEMORY) ||
               ((caps & STORE_CAP_CACHED) && !(r.flags & NBD_CMD_FLAG_FUA))) &&
              ((r.offset | r.length) & (c->exp->io->bs - 1)) == 0;
  if (here && r.type == NBD_CMD_READ && take_vec (j, r.length) == NULL)
    here = false;                       /* the worker says why */
  if (here) {
    /* A write-back cache may wait on its file (a miss, or no room): what
     * is done already goes out first. */
    if (!(caps & STORE_CAP_MEMORY))
      nbd_send_batch (c);
    nbd_job_exec (j);
    nbd_send_hold (j);
  }
  /* A read or write the unit answers asynchronously is sent on its way
   * from here too: its store's completion replies, and no worker need
   * carry it (its read vector is taken here, as above). */
  else if (err == 0 && data && scsi_lu_async (c->exp->io->lu) &&
           (r.type == NBD_CMD_WRITE || take_vec (j, r.length)) && nbd_job_submit (j))
    ;
  else if (err == 0)
    nbd_workq_push (c->srv, j);
  else {
    nbd_job_exec (j);                   /* the error reply */
    nbd_send_hold (j);
  }
  return true;
}

static void
cleanup (struct nbd_conn *c)
{
  struct nbd_server *s = c->srv;

  atomic_store (&c->state, NBD_CONN_DRAINING);
  nbd_send_batch (c);                   /* replies held go out first */
  /* (2) Every request in flight completes; a client that takes no
   * replies is cut off, and its replies dropped. */
  unsigned left = nbd_conn_drain (c);
  if (left > 0) {
    log_warn ("%s: cleanup: the client took no replies for %d s; disconnecting it",
              c->peer, NBD_CLEANUP_TIMEOUT);
    nbd_send_abort (c);
    left = nbd_conn_drain (c);
  }
  nbd_sender_stop (c);
  if (left > 0) {
    log_error ("%s: cleanup: %u requests made no progress for %d s; leaving them "
               "their connection", c->peer, left, NBD_CLEANUP_TIMEOUT);
    NSTAT_INC (s, cleanup_stuck);
    return;
  }

  /* (3) Only now flush: vectors cached while unjamming go too. */
  if (store_flush (scsi_lu_store (c->exp->lu)) == -1)
    log_error ("%s: cleanup: flushing the store failed: %m", c->peer);
  sgv_pool_flush (c->exp->sgv);

  /* (4) Everything the connection took is back. */
  int cmds = atomic_load (&c->cmds_out), vecs = atomic_load (&c->vecs_out);
  if (cmds || vecs)
    log_error ("%s: cleanup: %d commands and %d vectors not returned", c->peer, cmds, vecs);
  if (atomic_load (&c->dead) && !atomic_load (&c->srv->stopping))
    log_debug ("%s: replies could not all be sent", c->peer);
}

void
nbd_session_run (struct nbd_conn *c)
{
  struct timeval tv = { .tv_sec = c->srv->cfg.handshake_timeout };

  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  c->hs_deadline_ns = sync_now_ns () + (uint64_t) tv.tv_sec * 1000000000u;
  if (nbd_handshake (c) == -1)
    return;
  c->hs_deadline_ns = 0;
  c->idle_timeout = c->srv->cfg.idle_timeout;
  tv.tv_sec = c->idle_timeout;
  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (nbd_sender_start (c) == -1) {
    log_error ("%s: cannot start its sender: %m", c->peer);
    return;
  }
  /* In swap mode the I/O path maps nothing: the cache's per-thread
   * buffers now, not on the first request.  (Otherwise the first request
   * maps them, and a connection that never does I/O costs nothing.) */
  if (c->srv->cfg.ready_sessions && blkio_thread_prepare (c->exp->io) == -1)
    log_warn ("%s: cannot ready the session for I/O (the first request will): %m",
              c->peer);
  atomic_store (&c->state, NBD_CONN_TRANSMISSION);
  atomic_fetch_add_explicit (&c->exp->conns.total, 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&c->exp->conns.open, 1, memory_order_relaxed);
  c->poll_ns = (uint64_t) c->srv->cfg.busy_poll_us * 1000u;
  log_debug ("%s: transmission on export '%s'%s", c->peer, c->exp->name,
             c->structured ? " with structured replies" : "");
  unsigned caps = scsi_lu_store (c->exp->lu)->caps;
  while (serve_one (c, caps))
    ;
  cleanup (c);
  atomic_fetch_sub_explicit (&c->exp->conns.open, 1, memory_order_relaxed);
}
