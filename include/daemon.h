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

#include "blkio.h"
#include "cli.h"
#include "nbd.h"

struct fuse_front;

/* Built bottom up, torn down top down: store (a cache over a file, or the
 * in-memory disk), sgv and command pools, logical unit, block-I/O seam,
 * NBD server with its listeners, and with --fuse the FUSE mount.  A NULL
 * (or io_ready false) member was not built, so teardown takes whatever a
 * failed build left.  Start a zeroed struct. */
struct daemon_stack {
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
  struct nbd_server *srv;
  bool served;                     /* every front-end started */
  struct nbd_export export;        /* the one export, of both front-ends */
  struct fuse_front *fuse;         /* NULL without --fuse */
  unsigned threads;                /* workers of each front-end */
  unsigned ticks;                  /* daemon_stack_tick calls */
  uint64_t corrupt_seen;           /* damaged blocks reported so far */
  uint64_t spill_errors_seen;      /* spill file errors reported so far */
  uint64_t store_errors_seen;      /* unit's store errors reported so far */
  bool short_file_said;            /* the file's shrinking reported, */
  uint64_t short_file_size_said;   /* at this size */
};

/* stack.c.  Build everything up to bound (not yet served) listeners, so
 * that "port in use" reaches the terminal before daemonizing. */
int daemon_stack_build (struct daemon_stack *d, const struct cli_options *o);
/* Start serving: the NBD workers, then the FUSE mount if asked for. */
int daemon_stack_start (struct daemon_stack *d);
/* Once a second while serving: give idle memory back to the system. */
void daemon_stack_tick (struct daemon_stack *d);
/* Stop serving, log the statistics, flush and free.  -1 (with errno) if
 * data may not have reached the store: the exit status must say so. */
int daemon_stack_teardown (struct daemon_stack *d);

/* The in-memory disk's memory limit when none is given but one is
 * needed (--swap, --spill): half of RAM, or the disk size if less. */
uint64_t daemon_default_mem_limit (uint64_t size);
/* The machine's memory in bytes; 0 if unknown. */
uint64_t daemon_phys_memory (void);

/* stats.c: one log line per layer (SIGUSR1, and at exit). */
void daemon_stats_log (const struct daemon_stack *d);
/* Say once what each block newly found damaged, each new spill file
 * error, store errors that clients saw as EIO and a backing file found
 * shorter than the disk mean (once a second: one line for all of one
 * kind that came in that second). */
void daemon_stats_report_corrupt (struct daemon_stack *d);

/* swap.c: --swap.  Before building: the memory disk's default limit. */
void daemon_swap_defaults (struct cli_options *o);
/* After building, before any I/O thread starts: lock memory, preallocate
 * the pools, fill the map's memory reserve and start its refill thread.
 * -1 if the daemon could deadlock the swap-in it serves; what merely
 * degrades is a warning. */
int daemon_swap_prepare (struct daemon_stack *d);
/* After the FUSE mount: start its workers before serving. */
void daemon_swap_fuse_workers (struct daemon_stack *d);

#endif
