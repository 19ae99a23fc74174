/* A connection's sender: its replies, and only its own.
 *
 * Replies leave in completion order, encoded in their jobs (wire.c).  The
 * socket has one writer at a time (send_lock), and whoever holds send_lock
 * first sends what the send queue holds, so the bytes of two replies never
 * interleave: a reply sent in part stays at the queue's head until the
 * rest goes.
 *
 * Who sends:
 *   - a worker, without blocking: with send_lock free and the queue
 *     empty, it sends its reply at once (MSG_DONTWAIT); whatever the
 *     socket does not take goes to the queue.  A worker never waits for
 *     a client.
 *   - the connection's sender thread, blocking: it sends what is queued.
 *     A client that takes nothing for NBD_SEND_TIMEOUT seconds
 *     (SO_SNDTIMEO) is disconnected.
 *   - the session, for the replies of requests it ran itself, held and
 *     sent together when it has nothing more to read; without blocking,
 *     as a worker does: a client may send all its requests before it
 *     reads a reply, and it must still be read (up to the connection's
 *     limits on what is in flight).
 *
 * Under TLS a non-blocking send takes all or nothing (tls.c): nothing
 * unless the socket has room for the whole batch, and the reply is then
 * the sender thread's, queued as if the socket were full.
 *
 * Jobs sent are released only after send_lock is dropped: the release of
 * the last job may free the connection.
 *
 * Once the connection is dead (a send failed, timed out, or
 * nbd_send_abort), nothing more is sent: replies are dropped and their
 * jobs released.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define SEND_IOV 64                     /* iovecs gathered into one sendmsg */

static bool
is_dead (struct nbd_conn *c)
{
  return atomic_load_explicit (&c->dead, memory_order_relaxed);
}

static void
release_all (struct nbd_job *list)
{
  while (list) {
    struct nbd_job *next = list->next;
    nbd_job_release (list);
    list = next;
  }
}

static void
mark_dead (struct nbd_conn *c)
{
  atomic_store (&c->dead, true);
  shutdown (c->fd, SHUT_RDWR);          /* wake the session: the peer is gone */
}

/* Drop the first n bytes of j's reply. */
static void
advance (struct nbd_job *j, size_t n)
{
  int i = 0;
  while (n > 0 && n >= j->iov[i].iov_len)
    n -= j->iov[i++].iov_len;
  if (n > 0) {
    j->iov[i].iov_base = (uint8_t *) j->iov[i].iov_base + n;
    j->iov[i].iov_len -= n;
  }
  memmove (j->iov, j->iov + i, (size_t) (j->iovcnt - i) * sizeof j->iov[0]);
  j->iovcnt -= i;
}

static size_t
reply_bytes (const struct nbd_job *j)
{
  size_t n = 0;
  for (int i = 0; i < j->iovcnt; i++)
    n += j->iov[i].iov_len;
  return n;
}

/* Send the jobs of *list in order, several to a sendmsg; those sent whole
 * move to *done.  send_lock held.  Returns 0 when all went; -1 with errno
 * when a send failed (EAGAIN: the socket took no more, or the timeout
 * passed), the rest left in *list, its first job perhaps sent in part. */
static int
send_jobs (struct nbd_conn *c, struct nbd_job **list, struct nbd_job **done, int flags)
{
  while (*list) {
    struct iovec v[SEND_IOV];
    struct iovec *iov = v;
    int n = 0;

    for (struct nbd_job *k = *list; k && n + k->iovcnt <= SEND_IOV; k = k->next) {
      memcpy (v + n, k->iov, (size_t) k->iovcnt * sizeof v[0]);
      n += k->iovcnt;
    }
    if (n == 0) {                       /* one large reply alone */
      iov = (*list)->iov;
      n = (*list)->iovcnt > 1024 ? 1024 : (*list)->iovcnt;
    }
    ssize_t r = nbd_io_sendv (c, iov, n, (flags & MSG_DONTWAIT) != 0);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    size_t sent = (size_t) r;
    while (*list && sent > 0) {
      struct nbd_job *j = *list;
      size_t left = reply_bytes (j);
      if (sent < left) {
        advance (j, sent);
        break;
      }
      sent -= left;
      *list = j->next;
      j->next = *done;
      *done = j;
    }
  }
  return 0;
}

static struct nbd_job *
tail_of (struct nbd_job *list)
{
  while (list->next)
    list = list->next;
  return list;
}

/* Holding send_lock: send the queue, then 'mine' after it.  Blocking, or
 * not: then what the socket does not take is queued for the sender
 * thread.  Returns the jobs to release once send_lock is dropped. */
static struct nbd_job *
flush_locked (struct nbd_conn *c, struct nbd_job *mine, bool block)
{
  struct nbd_job *list, *done = NULL;

  pthread_mutex_lock (&c->sq_lock);
  list = c->sq_head;
  c->sq_head = c->sq_tail = NULL;
  pthread_mutex_unlock (&c->sq_lock);
  if (list)                             /* mine goes after what waited */
    tail_of (list)->next = mine;
  else
    list = mine;
  int r = is_dead (c) ? 0 : send_jobs (c, &list, &done, block ? 0 : MSG_DONTWAIT);
  bool full = r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
  if (full && !block) {
    /* Back to the head of the queue, for the sender thread. */
    pthread_mutex_lock (&c->sq_lock);
    struct nbd_job *t = tail_of (list);
    t->next = c->sq_head;
    if (c->sq_head == NULL)
      c->sq_tail = t;
    c->sq_head = list;
    pthread_cond_signal (&c->sq_cond);
    pthread_mutex_unlock (&c->sq_lock);
    return done;
  }
  if (r == -1) {                       /* failed, or the send timeout passed */
    if (full)
      NSTAT_INC (c->srv, send_timeouts);
    mark_dead (c);
  }
  /* Sent, or never to be (dead): either way, done with. */
  while (list) {
    struct nbd_job *next = list->next;
    list->next = done;
    done = list;
    list = next;
  }
  return done;
}

/* Send the jobs head..tail without waiting: at once if nobody holds the
 * socket, else after the queue, by whoever sends next. */
static void
send_list (struct nbd_conn *c, struct nbd_job *head, struct nbd_job *tail)
{
  tail->next = NULL;
  if (is_dead (c)) {
    release_all (head);
    return;
  }
  if (pthread_mutex_trylock (&c->send_lock) == 0) {
    struct nbd_job *done = flush_locked (c, head, false);
    pthread_mutex_unlock (&c->send_lock);
    release_all (done);
    return;
  }
  pthread_mutex_lock (&c->sq_lock);
  if (c->sq_tail)
    c->sq_tail->next = head;
  else {
    c->sq_head = head;
    pthread_cond_signal (&c->sq_cond);
  }
  c->sq_tail = tail;
  pthread_mutex_unlock (&c->sq_lock);
}

void
nbd_send (struct nbd_job *j)
{
  send_list (j->conn, j, j);
}

void
nbd_send_hold (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;

  j->next = NULL;
  if (c->batch_tail)
    c->batch_tail->next = j;
  else
    c->batch_head = j;
  c->batch_tail = j;
}

void
nbd_send_batch (struct nbd_conn *c)
{
  struct nbd_job *head = c->batch_head, *tail = c->batch_tail;

  if (head == NULL)
    return;
  c->batch_head = c->batch_tail = NULL;
  send_list (c, head, tail);
}

static void *
sender_main (void *arg)
{
  struct nbd_conn *c = arg;

  pthread_mutex_lock (&c->sq_lock);
  for (;;) {
    while (c->sq_head == NULL && !c->sq_stop)
      pthread_cond_wait (&c->sq_cond, &c->sq_lock);
    if (c->sq_head == NULL)
      break;                            /* stopping, nothing left */
    pthread_mutex_unlock (&c->sq_lock);
    pthread_mutex_lock (&c->send_lock);
    struct nbd_job *done = flush_locked (c, NULL, true);
    pthread_mutex_unlock (&c->send_lock);
    release_all (done);
    pthread_mutex_lock (&c->sq_lock);
  }
  pthread_mutex_unlock (&c->sq_lock);
  return NULL;
}

int
nbd_sender_start (struct nbd_conn *c)
{
  struct timeval tv = { .tv_sec = NBD_SEND_TIMEOUT };

  setsockopt (c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  /* A large read reply then leaves in one sendmsg instead of several
   * sleeps of its sender, each a wake-up of the client (measured on 1 MiB
   * reads).  The kernel caps it at net.core.wmem_max unless we may force
   * it; in-flight data stays bounded by NBD_CONN_BYTES either way. */
  int sb = NBD_SNDBUF;
  if (setsockopt (c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof sb) == -1)
    setsockopt (c->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  /* GnuTLS encrypts on the sender's stack: give it a session's. */
  size_t stack = c->tls ? NBD_THREAD_STACK_MIN : NBD_SENDER_STACK;
  if (nbd_thread_start (&c->sender, stack, sender_main, c) == -1)
    return -1;
  c->sender_running = true;
  return 0;
}

void
nbd_send_abort (struct nbd_conn *c)
{
  mark_dead (c);
  pthread_mutex_lock (&c->sq_lock);
  struct nbd_job *list = c->sq_head;
  c->sq_head = c->sq_tail = NULL;
  pthread_mutex_unlock (&c->sq_lock);
  release_all (list);
}

void
nbd_sender_stop (struct nbd_conn *c)
{
  if (!c->sender_running)
    return;
  pthread_mutex_lock (&c->sq_lock);
  c->sq_stop = true;
  pthread_cond_signal (&c->sq_cond);
  pthread_mutex_unlock (&c->sq_lock);
  nbd_thread_join (&c->sender);
  c->sender_running = false;
}
