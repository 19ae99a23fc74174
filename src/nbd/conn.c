/* The connection object: its lifetime, its jobs, and every command and
 * vector its requests take, with their accounting.  This is the one place
 * where they are taken and returned.
 *
 * References: the session holds one from nbd_conn_new to nbd_conn_put,
 * and every taken job holds one until nbd_job_release.  The last one out
 * closes the descriptor and frees the object, so a reply can never be
 * written to a descriptor that was closed (and reused by the kernel for
 * another client), and a cleanup that gave up on a stuck request frees
 * nothing that request still holds.
 *
 * Memory: the object, its jobs' reply iovecs (as many as the server's
 * largest payload needs: a tenth under --swap's 2 MiB) and its receive
 * buffer are one mapping of their own, unmapped when the object is freed: malloc would keep a freed
 * block this large (its mmap threshold rises past it) for the next
 * allocation, so thousands of connections that came and went would stay
 * resident.  Jobs are handed out from jobs[] in order (jobs_used) before
 * the free list is used, so a connection touches the pages of only as
 * many jobs as it ever had in flight at once: an idle one, a few pages.
 *
 * Flow control: a job is taken only when one of the fixed array is free
 * and the data in flight (payloads and read buffers) stays within
 * NBD_CONN_BYTES (a single request of any size is always let through).
 * A client that does not read its replies therefore holds at most that
 * much memory, and its session stops reading from it; nobody else waits.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sync.h"

/* The object's mapping: the object, the jobs' iovecs, then the receive
 * buffer. */
static size_t
conn_map_len (const struct nbd_server *s)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  size_t head = sizeof (struct nbd_conn) +
                (size_t) NBD_JOBS_PER_CONN * s->reply_iov * sizeof (struct iovec);
  return ((head + page - 1) & ~(page - 1)) + NBD_RXBUF;
}

struct nbd_conn *
nbd_conn_new (struct nbd_server *s, int fd)
{
  assert (s->reply_iov > 0);          /* the server was started */
  size_t len = conn_map_len (s);
  struct nbd_conn *c = mmap (NULL, len, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

  if (c == MAP_FAILED)
    return NULL;
  c->rx = (uint8_t *) c + len - NBD_RXBUF;
  c->iovs = (struct iovec *) (c + 1);
  c->srv = s;
  c->fd = fd;
  c->refs = 1;
  atomic_init (&c->state, NBD_CONN_HANDSHAKE);
  sync_mutex_init_adaptive (&c->send_lock);
  sync_mutex_init_adaptive (&c->lock);
  pthread_mutex_init (&c->sq_lock, NULL);
  pthread_cond_init (&c->sq_cond, NULL);
  pthread_cond_init (&c->cond, NULL);
  strcpy (c->peer, "unknown peer");
  return c;
}

static void
conn_free (struct nbd_conn *c)
{
  nbd_tls_end (c);
  /* The last job is back: the export may go (nbd_server_release_export). */
  nbd_export_put (c->srv, c->exp);
  close (c->fd);
  log_debug ("%s: closed", c->peer);
  pthread_mutex_destroy (&c->send_lock);
  pthread_mutex_destroy (&c->sq_lock);
  pthread_cond_destroy (&c->sq_cond);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->cond);
  munmap (c, conn_map_len (c->srv));
}

/* Drop one reference (lock held); frees c when it was the last. */
static void
unref_locked (struct nbd_conn *c)
{
  bool last = --c->refs == 0;
  pthread_mutex_unlock (&c->lock);
  if (last)
    conn_free (c);
}

void
nbd_conn_put (struct nbd_conn *c)
{
  pthread_mutex_lock (&c->lock);
  atomic_store (&c->state, NBD_CONN_CLOSED);
  unref_locked (c);
}

/* The next job of jobs[] onto the free list (lock held): its pages are
 * touched from now on. */
static void
first_use (struct nbd_conn *c)
{
  struct nbd_job *j = &c->jobs[c->jobs_used];

  j->iov = c->iovs + (size_t) c->jobs_used++ * c->srv->reply_iov;
  j->conn = c;
  j->next = NULL;
  c->free_jobs = j;
}

struct nbd_job *
nbd_job_get (struct nbd_conn *c, uint64_t bytes, bool wait)
{
  struct nbd_job *j;

  pthread_mutex_lock (&c->lock);
  for (;;) {
    if (c->free_jobs == NULL && c->jobs_used < NBD_JOBS_PER_CONN)
      first_use (c);
    bool room = c->inflight == 0 || c->bytes_inflight + bytes <= NBD_CONN_BYTES;
    if (c->free_jobs != NULL && room)
      break;
    if (!wait) {
      pthread_mutex_unlock (&c->lock);
      errno = EAGAIN;
      return NULL;
    }
    pthread_cond_wait (&c->cond, &c->lock);
  }
  j = c->free_jobs;
  c->free_jobs = j->next;
  c->inflight++;
  c->refs++;
  c->bytes_inflight += bytes;
  pthread_mutex_unlock (&c->lock);
  j->next = NULL;
  j->bytes = bytes;
  j->cmd = NULL;
  j->vec = NULL;
  j->error = 0;
  j->iovcnt = 0;
  return j;
}

bool
nbd_job_take_cmd (struct nbd_job *j, bool wait)
{
  j->cmd = scsi_cmd_get (j->conn->exp->cmds, wait);
  if (j->cmd == NULL)
    return false;
  atomic_fetch_add (&j->conn->cmds_out, 1);
  return true;
}

struct sgv_vec *
nbd_job_take_vec (struct nbd_job *j, size_t len, bool wait)
{
  struct blkio *io = j->conn->exp->io;
  struct sgv_vec *v = wait ? blkio_vec_get (io, len) : blkio_vec_try_get (io, len);

  if (v) {
    atomic_fetch_add (&j->conn->vecs_out, 1);
    j->vec = v;
  }
  return v;
}

void
nbd_job_release (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;

  if (j->cmd) {
    scsi_cmd_put (c->exp->cmds, j->cmd);
    atomic_fetch_sub (&c->cmds_out, 1);
    j->cmd = NULL;
  }
  if (j->vec) {
    blkio_vec_put (c->exp->io, j->vec);
    atomic_fetch_sub (&c->vecs_out, 1);
    j->vec = NULL;
  }
  pthread_mutex_lock (&c->lock);
  j->next = c->free_jobs;
  c->free_jobs = j;
  c->inflight--;
  c->bytes_inflight -= j->bytes;
  c->completions++;
  pthread_cond_broadcast (&c->cond);
  unref_locked (c);                   /* may free c: the last touch */
}

unsigned
nbd_conn_drain (struct nbd_conn *c)
{
  pthread_mutex_lock (&c->lock);
  while (c->inflight > 0) {
    uint64_t before = c->completions;
    struct timespec dl = sync_deadline_ns (NBD_CLEANUP_TIMEOUT * UINT64_C (1000000000));
    int r = 0;
    while (c->inflight > 0 && c->completions == before && r != ETIMEDOUT)
      r = pthread_cond_timedwait (&c->cond, &c->lock, &dl);
    if (r == ETIMEDOUT && c->completions == before)
      break;
  }
  unsigned left = c->inflight;
  pthread_mutex_unlock (&c->lock);
  return left;
}
