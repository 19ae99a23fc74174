/* The worker threads shared by every connection of a server.
 *
 * One FIFO of jobs under qlock, and per export the number of workers
 * running one of its jobs (e->busy, also under qlock).  A worker takes
 * the first queued job whose export is below the cap: the workers but
 * one when the server's table holds more than one export, all of them
 * when it holds one (which so runs as it would without a cap).  A store
 * that stalls (a write-back to a file on a stuck device, a cluster that
 * stopped answering) holds each worker that runs one of its jobs until
 * it answers; the cap leaves a worker to the other exports whatever one
 * export's store does.  With a single worker (threads = 1) the cap is 1
 * and nothing is held back: there is no worker to spare, and an export
 * that stalls stalls the others.
 *
 * Invariants, under qlock:
 * - e->busy <= the cap, except when the cap fell (an export was added)
 *   while e's jobs ran: then no job of e starts until it is below.
 * - Jobs of one export, hence of one connection, start in the order
 *   they were queued: a job is skipped only when its export is at the
 *   cap, and then so are all of that export's jobs after it.  Only jobs
 *   of different exports overtake each other.  Nothing relies on more:
 *   with two or more workers a connection's jobs already run at the
 *   same time and complete in any order, and replies go out in
 *   completion order, which NBD allows (the client matches cookies; a
 *   FLUSH covers the writes replied to before it).  With one worker,
 *   jobs run one at a time in queue order, as before.
 * - A worker sleeps on qcond only when no queued job may start.  A job
 *   becomes startable when a worker finishes a job of its export (that
 *   worker goes on to the first startable job, which may be another
 *   export's, so if the export was at the cap it also wakes the waiting
 *   workers), or when the cap rises (an export left the table:
 *   nbd_workq_wake).  A job queued for an export at the cap wakes
 *   nobody.  So a worker never spins on jobs it skips.  A scan passes
 *   over at most the jobs in flight of the exports at the cap
 *   (NBD_JOBS_PER_CONN a connection).  When stopping, every job done
 *   wakes the waiting workers: a worker exits once the queue is empty,
 *   and another may have taken the last job.
 * - A worker counts its job out (busy--) only after it has handed the
 *   reply over, when the job, and with it the connection's use of the
 *   export, may already be gone: so nbd_server_release_export keeps an
 *   export while a worker still counts one of its jobs (nbd_workq_holds).
 *
 * A worker executes a job and hands its reply to the job's connection
 * (nbd_send), which never blocks: however a client treats its replies,
 * the workers go on serving the others; a job the store answers
 * asynchronously (nbd_job_submit) holds its worker only to submit it.
 * Stopping lets the workers finish what is queued, then joins them.
 * A worker readies itself for I/O on every export before it takes its
 * first job (blkio_thread_prepare): in swap mode a job must not be the
 * one to map the per-thread buffers of the store.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "log.h"
#include "sync.h"

/* How many workers one export's jobs may hold at once (see above). */
static unsigned
export_cap (struct nbd_server *s)
{
  unsigned n = s->cfg.threads;

  if (n < 2 || atomic_load_explicit (&s->table_exports, memory_order_relaxed) < 2)
    return n;
  return n - 1;
}

void
nbd_workq_init (struct nbd_server *s)
{
  sync_mutex_init_adaptive (&s->qlock);
  pthread_cond_init (&s->qcond, NULL);
}

void
nbd_workq_push (struct nbd_server *s, struct nbd_job *j)
{
  j->next = NULL;
  pthread_mutex_lock (&s->qlock);
  if (s->qtail)
    s->qtail->next = j;
  else
    s->qhead = j;
  s->qtail = j;
  /* At the cap, the worker that brings its export below it takes it. */
  if (j->conn->exp->busy < export_cap (s))
    pthread_cond_signal (&s->qcond);
  pthread_mutex_unlock (&s->qlock);
}

bool
nbd_workq_holds (struct nbd_server *s, const struct nbd_export *e)
{
  pthread_mutex_lock (&s->qlock);
  bool held = e->busy > 0;
  pthread_mutex_unlock (&s->qlock);
  return held;
}

void
nbd_workq_wake (struct nbd_server *s)
{
  pthread_mutex_lock (&s->qlock);
  pthread_cond_broadcast (&s->qcond);
  pthread_mutex_unlock (&s->qlock);
}

/* Take the first job that may start off the queue, and count it to its
 * export; NULL if none may (qlock held). */
static struct nbd_job *
take (struct nbd_server *s)
{
  unsigned cap = export_cap (s);
  struct nbd_job *prev = NULL;

  for (struct nbd_job *j = s->qhead; j; prev = j, j = j->next) {
    if (j->conn->exp->busy >= cap)
      continue;
    if (prev)
      prev->next = j->next;
    else
      s->qhead = j->next;
    if (s->qtail == j)
      s->qtail = prev;
    j->conn->exp->busy++;
    return j;
  }
  return NULL;
}

/* Map the thread's I/O buffers for the exports there are now (swap mode
 * maps nothing on the I/O path).  An export added later whose buffers
 * are larger has them mapped by its first request. */
static void
prepare_export (struct nbd_export *e, void *arg)
{
  (void) arg;
  if (blkio_thread_prepare (e->io) == -1)
    log_warn ("NBD worker: cannot map its I/O buffers ahead (%m): "
              "its first request will");
}

static void *
worker (void *arg)
{
  struct nbd_server *s = arg;
  struct nbd_export *done = NULL;       /* the export of the job just run */

  nbd_export_each (s, true, prepare_export, NULL);
  pthread_mutex_lock (&s->qlock);
  for (;;) {
    if (done) {
      /* Its jobs skipped at the cap may start now; when stopping, the
       * workers that wait for them may have to exit instead. */
      if ((done->busy-- >= export_cap (s) && s->qhead) || s->workers_exit)
        pthread_cond_broadcast (&s->qcond);
      done = NULL;
    }
    struct nbd_job *j = take (s);
    if (j == NULL) {
      if (s->workers_exit && s->qhead == NULL)
        break;
      pthread_cond_wait (&s->qcond, &s->qlock);
      continue;
    }
    done = j->conn->exp;
    pthread_mutex_unlock (&s->qlock);
    if (!nbd_job_submit (j)) {
      nbd_job_exec (j);
      nbd_send (j);
    }
    pthread_mutex_lock (&s->qlock);
  }
  pthread_mutex_unlock (&s->qlock);
  return NULL;
}

int
nbd_workq_start (struct nbd_server *s)
{
  s->workers = calloc (s->cfg.threads, sizeof *s->workers);
  if (s->workers == NULL)
    return -1;
  for (unsigned i = 0; i < s->cfg.threads; i++) {
    if (pthread_create (&s->workers[i], NULL, worker, s) != 0) {
      errno = EAGAIN;
      return -1;
    }
    s->nworkers++;
  }
  return 0;
}

void
nbd_workq_stop (struct nbd_server *s)
{
  pthread_mutex_lock (&s->qlock);
  s->workers_exit = true;
  pthread_cond_broadcast (&s->qcond);
  pthread_mutex_unlock (&s->qlock);
  for (unsigned i = 0; i < s->nworkers; i++)
    pthread_join (s->workers[i], NULL);
  s->nworkers = 0;
}
