/* daemon: sgblkd's stack of modules, built from the command line, and the
 * policies that act on the whole of it (statistics, swap mode).
 *
 * main.c owns the command line and the life cycle (daemonizing, pidfile,
 * signals); this module owns what is served.  It is an outer layer: each
 * failure is logged here once, with the context that only this layer has
 * (which file, which socket, which step), and the function returns -1
 * with errno set; callers do not log it again.
 */
#ifndef SGBLK_DAEMON_H
#define SGBLK_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "blkio.h"
#include "cli.h"
#include "nbd.h"

struct fuse_front;

/* One export's stack, built bottom up, torn down top down: store (a cache
 * over a file, or the in-memory disk), sgv and command pools, logical
 * unit, block-I/O seam, its NBD export (served by the daemon's one NBD
 * server), and with --fuse its FUSE mount.  A NULL (or io_ready false)
 * member was not built, so teardown takes whatever a failed build left.
 * Start a zeroed struct. */
struct daemon_stack {
  struct daemon_stack *next;       /* the daemon's list */
  struct cli_export *cexp;         /* its options from --config (owned), or
                                    * NULL: the command line's */
  bool listed;                     /* in the NBD server's export table */
  bool retiring;                   /* removed by a reload: closed (flushed)
                                    * when its last client has gone */
  const struct cli_options *opt;   /* the command line; outlives the stack */
  /* Tests only (tests/sgblkd-test's SGBLK_TEST_STORE_FAULT; sgblkd never
   * sets it): a fault store spec (store_fault_open) to put under the
   * cache, over the file, or over the in-memory disk.  Set before build. */
  const char *store_fault;
  struct store *store;             /* what the unit runs on; owns those below */
  struct store *cache;             /* the block map (== store but under a test
                                    * fault store); with --cache-mode off the
                                    * file's store, which is no cache */
  struct store *file;              /* the file's own store, for its reports;
                                    * NULL for the in-memory disk */
  struct sgv_pool *sgv;
  struct scsi_cmd_pool *cmds;
  struct scsi_lu *lu;
  struct blkio io;                 /* the unit's seam, shared by the front-ends */
  bool io_ready;
  struct nbd_server *srv;          /* the daemon's, not the stack's */
  bool served;                     /* every front-end started */
  struct nbd_export export;        /* the one export, of both front-ends */
  struct fuse_front *fuse;         /* NULL without --fuse */
  unsigned threads;                /* workers of each front-end */
  unsigned ticks;                  /* daemon_stack_tick calls */
  uint64_t corrupt_seen;           /* damaged blocks reported so far */
  uint64_t spill_errors_seen;      /* spill file errors reported so far */
  uint64_t store_errors_seen;      /* unit's store errors reported so far */
  uint64_t rbd_timeouts_seen;      /* RBD requests past the timeout, reported */
  bool short_file_said;            /* the file's shrinking reported, */
  uint64_t short_file_size_said;   /* at this size */
};

/* The whole daemon: its daemon-wide options, the NBD server with its
 * listeners, and one stack per export.  With --config the set of exports
 * changes on SIGHUP (daemon.c). */
struct daemon {
  const struct cli_options *opt;   /* daemon-wide options */
  const char *config;              /* --config FILE, or NULL */
  int argc;                        /* the command line, for reloads */
  char **argv;
  struct cli_export *dopts;        /* with --config: opt's storage (owned) */
  char *daemon_spec;               /* with --config: the daemon-wide options
                                    * the running daemon has (owned) */
  const char *store_fault;         /* tests only: see daemon_stack */
  const char *store_fault_export;  /* tests only: the one export it is for
                                    * (NULL: all) */
  struct nbd_server *srv;
  struct daemon_stack *stacks;     /* serving and retiring, in file order */
  struct cli_export **pending;     /* exports waiting for the one of the same
                                    * name to close (owned) */
  unsigned npending;
  bool served;                     /* the server and every export started */
  bool reload_failed;              /* the last reload was refused */
  bool exports_changed;            /* the exports served changed since
                                    * STATUS= last named them */
};

/* daemon.c.  Build every export's stack and the NBD server up to bound
 * (not yet served) listeners, so that "port in use" reaches the terminal
 * before daemonizing.  o: the command line's options.  cfg: with
 * --config, the exports of the file (taken over, and left empty); NULL
 * otherwise. */
int daemon_build (struct daemon *dm, const struct cli_options *o,
                  struct cli_config *cfg, int argc, char **argv);
/* Say what is served and how to connect (before detaching). */
void daemon_announce (const struct daemon *dm);
/* After daemonizing: swap mode's preparation (--swap), then the NBD
 * workers, then each export's cache threads and FUSE mount. */
int daemon_start (struct daemon *dm);
/* Once a second while serving: give idle memory back; close exports a
 * reload removed once their last client has gone, and start those that
 * waited for them. */
void daemon_tick (struct daemon *dm);
/* SIGHUP: read the --config file again.  Added exports are served, and
 * removed or changed ones refuse new clients and are closed (flushed)
 * when their last client leaves; unchanged ones keep their clients.  A
 * file with an error changes nothing: -1 (and dm->reload_failed). */
int daemon_reload (struct daemon *dm);
/* Every stack, serving or retiring, in order, as an array (*out, to
 * free); its length.  0 (and NULL) if none or out of memory. */
unsigned daemon_stack_array (const struct daemon *dm, struct daemon_stack ***out);
/* Stop serving, log the statistics, flush and free.  -1 (with errno) if
 * data may not have reached a store: the exit status must say so. */
int daemon_teardown (struct daemon *dm);

/* stack.c.  One export's stack, without the server. */
int daemon_stack_build (struct daemon_stack *d, const struct cli_options *o);
/* Its cache's threads, then its FUSE mount if asked for. */
int daemon_stack_start (struct daemon_stack *d);
/* Once a second while serving: give idle memory back to the system. */
void daemon_stack_tick (struct daemon_stack *d);
/* Unmount its FUSE file (first of all at teardown; for an export a
 * reload removed, daemon_stack_retire_fuse does once it is not open). */
/* A retiring stack's FUSE file: gone for new opens; unmounted (as
 * daemon_stack_stop_fuse) once no open is left.  Returns the opens still
 * on it: call again (each tick) until it is 0. */
unsigned daemon_stack_retire_fuse (struct daemon_stack *d);
void daemon_stack_stop_fuse (struct daemon_stack *d);
/* Flush and free what was built (the NBD server holds no pointer to the
 * export any more).  -1 (with errno) if data may not have reached the
 * store. */
int daemon_stack_teardown (struct daemon_stack *d);

/* The in-memory disk's memory limit when none is given but one is
 * needed (--swap, --spill): half of RAM, or the disk size if less. */
uint64_t daemon_default_mem_limit (uint64_t size);
/* The machine's memory in bytes; 0 if unknown. */
uint64_t daemon_phys_memory (void);

/* stats.c: one log line per layer of each export, and the NBD server's
 * (SIGUSR1, and at exit). */
void daemon_stats_log (const struct daemon *dm);
/* Say once what each block newly found damaged, each new spill file
 * error, store errors that clients saw as EIO and a backing file found
 * shorter than the disk mean (once a second: one line for all of one
 * kind that came in that second). */
void daemon_stats_report_corrupt (struct daemon *dm);

/* metrics.c: --stats-file, every export's statistics in Prometheus text
 * format, replaced whole (PATH.tmp, then rename).  Start: make the path
 * absolute and write the file once; NULL (logged, errno set) if it
 * cannot be written.  Tick (main thread, on its tick and on SIGUSR1):
 * rewrite it when interval seconds have passed, or now; a failure is
 * logged once until a write works again.  Stop: remove the file (a
 * stopped daemon's figures would look current).  NULL is a no-op. */
struct daemon_metrics;
struct daemon_metrics *daemon_metrics_start (const char *path, unsigned interval,
                                             struct daemon_stack *const *stacks,
                                             unsigned n);
void daemon_metrics_tick (struct daemon_metrics *m, struct daemon_stack *const *stacks,
                          unsigned n, bool now);
void daemon_metrics_stop (struct daemon_metrics *m);
/* The file's text for n stacks into f; the atomic write of it to path.
 * -1 with errno. */
int daemon_metrics_render (FILE *f, struct daemon_stack *const *stacks, unsigned n);
int daemon_metrics_write (const char *path, struct daemon_stack *const *stacks,
                          unsigned n);
/* A label value as the text format wants it: backslash, double quote and
 * newline escaped, a byte that is not UTF-8 as U+FFFD. */
int daemon_metrics_label_value (FILE *f, const char *value);

/* swap.c: --swap.  Before building: the memory disk's default limit. */
void daemon_swap_defaults (struct cli_options *o);
/* After building, before any I/O thread starts: lock memory, preallocate
 * the pools, fill the map's memory reserve and start its refill thread.
 * -1 if the daemon could deadlock the swap-in it serves; what merely
 * degrades is a warning. */
int daemon_swap_prepare (struct daemon_stack *d);
/* After the FUSE mount: start its workers before serving. */
void daemon_swap_fuse_workers (struct daemon_stack *d);

/* systemd.c: socket activation and readiness notification (libsystemd).
 * Before building: take the sockets systemd passed for this process
 * (LISTEN_FDS), which then replace -U/-p; -1 with EINVAL if the command
 * line names sockets too (a usage error), another errno otherwise. */
int daemon_systemd_sockets (struct cli_options *o);
/* After building: listen on the sockets taken.  -1 if one is not a
 * listening stream socket. */
int daemon_systemd_listen (struct daemon *d);
/* Once serving (listeners and FUSE mount up): READY=1 and a STATUS=
 * line; detached says the daemon forked from the process systemd ran. */
void daemon_systemd_ready (const struct daemon *dm, bool detached);
/* SIGHUP: RELOADING=1 before the reload, READY=1 and the new STATUS=
 * after it. */
void daemon_systemd_reloading (const struct daemon *dm);
void daemon_systemd_reloaded (const struct daemon *dm);
/* The exports served changed outside a reload (one that waited for its
 * old version to close started): the new STATUS=. */
void daemon_systemd_status (const struct daemon *dm);
/* SIGTERM or SIGINT arrived: STOPPING=1. */
void daemon_systemd_stopping (void);

/* rbd.c: open o->file, an rbd: FILE, as a store (logs why not: NULL
 * with errno); say what requests the cluster left unanswered. */
struct store *daemon_rbd_open (const struct cli_options *o);
void daemon_rbd_tick (struct daemon_stack *d);

#endif
