/* sgblkd: command line, daemon life cycle and signal handling.
 *
 * Start-up parses the command line (and the --config file), builds the
 * daemon (daemon_build: each export's store, pools and logical unit, the
 * NBD server) with every listener bound and
 * the pidfile created while still attached to the terminal, so that "port
 * in use" or "socket held by a live daemon" reach the user before the
 * daemon says it serves, then daemonizes, writes its PID and starts
 * serving.  What is served, and how, is the daemon module's
 * (include/daemon.h); this file only sequences it.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigtimedwait, which also gives the once-a-second tick that
 * gives idle memory back; SIGHUP reloads the --config file.  Life cycle
 * of the main thread: SETUP -> SERVING -> (SIGTERM/SIGINT) STOPPING ->
 * exit 0.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "scsi.h"
#include "store.h"

/* The pidfile is made before the daemon says it serves, so that one that
 * cannot be written is a start-up error of one line; the PID goes in
 * after daemonizing, when it is known.  Closes fd. */
static int
write_pid (int fd)
{
  char buf[32];
  int n;

  n = snprintf (buf, sizeof buf, "%ld\n", (long) getpid ());
  if (write (fd, buf, (size_t) n) != n) {
    int e = errno;
    close (fd);
    errno = e ? e : EIO;
    return -1;
  }
  return close (fd);
}

/* Fork; the parent waits for the child's one-byte verdict on a pipe so
 * that the shell sees a failure after the fork, and exits with it. */
static int
daemonize (int *ready_fd)
{
  int pfd[2];
  pid_t pid;

  if (pipe (pfd) == -1)
    return -1;
  pid = fork ();
  if (pid == -1)
    return -1;
  if (pid > 0) {
    char verdict = 1;
    close (pfd[1]);
    if (read (pfd[0], &verdict, 1) != 1)
      verdict = 1;
    if (verdict != 0)
      fputs ("sgblkd: start-up failed after detaching; see the system log\n",
             stderr);
    _exit (verdict);
  }
  close (pfd[0]);
  if (setsid () == -1)
    return -1;
  int null = open ("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2 (null, 0); dup2 (null, 1); dup2 (null, 2);
    if (null > 2) close (null);
  }
  if (chdir ("/") == -1)
    return -1;
  *ready_fd = pfd[1];
  return 0;
}

static void
tell_parent (int *ready_fd, char verdict)
{
  if (*ready_fd >= 0) {
    if (write (*ready_fd, &verdict, 1) != 1) {
      /* The parent is gone; nothing to tell. */
    }
    close (*ready_fd);
    *ready_fd = -1;
  }
}

/* path made absolute (to use after chdir), allocated; NULL if out of
 * memory or the working directory is gone. */
static char *
absolute (const char *path)
{
  char cwd[4096], *r;

  if (path[0] == '/')
    return strdup (path);
  if (getcwd (cwd, sizeof cwd) == NULL || asprintf (&r, "%s/%s", cwd, path) == -1)
    return NULL;
  return r;
}

/* --stats-file over the exports there are now. */
static struct daemon_metrics *
metrics_start (const struct daemon *d)
{
  struct daemon_stack **v = NULL;
  unsigned n = daemon_stack_array (d, &v);
  struct daemon_metrics *m = daemon_metrics_start (d->opt->stats_file,
                                                   d->opt->stats_interval, v, n);
  free (v);
  return m;
}

static void
metrics_tick (struct daemon_metrics *m, const struct daemon *d, bool now)
{
  struct daemon_stack **v = NULL;
  unsigned n;

  if (m == NULL)
    return;
  n = daemon_stack_array (d, &v);
  daemon_metrics_tick (m, v, n, now);
  free (v);
}

int
main (int argc, char **argv)
{
  struct cli_options opt;
  struct cli_config cfg = { 0 };
  struct daemon d = { 0 };
  struct daemon_metrics *metrics = NULL;
  bool pidfile_made = false;
  char *pidfile = NULL;
  int pid_fd = -1;
  sigset_t sigs;
  int ready_fd = -1;
  int status = CLI_EXIT_RUNTIME;

  if (cli_parse (argc, argv, &opt, stderr) == -1)
    return CLI_EXIT_USAGE;
  if (opt.help) {
    cli_usage (stdout);
    return CLI_EXIT_OK;
  }
  if (opt.version) {
    printf ("sgblkd %s\n", PACKAGE_VERSION);
    return CLI_EXIT_OK;
  }

  if (opt.config &&
      cli_config_load (opt.config, argc, argv, &cfg, stderr) == -1)
    return errno == EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
  for (unsigned i = 0; i < cfg.n; i++) {
    if (cfg.daemon->opt.swap)
      daemon_swap_defaults (&cfg.exports[i]->opt);
    if (cli_check_memory (&cfg.exports[i]->opt, daemon_phys_memory (), stderr) == -1) {
      cli_config_free (&cfg);
      return CLI_EXIT_RUNTIME;
    }
  }
  if (!opt.config && cli_check_memory (&opt, daemon_phys_memory (), stderr) == -1)
    return CLI_EXIT_RUNTIME;

  log_init ("sgblkd", false, opt.verbose);
  /* Sockets systemd passed replace -U/-p (src/daemon/systemd.c), the
   * command line's or the configuration file's. */
  if (daemon_systemd_sockets (opt.config ? &cfg.daemon->opt : &opt) == -1) {
    cli_config_free (&cfg);
    return errno == EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
  }
  signal (SIGPIPE, SIG_IGN);
  /* Block the signals we take synchronously before any thread exists, so
   * that every thread inherits the mask. */
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGUSR1);
  sigaddset (&sigs, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);

  if (opt.swap && !opt.config)
    daemon_swap_defaults (&opt);
#ifdef SGBLK_TEST_HOOKS
  /* Tests make the store below the cache (or the in-memory disk) fail on
   * cue: SGBLK_TEST_STORE_FAULT is a fault store spec (include/store.h). */
  const char *store_fault = getenv ("SGBLK_TEST_STORE_FAULT");
  if (store_fault && *store_fault) {
    d.store_fault = store_fault;
    /* ... of one export only, with SGBLK_TEST_STORE_FAULT_EXPORT=NAME. */
    d.store_fault_export = getenv ("SGBLK_TEST_STORE_FAULT_EXPORT");
    log_warn ("test hook: the store%s%s%s fails as '%s' says",
              d.store_fault_export ? " of export '" : "",
              d.store_fault_export ? d.store_fault_export : "",
              d.store_fault_export ? "'" : "", store_fault);
  }
#endif
  if (daemon_build (&d, &opt, opt.config ? &cfg : NULL, argc, argv) == -1 ||
      daemon_systemd_listen (&d) == -1)
    goto out;
  /* From here on the daemon-wide options are d.opt (with --config, the
   * file's [sgblkd] section merged with the command line). */
  const struct cli_options *dopt = d.opt;
  if (dopt->stats_file && (metrics = metrics_start (&d)) == NULL)
    goto out;
  if (dopt->pidfile) {
    pid_fd = open (dopt->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (pid_fd == -1) {
      log_error ("%s: cannot write pidfile: %m", dopt->pidfile);
      goto out;
    }
    /* Removed at exit, after the daemon has changed to "/". */
    pidfile_made = (pidfile = absolute (dopt->pidfile)) != NULL;
  }
  /* Said before detaching, so that whoever started us sees how to
   * connect; the sockets are bound already. */
  daemon_announce (&d);
  if (!dopt->foreground) {
    if (daemonize (&ready_fd) == -1) {
      log_error ("cannot daemonize: %m");
      goto out;
    }
    log_init ("sgblkd", true, dopt->verbose);
  }
  if (pid_fd >= 0) {
    int r = write_pid (pid_fd);
    pid_fd = -1;
    if (r == -1) {
      log_error ("%s: cannot write pidfile: %m", dopt->pidfile);
      goto out;
    }
  }
#ifdef SGBLK_TEST_HOOKS
  /* Tests make normal command allocations fail to exercise the reserve
   * under load (only tests/sgblkd-test is built with this). */
  const char *fail_every = getenv ("SGBLK_TEST_CMD_FAIL_EVERY");
  if (fail_every && atoi (fail_every) > 0) {
    for (struct daemon_stack *st = d.stacks; st; st = st->next)
      scsi_cmd_pool_fail_every (st->cmds, (unsigned) atoi (fail_every));
    log_warn ("test hook: every %d. command allocation fails", atoi (fail_every));
  }
#endif
  if (daemon_start (&d) == -1)
    goto out;
  if (d.srv && nbd_server_listeners (d.srv) > 0) {
    struct nbd_server_stats ns;
    nbd_server_get_stats (d.srv, &ns);
    log_info ("serving at most %" PRIu64 " NBD connections at once%s", ns.max_connections,
              dopt->max_connections ? "" : " (from the descriptor limit; --max-connections)");
  }
  daemon_systemd_ready (&d, !dopt->foreground);
  tell_parent (&ready_fd, 0);

  for (;;) {
    struct timespec tick = { .tv_sec = 1 };
    int sig = sigtimedwait (&sigs, NULL, &tick);
    /* (Taken now: the report below may set errno.) */
    bool idle = sig == -1 && errno == EAGAIN;
    if (sig == SIGTERM || sig == SIGINT) {
      daemon_systemd_stopping ();
      log_info ("%s: finishing in-flight I/O, flushing and exiting",
                strsignal (sig));
      break;
    }
    daemon_stats_report_corrupt (&d);
    if (sig == SIGUSR1 || idle)
      metrics_tick (metrics, &d, sig == SIGUSR1);
    if (sig == SIGUSR1)
      daemon_stats_log (&d);
    else if (sig == SIGHUP) {
      daemon_systemd_reloading (&d);
      daemon_reload (&d);
      d.exports_changed = false;
      daemon_systemd_reloaded (&d);
    }
    else if (idle)
      daemon_tick (&d);
    if (d.exports_changed) {
      d.exports_changed = false;
      daemon_systemd_status (&d);
    }
  }
  status = CLI_EXIT_OK;

 out:
  tell_parent (&ready_fd, (char) status);
  daemon_metrics_stop (metrics);
  if (daemon_teardown (&d) == -1)
    status = CLI_EXIT_RUNTIME;
  if (pid_fd >= 0)
    close (pid_fd);
  if (pidfile_made)
    unlink (pidfile);
  free (pidfile);
  cli_config_free (&cfg);
  return status;
}
