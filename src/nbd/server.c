/* The NBD server: listening sockets, the acceptor thread, a thread per
 * connection's session, and the list of connections (under clock).
 *
 * Limits: at most max_conns connections are served at once; the acceptor
 * answers the rest with a refusal (refuse.c).  The default keeps every
 * connection within the descriptor limit (RLIMIT_NOFILE): a connection
 * holds one descriptor, and what the process holds at start, the
 * refusals being answered and NBD_FD_SPARE more (a FUSE mount, the
 * spill file, logging) are set aside.  So accept does not run out of
 * descriptors because of clients; if it does anyway, the acceptor gives
 * up its spare descriptor to take the connection and refuse it, rather
 * than leave it waiting in the backlog and retry forever.
 *
 * A session thread, when it finishes, puts its record on the finished
 * list and wakes the acceptor (reap_fd), which joins it and so gives its
 * stack back (thread.c); stop and destroy join whatever is left.
 *
 * Stopping is one-way and bounded, whatever clients do: stop accepting,
 * mark stopping (requests read from now on get ESHUTDOWN), shut the read
 * side of every connection so its session ends and runs its cleanup; a
 * connection still there after NBD_STOP_GRACE seconds (its client takes
 * no replies) has its socket shut down whole, which drops its replies;
 * then the workers drain their queue and exit.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sync.h"

/* nbd_server_error's line, per thread like errno. */
static _Thread_local char create_error[512];

const char *
nbd_server_error (void)
{
  return create_error[0] ? create_error : NULL;
}

struct nbd_server *
nbd_server_create (const struct nbd_server_config *cfg)
{
  struct nbd_server *s;

  create_error[0] = '\0';
  if (cfg == NULL || (cfg->nexports > 0 && cfg->exports == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->cfg = *cfg;
  pthread_mutex_init (&s->elock, NULL);
  nbd_workq_init (s);                   /* (a release takes qlock) */
  for (unsigned i = 0; i < cfg->nexports; i++)
    if (nbd_server_add_export (s, &cfg->exports[i]) == -1) {
      int e = errno;
      free (s->exports);
      free (s);
      errno = e;
      return NULL;
    }
  if (s->cfg.threads == 0)
    s->cfg.threads = sync_default_threads ();
  /* Half the CPUs may poll (wire.c): the rest are the clients'. */
  long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
  s->max_pollers = ncpu >= 4 ? (unsigned) ncpu / 2 : 1;
  if (s->cfg.handshake_timeout == 0)
    s->cfg.handshake_timeout = NBD_HANDSHAKE_TIMEOUT;
  s->refused = calloc (NBD_REFUSE_MAX, sizeof *s->refused);
  s->reap_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->refused == NULL || s->reap_fd == -1 || pipe2 (s->stop_pipe, O_CLOEXEC) == -1) {
    int e = errno;
    if (s->reap_fd >= 0)
      close (s->reap_fd);
    free (s->refused);
    free (s->exports);
    free (s);
    errno = e;
    return NULL;
  }
  if (nbd_tls_load (s, create_error, sizeof create_error) == -1) {
    int e = errno;
    close (s->reap_fd);
    close (s->stop_pipe[0]);
    close (s->stop_pipe[1]);
    free (s->refused);
    free (s->exports);
    free (s);
    errno = e;
    return NULL;
  }
  s->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  pthread_mutex_init (&s->clock, NULL);
  pthread_cond_init (&s->ccond, NULL);
  return s;
}

int
nbd_server_add_export (struct nbd_server *s, struct nbd_export *e)
{
  int r = -1;

  assert (e && e->name && e->io && e->io->lu == e->lu && e->cmds && e->sgv);
  pthread_mutex_lock (&s->elock);
  for (unsigned i = 0; i < s->nexports; i++)
    if (s->exports[i]->listed && strcmp (s->exports[i]->name, e->name) == 0) {
      errno = EEXIST;
      goto out;
    }
  /* A started server's jobs have reply iovecs for the payloads it
   * started with (s->reply_iov). */
  if (s->started && NBD_REPLY_IOV (nbd_export_max_payload (e)) > s->reply_iov) {
    errno = EINVAL;
    goto out;
  }
  if (s->nexports == s->exports_cap) {
    unsigned cap = s->exports_cap ? 2 * s->exports_cap : 4;
    struct nbd_export **t = realloc (s->exports, cap * sizeof *t);
    if (t == NULL)
      goto out;
    s->exports = t;
    s->exports_cap = cap;
  }
  e->users = 0;
  e->listed = true;
  s->exports[s->nexports++] = e;
  atomic_store_explicit (&s->table_exports, s->nexports, memory_order_relaxed);
  r = 0;
 out:
  pthread_mutex_unlock (&s->elock);
  return r;
}

void
nbd_server_remove_export (struct nbd_server *s, struct nbd_export *e)
{
  pthread_mutex_lock (&s->elock);
  e->listed = false;
  pthread_mutex_unlock (&s->elock);
}

int
nbd_server_release_export (struct nbd_server *s, struct nbd_export *e,
                           unsigned *users)
{
  int r = 0;

  pthread_mutex_lock (&s->elock);
  assert (!e->listed);
  if (users)
    *users = e->users;
  /* With no user, no job of e is queued or can be: only a worker still
   * counting its last one out may have it. */
  if (e->users > 0 || nbd_workq_holds (s, e)) {
    errno = EBUSY;
    r = -1;
  }
  else
    for (unsigned i = 0; i < s->nexports; i++)
      if (s->exports[i] == e) {
        s->exports[i] = s->exports[--s->nexports];
        atomic_store_explicit (&s->table_exports, s->nexports, memory_order_relaxed);
        break;
      }
  pthread_mutex_unlock (&s->elock);
  if (r == 0)
    nbd_workq_wake (s);                 /* the cap may have risen */
  return r;
}

struct nbd_export *
nbd_export_get (struct nbd_server *s, const char *name, size_t len)
{
  struct nbd_export *found = NULL;

  pthread_mutex_lock (&s->elock);
  for (unsigned i = 0; i < s->nexports; i++) {
    struct nbd_export *e = s->exports[i];
    if (e->listed && strlen (e->name) == len && memcmp (e->name, name, len) == 0) {
      e->users++;
      found = e;
      break;
    }
  }
  pthread_mutex_unlock (&s->elock);
  return found;
}

void
nbd_export_put (struct nbd_server *s, struct nbd_export *e)
{
  if (e == NULL)
    return;
  pthread_mutex_lock (&s->elock);
  assert (e->users > 0);
  e->users--;
  pthread_mutex_unlock (&s->elock);
}

void
nbd_export_each (struct nbd_server *s, bool listed_only,
                 void (*fn) (struct nbd_export *e, void *arg), void *arg)
{
  pthread_mutex_lock (&s->elock);
  for (unsigned i = 0; i < s->nexports; i++)
    if (!listed_only || s->exports[i]->listed)
      fn (s->exports[i], arg);
  pthread_mutex_unlock (&s->elock);
}

static int
add_listener (struct nbd_server *s, int fd, const char *unix_path)
{
  if (s->nlisten == sizeof s->listen_fds / sizeof s->listen_fds[0]) {
    close (fd);
    errno = EMFILE;
    return -1;
  }
  s->listen_fds[s->nlisten] = fd;
  s->unix_paths[s->nlisten] = unix_path ? strdup (unix_path) : NULL;
  s->nlisten++;
  return 0;
}

int
nbd_server_listen_unix (struct nbd_server *s, const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1) {
    int e = errno;
    struct stat st;
    bool exists = e == EADDRINUSE && stat (path, &st) == 0;
    if (!exists || !S_ISSOCK (st.st_mode)) {
      close (fd);
      /* Something else by that name is nobody's socket to take over. */
      errno = exists ? ENOTSOCK : e;
      return -1;
    }
    /* The path exists: is somebody listening there? */
    int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int live = probe >= 0 && connect (probe, (struct sockaddr *) &sa, sizeof sa) == 0;
    if (probe >= 0)
      close (probe);
    if (live) {
      close (fd);
      errno = EADDRINUSE;               /* never take over a live server's socket */
      return -1;
    }
    unlink (path);                      /* stale, from a server that died */
    if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1) {
      e = errno;
      close (fd);
      errno = e;
      return -1;
    }
  }
  if (listen (fd, 128) == -1) {
    int e = errno;
    close (fd);
    unlink (path);
    errno = e;
    return -1;
  }
  return add_listener (s, fd, path);
}

int
nbd_server_listen_tcp (struct nbd_server *s, const char *addr, int port)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
  struct addrinfo *res, *ai;
  char portstr[16];
  int fd = -1, e = EADDRNOTAVAIL, r;

  snprintf (portstr, sizeof portstr, "%d", port);
  r = getaddrinfo (addr, portstr, &hints, &res);
  if (r != 0) {
    errno = r == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    int one = 1;
    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd == -1) {
      e = errno;
      continue;
    }
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 128) == 0)
      break;
    e = errno;
    close (fd);
    fd = -1;
  }
  freeaddrinfo (res);
  if (fd == -1) {
    errno = e;
    return -1;
  }
  return add_listener (s, fd, NULL);
}

/* An inherited socket (systemd's socket activation): it must already be
 * a listening stream socket of a family NBD runs over; its path, if a
 * Unix socket, belongs to whoever made it, so it is never unlinked. */
int
nbd_server_listen_fd (struct nbd_server *s, int fd)
{
  int type, listening, domain;
  socklen_t len;
  struct stat st;

  if (fstat (fd, &st) == -1)
    return -1;
  if (!S_ISSOCK (st.st_mode)) {
    errno = ENOTSOCK;
    return -1;
  }
  len = sizeof type;
  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
    return -1;
  len = sizeof domain;
  if (getsockopt (fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1)
    return -1;
  len = sizeof listening;
  if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1)
    return -1;
  if (type != SOCK_STREAM ||
      (domain != AF_UNIX && domain != AF_INET && domain != AF_INET6)) {
    errno = EPROTOTYPE;
    return -1;
  }
  if (!listening) {
    errno = EINVAL;
    return -1;
  }
  /* Inherited without it; the daemon's own children need it not. */
  int flags = fcntl (fd, F_GETFD);
  if (flags == -1 || fcntl (fd, F_SETFD, flags | FD_CLOEXEC) == -1)
    return -1;
  if (s->nlisten == sizeof s->listen_fds / sizeof s->listen_fds[0]) {
    errno = EMFILE;             /* (not closed: the caller's descriptor) */
    return -1;
  }
  return add_listener (s, fd, NULL);
}

/* A connection's thread: its session, then off the list and onto the
 * finished one; the session's reference goes last (jobs still taken keep
 * the object alive). */
static void *
conn_main (void *arg)
{
  struct nbd_conn *c = arg;
  struct nbd_server *s = c->srv;
  struct nbd_thread *self = c->session;

  nbd_session_run (c);
  pthread_mutex_lock (&s->clock);
  for (struct nbd_conn **pp = &s->conns; *pp; pp = &(*pp)->next_conn)
    if (*pp == c) {
      *pp = c->next_conn;
      break;
    }
  s->nconns--;
  self->next = s->finished;
  s->finished = self;
  pthread_cond_broadcast (&s->ccond);
  pthread_mutex_unlock (&s->clock);
  nbd_conn_put (c);
  uint64_t one = 1;
  if (write (s->reap_fd, &one, sizeof one) != sizeof one) {
    /* The counter is full: the acceptor has wake-ups enough. */
  }
  return NULL;
}

/* Join the session threads that finished, giving back their stacks. */
static void
reap (struct nbd_server *s)
{
  uint64_t n;

  if (read (s->reap_fd, &n, sizeof n) == -1) {
    /* Nothing signalled: the list may still hold some. */
  }
  pthread_mutex_lock (&s->clock);
  struct nbd_thread *list = s->finished;
  s->finished = NULL;
  pthread_mutex_unlock (&s->clock);
  while (list) {
    struct nbd_thread *next = list->next;
    nbd_thread_join (list);
    free (list);
    list = next;
  }
}

/* The default connection limit: see the top of this file. */
static unsigned
default_max_conns (void)
{
  struct rlimit rl;
  unsigned used = 0;
  DIR *d = opendir ("/proc/self/fd");

  if (getrlimit (RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur > 1u << 20)
    rl.rlim_cur = 1u << 20;
  if (d) {
    while (readdir (d))
      used++;
    closedir (d);
  }
  uint64_t keep = (uint64_t) used + NBD_REFUSE_MAX + NBD_FD_SPARE;
  return rl.rlim_cur > keep + 1 ? (unsigned) (rl.rlim_cur - keep) : 1;
}

static void
name_peer (struct nbd_conn *c)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;

  if (getpeername (c->fd, (struct sockaddr *) &ss, &sl) == 0) {
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
      char host[INET6_ADDRSTRLEN], serv[8];
      int one = 1;
      setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (getnameinfo ((struct sockaddr *) &ss, sl, host, sizeof host, serv,
                       sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf (c->peer, sizeof c->peer, "%s:%s", host, serv);
    }
    else
      snprintf (c->peer, sizeof c->peer, "unix client fd %d", c->fd);
  }
}

int
nbd_server_add_connection (struct nbd_server *s, int fd)
{
  struct nbd_conn *c;

  if (atomic_load (&s->stopping)) {
    close (fd);
    errno = ESHUTDOWN;
    return -1;
  }
  if (!s->acceptor_started)
    reap (s);                           /* nobody else does */
  c = nbd_conn_new (s, fd);
  if (c == NULL) {
    close (fd);
    return -1;
  }
  if ((c->session = calloc (1, sizeof *c->session)) == NULL) {
    nbd_conn_put (c);                   /* closes fd */
    errno = ENOMEM;
    return -1;
  }
  name_peer (c);
  /* clock is held until the thread's record is complete: the thread
   * takes clock before it puts the record on the finished list. */
  pthread_mutex_lock (&s->clock);
  if (nbd_thread_start (c->session, 0, conn_main, c) == -1) {
    int e = errno;
    pthread_mutex_unlock (&s->clock);
    free (c->session);
    nbd_conn_put (c);                   /* closes fd */
    errno = e;
    return -1;
  }
  c->next_conn = s->conns;
  s->conns = c;
  s->nconns++;
  pthread_mutex_unlock (&s->clock);
  NSTAT_INC (s, connections_total);
  log_debug ("%s: connected", c->peer);
  return 0;
}

/* accept failed with EMFILE or ENFILE: take the connection with the
 * spare descriptor's slot, refuse it, and take the spare back. */
static void
out_of_descriptors (struct nbd_server *s, int lfd)
{
  if (s->spare_fd >= 0) {
    close (s->spare_fd);
    s->spare_fd = -1;
    int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
      nbd_refuse (s, fd, "the process is out of file descriptors", false);
    s->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
      return;
  }
  log_warn ("accept: %m");
  /* No spare either: back off rather than spin. */
  struct timespec ts = { 0, 100000000 };
  nanosleep (&ts, NULL);
}

static void *
acceptor (void *arg)
{
  struct nbd_server *s = arg;
  /* Listeners, the stop pipe, reap_fd, then the refused sockets. */
  struct pollfd pfd[8 + 2 + NBD_REFUSE_MAX];
  unsigned n = s->nlisten;
  char why[96];

  for (unsigned i = 0; i < n; i++)
    pfd[i] = (struct pollfd) { .fd = s->listen_fds[i], .events = POLLIN };
  pfd[n] = (struct pollfd) { .fd = s->stop_pipe[0], .events = POLLIN };
  pfd[n + 1] = (struct pollfd) { .fd = s->reap_fd, .events = POLLIN };
  for (;;) {
    int timeout;
    unsigned nr = nbd_refuse_poll (s, pfd + n + 2, &timeout);
    if (poll (pfd, n + 2 + nr, timeout) == -1) {
      if (errno == EINTR)
        continue;
      log_error ("accept loop: poll: %m");
      return NULL;
    }
    if (pfd[n].revents)
      return NULL;
    if (pfd[n + 1].revents)
      reap (s);
    nbd_refuse_events (s, pfd + n + 2);
    for (unsigned i = 0; i < n; i++) {
      if (!(pfd[i].revents & POLLIN))
        continue;
      int fd = accept4 (pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd == -1) {
        if (errno == EMFILE || errno == ENFILE)
          out_of_descriptors (s, pfd[i].fd);
        else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
          log_warn ("accept: %m");
        continue;
      }
      pthread_mutex_lock (&s->clock);
      unsigned open_now = s->nconns;
      pthread_mutex_unlock (&s->clock);
      if (open_now >= s->max_conns) {
        snprintf (why, sizeof why, "too many connections (the limit is %u); "
                  "try again later", s->max_conns);
        nbd_refuse (s, fd, why, true);
        continue;
      }
      if (nbd_server_add_connection (s, fd) == -1)
        log_warn ("cannot serve a new connection: %m");
    }
  }
}

int
nbd_server_start (struct nbd_server *s)
{
  if (s->started)
    return 0;
  if (nbd_workq_start (s) == -1)
    return -1;
  s->max_conns = s->cfg.max_connections ? s->cfg.max_connections : default_max_conns ();
  /* (Here: swap mode lowers the exports' payloads after the server is
   * made.) */
  /* Exports added later may not need more (nbd_server_add_export);
   * every payload is at most NBD_MAX_PAYLOAD. */
  pthread_mutex_lock (&s->elock);
  for (unsigned i = 0; i < s->nexports; i++) {
    unsigned n = NBD_REPLY_IOV (nbd_export_max_payload (s->exports[i]));
    if (n > s->reply_iov)
      s->reply_iov = n;
  }
  pthread_mutex_unlock (&s->elock);
  if (s->nlisten > 0) {
    if (pthread_create (&s->acceptor, NULL, acceptor, s) != 0) {
      errno = EAGAIN;
      return -1;
    }
    s->acceptor_started = true;
  }
  s->started = true;
  return 0;
}

static void
stop_export (struct nbd_export *e, void *arg)
{
  (void) arg;
  blkio_stop (e->io);
}

int
nbd_server_stop (struct nbd_server *s)
{
  if (s->stopped)
    return 0;
  atomic_store (&s->stopping, true);
  nbd_export_each (s, false, stop_export, NULL);  /* vector waits give up */
  if (s->acceptor_started) {
    char b = 1;
    if (write (s->stop_pipe[1], &b, 1) != 1)
      log_error ("cannot wake the accept loop: %m");
    pthread_join (s->acceptor, NULL);
    s->acceptor_started = false;
    nbd_refuse_close_all (s);
  }
  /* Stop every session's reading; each runs its own cleanup.  A client
   * still negotiating has nothing to finish. */
  pthread_mutex_lock (&s->clock);
  for (struct nbd_conn *c = s->conns; c; c = c->next_conn)
    shutdown (c->fd, atomic_load (&c->state) == NBD_CONN_HANDSHAKE ? SHUT_RDWR : SHUT_RD);
  bool aborted = false;
  struct timespec dl = sync_deadline_ns (NBD_STOP_GRACE * UINT64_C (1000000000));
  while (s->nconns > 0) {
    if (pthread_cond_timedwait (&s->ccond, &s->clock, &dl) != ETIMEDOUT)
      continue;
    if (aborted) {
      log_error ("stop: %u connections did not finish; exiting without them", s->nconns);
      break;
    }
    /* Whoever has not taken its replies by now gets none: their sockets
     * shut down, the senders drop them, and the sessions finish. */
    log_warn ("stop: %u connections still sending after %d s; disconnecting them",
              s->nconns, NBD_STOP_GRACE);
    for (struct nbd_conn *c = s->conns; c; c = c->next_conn)
      shutdown (c->fd, SHUT_RDWR);
    aborted = true;
    dl.tv_sec += NBD_CLEANUP_TIMEOUT + 2;
  }
  pthread_mutex_unlock (&s->clock);
  reap (s);                     /* those still running (stuck) are left */
  /* Workers finish what is queued, then exit. */
  if (s->started)
    nbd_workq_stop (s);
  s->stopped = true;
  return 0;
}

unsigned
nbd_server_listeners (const struct nbd_server *s)
{
  return s->nlisten;
}

void
nbd_server_get_stats (struct nbd_server *s, struct nbd_server_stats *st)
{
  st->connections_total = s->st.connections_total;
  pthread_mutex_lock (&s->clock);
  st->connections_open = s->nconns;
  pthread_mutex_unlock (&s->clock);
  st->requests = s->st.requests;
  st->errors = s->st.errors;
  st->bytes_read = s->st.bytes_read;
  st->bytes_written = s->st.bytes_written;
  st->handshake_failures = s->st.handshake_failures;
  st->cleanup_stuck = s->st.cleanup_stuck;
  st->refused = s->st.refused;
  st->idle_closed = s->st.idle_closed;
  st->max_connections = s->max_conns;
}

void
nbd_export_get_stats (const struct nbd_export *e, struct nbd_export_stats *st)
{
  st->connections_total = atomic_load_explicit (&e->conns.total, memory_order_relaxed);
  st->connections_open = atomic_load_explicit (&e->conns.open, memory_order_relaxed);
}

void
nbd_server_destroy (struct nbd_server *s)
{
  if (s == NULL)
    return;
  if (!s->stopped)
    nbd_server_stop (s);
  for (unsigned i = 0; i < s->nlisten; i++) {
    close (s->listen_fds[i]);
    if (s->unix_paths[i]) {
      unlink (s->unix_paths[i]);
      free (s->unix_paths[i]);
    }
  }
  close (s->stop_pipe[0]);
  close (s->stop_pipe[1]);
  close (s->reap_fd);
  if (s->spare_fd >= 0)
    close (s->spare_fd);
  free (s->refused);
  free (s->workers);
  nbd_tls_free (s);
  pthread_mutex_destroy (&s->clock);
  pthread_cond_destroy (&s->ccond);
  pthread_mutex_destroy (&s->elock);
  free (s->exports);
  free (s);
}
