/* daemon/systemd: sgblkd under systemd, through libsystemd.
 *
 * Socket activation: systemd binds the sockets of a .socket unit and
 * hands them over as descriptors 3, 4, ... (LISTEN_FDS, for the PID in
 * LISTEN_PID).  daemon_systemd_sockets takes them before the stack is
 * built, unsetting the variables so that nothing the daemon starts sees
 * them, and cancels the default TCP port; daemon_systemd_listen gives
 * them to the NBD server once it exists.  The handed-over sockets are
 * then the only ones: -U, -p and -b are refused, since a unit that names
 * sockets in two places is a mistake better caught at start.
 *
 * Readiness (Type=notify): READY=1 with a one-line STATUS= once every
 * listener accepts and the FUSE file is mounted; STOPPING=1 when SIGTERM
 * or SIGINT arrives.  A daemon that detached sends READY=1 on behalf of
 * the process systemd started (still waiting for its verdict), naming
 * itself in MAINPID=.  SIGHUP (the unit's ExecReload=) is RELOADING=1,
 * then READY=1 with a STATUS= of the exports now served; STATUS= also
 * changes when an export that waited for its old version to close
 * starts.
 *
 * State: the descriptors taken (taken[0..ntaken)), kept here between the
 * first two calls; once the server listens on them they are the
 * server's, and only their number (ntaken_served) is kept.  Without
 * libsystemd the daemon still notices LISTEN_FDS and NOTIFY_SOCKET, and
 * says that it cannot honour them.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "daemon.h"
#include "log.h"

#ifdef HAVE_LIBSYSTEMD
/* The NBD server's limit on listeners. */
#define MAX_TAKEN 8

static int taken[MAX_TAKEN];
static char *taken_names[MAX_TAKEN];
static unsigned ntaken;
/* How many the server listens on, for the STATUS= line. */
static unsigned ntaken_served;

/* Where an inherited socket listens, for the log: "unix:PATH" or
 * "ADDR:PORT", and the NBD URI of that address (empty if none). */
static void
describe (int fd, const char *export, char *where, size_t wsz,
          char *uri, size_t usz)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN];

  snprintf (where, wsz, "descriptor %d", fd);
  uri[0] = '\0';
  if (getsockname (fd, (struct sockaddr *) &ss, &sl) == -1)
    return;
  if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *su = (const struct sockaddr_un *) &ss;
    if (sl > offsetof (struct sockaddr_un, sun_path) && su->sun_path[0]) {
      snprintf (where, wsz, "unix:%.*s",
                (int) (sl - offsetof (struct sockaddr_un, sun_path)), su->sun_path);
      snprintf (uri, usz, "nbd+unix:///%s?socket=%s", export, where + 5);
    }
    else
      snprintf (where, wsz, "an unnamed or abstract unix socket (descriptor %d)", fd);
  }
  else if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *si = (const struct sockaddr_in *) &ss;
    inet_ntop (AF_INET, &si->sin_addr, host, sizeof host);
    snprintf (where, wsz, "%s:%u", host, ntohs (si->sin_port));
    snprintf (uri, usz, "nbd://%s/%s", where, export);
  }
  else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *si = (const struct sockaddr_in6 *) &ss;
    inet_ntop (AF_INET6, &si->sin6_addr, host, sizeof host);
    snprintf (where, wsz, "[%s]:%u", host, ntohs (si->sin6_port));
    snprintf (uri, usz, "nbd://%s/%s", where, export);
  }
}

/* "4 GiB", "1536 MiB", "1000 bytes": exact, and short for usual sizes. */
static void
human_size (uint64_t b, char *buf, size_t sz)
{
  static const char *unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
  unsigned u = 0;

  while (u < 5 && b >= 1024 && b % 1024 == 0) {
    b /= 1024;
    u++;
  }
  snprintf (buf, sz, "%" PRIu64 " %s", b, unit[u]);
}
#endif

int
daemon_systemd_sockets (struct cli_options *o)
{
#ifdef HAVE_LIBSYSTEMD
  char **names = NULL;
  int n = sd_listen_fds_with_names (1, &names);

  if (n < 0) {
    log_error ("LISTEN_FDS: cannot take the sockets systemd passed: %s",
               strerror (-n));
    errno = -n;
    return -1;
  }
  if (n == 0)
    return 0;
  for (int i = 0; i < n && names; i++)
    if ((unsigned) i < MAX_TAKEN)
      taken_names[i] = names[i];
    else
      free (names[i]);
  free (names);
  if (n > MAX_TAKEN) {
    log_error ("LISTEN_FDS: systemd passed %d sockets; sgblkd listens on %d at most",
               n, MAX_TAKEN);
    errno = EMFILE;
    return -1;
  }
  if (o->nunix > 0 || o->port_given || strcmp (o->bind, "127.0.0.1") != 0) {
    log_error ("-U, -p and -b (unix, port and bind in a configuration file) "
               "cannot be used with socket activation: "
               "the sockets are the ones systemd passed (LISTEN_FDS)");
    errno = EINVAL;
    return -1;
  }
  for (int i = 0; i < n; i++)
    taken[ntaken++] = SD_LISTEN_FDS_START + i;
  o->port = -1;                  /* no default port besides them */
  return 0;
#else
  const char *pid = getenv ("LISTEN_PID");
  if (getenv ("LISTEN_FDS") && pid && strtol (pid, NULL, 10) == (long) getpid ()) {
    log_error ("LISTEN_FDS: socket activation needs sgblkd built with libsystemd "
               "(./configure --with-libsystemd)");
    errno = ENOTSUP;
    return -1;
  }
  (void) o;
  return 0;
#endif
}

int
daemon_systemd_listen (struct daemon *d)
{
#ifdef HAVE_LIBSYSTEMD
  char where[160], uri[256];

  /* All taken before any is announced: a refusal is the only line. */
  for (unsigned i = 0; i < ntaken; i++) {
    if (nbd_server_listen_fd (d->srv, taken[i]) == -1) {
      int e = errno;
      const char *why =
        e == ENOTSOCK ? "is not a socket" :
        e == EPROTOTYPE ? "is not a stream socket of AF_UNIX, AF_INET or AF_INET6 (ListenStream=)" :
        e == EINVAL ? "is not listening (Accept=no is needed)" : strerror (e);
      describe (taken[i], d->stacks->opt->export_name, where, sizeof where, uri, sizeof uri);
      log_error ("socket %s from systemd (%s) %s", where,
                 taken_names[i] ? taken_names[i] : "unknown", why);
      errno = e;
      return -1;
    }
  }
  /* (The server owns them now; they stay open until it is destroyed.) */
  for (unsigned i = 0; i < ntaken; i++) {
    describe (taken[i], d->stacks->opt->export_name, where, sizeof where, uri, sizeof uri);
    log_info ("listening on %s from systemd (%s)%s%s%s", where,
              taken_names[i] ? taken_names[i] : "unknown",
              uri[0] ? " (" : "", uri, uri[0] ? ")" : "");
    free (taken_names[i]);
    taken_names[i] = NULL;
  }
  ntaken_served = ntaken;
  ntaken = 0;
#else
  (void) d;
#endif
  return 0;
}

#ifdef HAVE_LIBSYSTEMD
/* The STATUS= line: what the exports on the server's table are (one in
 * full; several by name, the log has the rest), on how many sockets, and
 * whether the last reload was refused. */
static void
status_line (const struct daemon *dm, char *buf, size_t sz)
{
  unsigned sockets = dm->opt->nunix + (dm->opt->port > 0) + ntaken_served;
  const struct daemon_stack *one = NULL;
  unsigned count = 0;
  size_t n;

  for (const struct daemon_stack *d = dm->stacks; d; d = d->next)
    if (d->listed) {
      one = d;
      count++;
    }
  if (count == 1) {
    const struct cli_options *o = one->opt;
    char size[32], fuse[300] = "";
    human_size (one->store->size, size, sizeof size);
    if (o->fuse_mount)
      snprintf (fuse, sizeof fuse, ", file %s/%s", o->fuse_mount,
                o->export_name[0] ? o->export_name : "disk");
    n = (size_t) snprintf (buf, sz, "Serving %s of %s as export '%s' on %u socket%s%s%s",
                           o->file ? o->file : "an in-memory disk", size,
                           o->export_name, sockets, sockets == 1 ? "" : "s",
                           fuse, o->read_only ? ", read-only" : "");
  }
  else {
    char names[400] = "";
    size_t k = 0;
    for (const struct daemon_stack *d = dm->stacks; d; d = d->next)
      if (d->listed && k < sizeof names)
        k += (size_t) snprintf (names + k, sizeof names - k, "%s'%s'",
                                k ? ", " : "", d->opt->export_name);
    n = (size_t) snprintf (buf, sz, "Serving %u exports%s%s%s on %u socket%s", count,
                           count ? " (" : "", names, count ? ")" : "",
                           sockets, sockets == 1 ? "" : "s");
  }
  if (dm->reload_failed && n < sz)
    snprintf (buf + n, sz - n, "; reloading %s failed, these are kept (see the log)",
              dm->config);
}

/* sd_pid_notifyf as pid, with STATUS= last; a failure is logged. */
static void
notify (pid_t pid, const struct daemon *dm, const char *fields, const char *what)
{
  char status[1024];

  status_line (dm, status, sizeof status);
  int r = sd_pid_notifyf (pid, 0, "%sSTATUS=%s", fields, status);
  if (r < 0)
    log_warn ("NOTIFY_SOCKET: cannot tell systemd %s: %s", what, strerror (-r));
}
#endif

void
daemon_systemd_ready (const struct daemon *dm, bool detached)
{
#ifdef HAVE_LIBSYSTEMD
  char fields[64];

  if (getenv ("NOTIFY_SOCKET") == NULL)
    return;
  /* From a detached daemon, on behalf of the parent systemd waits on
   * (its PID is the one systemd accepts notifications from). */
  snprintf (fields, sizeof fields, "READY=1\nMAINPID=%ld\n", (long) getpid ());
  notify (detached ? getppid () : 0, dm, fields, "the daemon is ready");
#else
  (void) dm;
  (void) detached;
  if (getenv ("NOTIFY_SOCKET"))
    log_warn ("NOTIFY_SOCKET: this sgblkd was built without libsystemd and "
              "cannot say it is ready (Type=notify needs ./configure --with-libsystemd)");
#endif
}

/* After READY=1 the daemon is MAINPID, detached or not: it speaks for
 * itself. */
void
daemon_systemd_reloading (const struct daemon *dm)
{
#ifdef HAVE_LIBSYSTEMD
  if (getenv ("NOTIFY_SOCKET"))
    sd_notifyf (0, "RELOADING=1\nSTATUS=Reloading %s",
                dm->config ? dm->config : "(no configuration file)");
#else
  (void) dm;
#endif
}

void
daemon_systemd_reloaded (const struct daemon *dm)
{
#ifdef HAVE_LIBSYSTEMD
  if (getenv ("NOTIFY_SOCKET"))
    notify (0, dm, "READY=1\n", "the reload is done");
#else
  (void) dm;
#endif
}

void
daemon_systemd_status (const struct daemon *dm)
{
#ifdef HAVE_LIBSYSTEMD
  if (getenv ("NOTIFY_SOCKET"))
    notify (0, dm, "", "what is served");
#else
  (void) dm;
#endif
}

void
daemon_systemd_stopping (void)
{
#ifdef HAVE_LIBSYSTEMD
  if (getenv ("NOTIFY_SOCKET"))
    sd_notify (0, "STOPPING=1\nSTATUS=Finishing in-flight I/O, flushing and exiting");
#endif
}
