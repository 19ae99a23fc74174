/* The worker threads shared by every connection of a server.
 *
 * One FIFO of jobs under qlock.  A worker executes a job and hands its
 * reply to the job's connection (nbd_send), which never blocks: however
 * a client treats its replies, the workers go on serving the others.
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
  pthread_cond_signal (&s->qcond);
  pthread_mutex_unlock (&s->qlock);
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

  nbd_export_each (s, true, prepare_export, NULL);
  pthread_mutex_lock (&s->qlock);
  for (;;) {
    struct nbd_job *j = s->qhead;
    if (j == NULL) {
      if (s->workers_exit)
        break;
      pthread_cond_wait (&s->qcond, &s->qlock);
      continue;
    }
    s->qhead = j->next;
    if (s->qhead == NULL)
      s->qtail = NULL;
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
  sync_mutex_init_adaptive (&s->qlock);
  pthread_cond_init (&s->qcond, NULL);
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
