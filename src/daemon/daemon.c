/* daemon/daemon: the whole daemon, its NBD server and the set of exports,
 * which a reload of the --config file changes while serving.
 *
 * struct daemon holds the server (one for all exports: its listeners,
 * workers and connection limit are daemon-wide) and a list of stacks,
 * one per export (stack.c).  A stack on the list is in one of three
 * states:
 *
 *   serving   listed in the server's export table (and mounted, with
 *             --fuse): clients may pick it;
 *   retiring  a reload removed or changed it: off the table, unmounted,
 *             its connections carry on; the tick closes it (flush, free)
 *             once the server says nothing uses it;
 *   gone      off the list, freed.
 *
 * An export a reload added or changed whose name a retiring stack still
 * has waits in 'pending' until that stack is gone: two stacks never
 * serve one name, and a changed export never has two caches over its
 * file.  Only the main thread (the signal loop) touches the list.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "nbd.h"
#include "sync.h"

#include "internal.h"


static const char *
what_of (const struct cli_options *o)
{
  return o->file ? o->file : "an in-memory disk";
}

static int
build_server (struct daemon *dm)
{
  const struct cli_options *o = dm->opt;
  struct nbd_server_config nc = {
    .threads = o->threads ? o->threads : sync_default_threads (),
    .handshake_timeout = o->handshake_timeout,
    .busy_poll_us = o->busy_poll_us,
    .max_connections = o->max_connections,
    .idle_timeout = o->idle_timeout,
    .ready_sessions = o->swap,
    .tls = (enum nbd_tls_mode) o->tls, .tls_certificates = o->tls_certificates,
    .tls_psk = o->tls_psk, .tls_verify_peer = o->tls_verify_peer,
  };

  dm->srv = nbd_server_create (&nc);
  if (dm->srv == NULL && nbd_server_error ())
    FAIL (errno, "%s", nbd_server_error ());
  if (dm->srv == NULL)
    FAIL (errno, "cannot create the NBD server: %m");
  for (unsigned i = 0; i < o->nunix; i++) {
    if (nbd_server_listen_unix (dm->srv, o->unix_paths[i]) == -1) {
      if (errno == EADDRINUSE)
        FAIL (errno, "%s: socket is in use by a running server (not taking it over)",
              o->unix_paths[i]);
      if (errno == ENOTSOCK)
        FAIL (errno, "%s: exists and is not a socket (not replacing it)",
              o->unix_paths[i]);
      FAIL (errno, "%s: cannot listen: %m", o->unix_paths[i]);
    }
  }
  if (o->port > 0 &&
      nbd_server_listen_tcp (dm->srv, o->bind, o->port) == -1)
    FAIL (errno, "%s:%d: cannot listen: %m", o->bind, o->port);
  return 0;
}

/* Free a stack that is off the server's table. */
static int
stack_free (struct daemon_stack *d)
{
  int r = daemon_stack_teardown (d);
  int e = errno;
  cli_export_free (d->cexp);
  free (d);
  errno = e;
  return r;
}

/* Build one export's stack (taking ce over) and append it to the list.
 * The stack is not yet on the server's table. */
static struct daemon_stack *
stack_add (struct daemon *dm, const struct cli_options *o, struct cli_export *ce)
{
  struct daemon_stack *d = calloc (1, sizeof *d);

  if (d == NULL) {
    log_error ("export '%s': out of memory", o->export_name);
    cli_export_free (ce);
    return NULL;
  }
  d->cexp = ce;
  if (dm->store_fault_export == NULL ||
      strcmp (dm->store_fault_export, o->export_name) == 0)
    d->store_fault = dm->store_fault;
  d->srv = dm->srv;
  if (daemon_stack_build (d, o) == -1) {
    int e = errno;
    stack_free (d);
    errno = e;
    return NULL;
  }
  struct daemon_stack **pp = &dm->stacks;
  while (*pp)
    pp = &(*pp)->next;
  *pp = d;
  return d;
}

static void
stack_unlink (struct daemon *dm, struct daemon_stack *d)
{
  for (struct daemon_stack **pp = &dm->stacks; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      return;
    }
}

static void
announce (const struct daemon_stack *d)
{
  const struct cli_options *o = d->opt;
  log_info ("serving %s (%" PRIu64 " bytes, %" PRIu32 "-byte blocks%s) as export '%s'",
            what_of (o), d->store->size, o->block_size,
            o->read_only ? ", read-only" : "", o->export_name);
}

int
daemon_build (struct daemon *dm, const struct cli_options *o,
              struct cli_config *cfg, int argc, char **argv)
{
  dm->opt = o;
  dm->argc = argc;
  dm->argv = argv;
  if (cfg) {
    dm->config = o->config;
    dm->dopts = cfg->daemon;
    cfg->daemon = NULL;
    dm->daemon_spec = cfg->daemon_spec;
    cfg->daemon_spec = NULL;
    dm->opt = &dm->dopts->opt;
  }
  /* The exports first: what is wrong with a file is said before what is
   * wrong with a socket, as it always was. */
  if (cfg == NULL) {
    struct daemon_stack *d = stack_add (dm, o, NULL);
    if (d == NULL)
      return -1;
  }
  else
    for (unsigned i = 0; i < cfg->n; i++) {
      struct cli_export *ce = cfg->exports[i];
      cfg->exports[i] = NULL;
      if (stack_add (dm, &ce->opt, ce) == NULL)
        return -1;
    }
  if (build_server (dm) == -1)
    return -1;
  for (struct daemon_stack *d = dm->stacks; d; d = d->next) {
    d->srv = dm->srv;
    if (nbd_server_add_export (dm->srv, &d->export) == -1)
      FAIL (errno, "export '%s': cannot add it to the NBD server: %m", d->opt->export_name);
    d->listed = true;
  }
  return 0;
}

void
daemon_announce (const struct daemon *dm)
{
  for (const struct daemon_stack *d = dm->stacks; d; d = d->next)
    announce (d);
  for (unsigned i = 0; i < dm->opt->nunix; i++)
    log_info ("listening on unix:%s (nbd+unix:///%s?socket=%s)", dm->opt->unix_paths[i],
              dm->stacks->opt->export_name, dm->opt->unix_paths[i]);
  if (dm->opt->port > 0)
    log_info ("listening on %s:%d (nbd://%s:%d/%s)", dm->opt->bind, dm->opt->port,
              dm->opt->bind, dm->opt->port, dm->stacks->opt->export_name);
}

/* Swap mode's preparation and the stack's threads and mount, for a
 * stack built while serving (a reload) or at start. */
static int
stack_start (struct daemon *dm, struct daemon_stack *d)
{
  if (dm->opt->swap && daemon_swap_prepare (d) == -1)
    return -1;
  return daemon_stack_start (d);
}

int
daemon_start (struct daemon *dm)
{
  /* Swap mode lowers the exports' largest payload, which the server's
   * start sizes its replies for: it comes first. */
  if (dm->opt->swap)
    for (struct daemon_stack *d = dm->stacks; d; d = d->next)
      if (daemon_swap_prepare (d) == -1)
        return -1;
  if (nbd_server_start (dm->srv) == -1)
    FAIL (errno, "cannot start the NBD server: %m");
  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    if (daemon_stack_start (d) == -1)
      return -1;
  dm->served = true;               /* (a failed mount is a start-up error) */
  return 0;
}

/* Take a stack off the server's table and its mount: new clients no
 * longer find it. */
static void
retire (struct daemon *dm, struct daemon_stack *d, const char *why)
{
  unsigned users = 0;

  if (d->listed) {
    nbd_server_remove_export (dm->srv, &d->export);
    d->listed = false;
    dm->exports_changed = true;
  }
  /* A FUSE file still open (a loop device, a mounted filesystem) is a
   * client too: its mount stays until the last open is released. */
  unsigned opens = daemon_stack_retire_fuse (d);
  d->retiring = true;
  bool released = nbd_server_release_export (dm->srv, &d->export, &users) == 0;
  if (released)
    d->srv = NULL;                 /* released: the server forgot it */
  if (released && opens == 0)
    log_info ("export '%s' %s: closing it", d->opt->export_name, why);
  else
    log_info ("export '%s' %s: it refuses new clients and is closed when its "
              "%u connection%s and %u open%s of its FUSE file end", d->opt->export_name,
              why, users, users == 1 ? "" : "s", opens, opens == 1 ? "" : "s");
}

/* Start an export a reload asked for; false if a stack of that name
 * still retires (it waits). */
static bool
try_start (struct daemon *dm, struct cli_export *ce)
{
  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    if (strcmp (d->opt->export_name, ce->opt.export_name) == 0)
      return false;
  struct daemon_stack *d = stack_add (dm, &ce->opt, ce);
  if (d == NULL) {
    log_error ("export '%s' is not served (see above); the others are", ce->name);
    return true;
  }
  if (stack_start (dm, d) == -1 ||
      nbd_server_add_export (dm->srv, &d->export) == -1) {
    if (errno == EINVAL)
      log_error ("export '%s': its largest request is above what the server started "
                 "with; restart sgblkd to serve it", d->opt->export_name);
    else if (errno != 0)
      log_error ("export '%s' is not served: %m", d->opt->export_name);
    stack_unlink (dm, d);
    stack_free (d);
    return true;
  }
  d->listed = true;
  dm->exports_changed = true;
  announce (d);
  return true;
}

static void
start_pending (struct daemon *dm)
{
  unsigned kept = 0;

  for (unsigned i = 0; i < dm->npending; i++)
    if (!try_start (dm, dm->pending[i]))
      dm->pending[kept++] = dm->pending[i];
  dm->npending = kept;
}

void
daemon_tick (struct daemon *dm)
{
  struct daemon_stack *next;

  for (struct daemon_stack *d = dm->stacks; d; d = next) {
    next = d->next;
    if (!d->retiring) {
      daemon_stack_tick (d);
      continue;
    }
    if (daemon_stack_retire_fuse (d) > 0)
      continue;                    /* its FUSE file is still open */
    if (d->srv && nbd_server_release_export (dm->srv, &d->export, NULL) == -1)
      continue;                    /* clients still on it */
    stack_unlink (dm, d);
    char *name = strdup (d->opt->export_name);
    if (stack_free (d) == 0)
      log_info ("export '%s' closed: flushed and released", name ? name : "?");
    free (name);
  }
  if (dm->npending)
    start_pending (dm);
}

int
daemon_reload (struct daemon *dm)
{
  struct cli_config cfg;
  char *msg = NULL;
  size_t len = 0;

  if (dm->config == NULL) {
    log_info ("SIGHUP: nothing to reload (no --config)");
    return 0;
  }
  dm->reload_failed = true;        /* until the new set is taken */
  FILE *m = open_memstream (&msg, &len);
  if (m == NULL) {
    log_error ("%s: not reloaded: %m; the running exports are kept", dm->config);
    return -1;
  }
  int r = cli_config_load (dm->config, dm->argc, dm->argv, &cfg, m);
  fclose (m);
  if (r == -1) {
    /* "sgblkd: FILE:LINE: why\n" -> one log line. */
    const char *why = msg && strncmp (msg, "sgblkd: ", 8) == 0 ? msg + 8 : msg;
    size_t n = why ? strcspn (why, "\n") : 0;
    log_error ("not reloaded, the running exports are kept: %.*s", (int) n,
               why ? why : "unknown error");
    free (msg);
    return -1;
  }
  free (msg);
  for (unsigned i = 0; i < cfg.n; i++) {
    struct cli_options *eo = &cfg.exports[i]->opt;
    if (dm->opt->swap)
      daemon_swap_defaults (eo);
    if ((m = open_memstream (&msg, &len)) == NULL) {
      log_error ("%s: not reloaded: %m; the running exports are kept", dm->config);
      cli_config_free (&cfg);
      return -1;
    }
    r = cli_check_memory (eo, daemon_phys_memory (), m);
    fclose (m);
    if (r == -1) {
      const char *why = msg && strncmp (msg, "sgblkd: ", 8) == 0 ? msg + 8 : msg;
      log_error ("not reloaded, the running exports are kept: %s:%u: export '%s': %.*s",
                 dm->config, cfg.exports[i]->line, cfg.exports[i]->name,
                 (int) (why ? strcspn (why, "\n") : 0), why ? why : "");
      free (msg);
      cli_config_free (&cfg);
      return -1;
    }
    free (msg);
    msg = NULL;
  }
  if (strcmp (cfg.daemon_spec, dm->daemon_spec) != 0)
    log_warn ("%s: daemon-wide options changed; they take effect when sgblkd restarts "
              "(the exports are reloaded)", dm->config);

  unsigned added = 0, removed = 0, changed = 0, kept = 0;
  /* Running exports: kept when unchanged; retired when gone or changed
   * (the new version then waits for the old to close). */
  for (struct daemon_stack *d = dm->stacks; d; d = d->next) {
    if (d->retiring)
      continue;
    struct cli_export *ne = NULL;
    unsigned ni = 0;
    for (unsigned i = 0; i < cfg.n; i++)
      if (cfg.exports[i] && strcmp (cfg.exports[i]->name, d->opt->export_name) == 0) {
        ne = cfg.exports[i];
        ni = i;
      }
    if (ne == NULL) {
      retire (dm, d, "was removed from the configuration");
      removed++;
    }
    else if (d->cexp && strcmp (ne->spec, d->cexp->spec) == 0) {
      cli_export_free (ne);        /* unchanged: the running one stays */
      cfg.exports[ni] = NULL;
      kept++;
    }
    else {
      retire (dm, d, "changed in the configuration");
      changed++;
    }
  }
  /* Exports waiting from an earlier reload are replaced by this one. */
  for (unsigned i = 0; i < dm->npending; i++)
    cli_export_free (dm->pending[i]);
  dm->npending = 0;
  struct cli_export **p = realloc (dm->pending, (cfg.n ? cfg.n : 1) * sizeof *p);
  if (p == NULL) {
    log_error ("%s: out of memory; new exports are not served", dm->config);
    cli_config_free (&cfg);
    return -1;
  }
  dm->pending = p;
  for (unsigned i = 0; i < cfg.n; i++)
    if (cfg.exports[i]) {
      dm->pending[dm->npending++] = cfg.exports[i];
      cfg.exports[i] = NULL;
      added++;
    }
  added -= changed;
  cli_config_free (&cfg);
  daemon_tick (dm);                /* what nothing uses closes, what waits starts */
  /* Said once the new set is served, so that whoever waits for it finds
   * the added exports. */
  log_info ("%s reloaded: %u export%s unchanged, %u added, %u changed, %u removed",
            dm->config, kept, kept == 1 ? "" : "s", added, changed, removed);
  dm->reload_failed = false;
  return 0;
}

unsigned
daemon_stack_array (const struct daemon *dm, struct daemon_stack ***out)
{
  unsigned n = 0, i = 0;

  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    n++;
  *out = n ? calloc (n, sizeof **out) : NULL;
  if (*out == NULL)
    return 0;
  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    (*out)[i++] = d;
  return n;
}

int
daemon_teardown (struct daemon *dm)
{
  int r = 0, e = 0;

  /* FUSE first: its requests in flight finish, then it unmounts. */
  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    daemon_stack_stop_fuse (d);
  if (dm->srv) {
    nbd_server_stop (dm->srv);
    /* Counters of a daemon that never served say nothing but noise
     * under the one line that said why it did not start. */
    if (dm->served)
      daemon_stats_log (dm);
    nbd_server_destroy (dm->srv);
    dm->srv = NULL;
  }
  while (dm->stacks) {
    struct daemon_stack *d = dm->stacks;
    dm->stacks = d->next;
    if (stack_free (d) == -1 && r == 0) {
      e = errno;
      r = -1;
    }
  }
  for (unsigned i = 0; i < dm->npending; i++)
    cli_export_free (dm->pending[i]);
  free (dm->pending);
  dm->pending = NULL;
  dm->npending = 0;
  cli_export_free (dm->dopts);
  dm->dopts = NULL;
  free (dm->daemon_spec);
  dm->daemon_spec = NULL;
  if (r == -1)
    errno = e;
  return r;
}
