/* daemon/swap: --swap, what a daemon that the kernel swaps onto needs.
 *
 * The invariant it sets up: once serving, the I/O path never asks the
 * allocator or the kernel for memory.  Every page is locked and resident
 * (a swapped-out daemon deadlocks the swap-in it must serve), the command
 * and vector pools are filled for a full queue and fixed at that, the
 * block map takes its memory from a locked reserve that a refill thread
 * keeps ahead of it (so the disk costs what it holds, as zram does,
 * rather than its limit), and every I/O thread exists before the first
 * request.  It runs before any I/O thread is started, as threads inherit
 * the I/O flusher flag and the default stack size.  Locking memory,
 * preallocating the pools and filling the reserve fail start-up; the
 * rest degrades with a clear warning.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cache.h"
#include "daemon.h"
#ifdef HAVE_FUSE
#include "fusefront.h"
#endif
#include "log.h"
#include "scsi.h"
#include "sgv.h"

/* Linux 5.6's PR_SET_IO_FLUSHER; older headers lack it, and the call
 * must not silently disappear with them. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Commands preallocated for this many requests in flight, the largest
 * READ or WRITE payload accepted (told to NBD clients), and the stack of
 * each thread started. */
#define SWAP_QUEUE 256
#define SWAP_MAX_PAYLOAD CLI_SWAP_MAX_PAYLOAD
#define SWAP_THREAD_STACK (256u << 10)

/* Without --mem-limit, swap mode caps the in-memory disk at half the
 * machine's memory, or the disk size if that is less: a cap, not an
 * allocation (the disk holds what is written to it, and locks it). */
void
daemon_swap_defaults (struct cli_options *o)
{
  if (o->file != NULL || o->mem_limit != 0)
    return;
  o->mem_limit = daemon_default_mem_limit (o->size);
}

/* The block map's reserve watermarks.  Between a wake-up of the refill
 * thread and its next segment the I/O path can take at most what the
 * requests executing in the map store meanwhile: each thread that
 * executes requests (the NBD workers; the sessions, which store
 * requests of up to 1 MiB themselves, counted as one more; the FUSE
 * workers) holds one at a time, of at most SWAP_MAX_PAYLOAD stored raw,
 * and no more than SWAP_QUEUE requests are in flight.  So 'low' is that
 * many largest requests: a full round of them never waits for the
 * refill, even when the refill thread gets no CPU for a while.  'high'
 * is twice that, so the memory a trim frees is not given back only to
 * be mapped again by the next burst.  (2 CPUs, NBD only: 6 and 12 MiB;
 * with --fuse: 38 and 76 MiB.) */
static void
reserve_watermarks (const struct daemon_stack *d, uint64_t *low, uint64_t *high)
{
  unsigned writers = d->threads + 1;

#ifdef HAVE_FUSE
  if (d->opt->fuse_mount)
    writers += FUSE_FRONT_THREADS;
#endif
  if (writers > SWAP_QUEUE)
    writers = SWAP_QUEUE;
  *low = (uint64_t) writers * SWAP_MAX_PAYLOAD;
  *high = 2 * *low;
}

int
daemon_swap_prepare (struct daemon_stack *d)
{
  const struct cli_options *o = d->opt;

  /* Threads started from now on (connections, FUSE workers) get stacks
   * of SWAP_THREAD_STACK: every byte of a stack is locked and resident
   * under mlockall, and glibc keeps the stacks of threads that exited
   * for the next ones, so each connection ever open at once costs its
   * stack for good.  Measured without --swap, after nbdcopy, FUSE and
   * qemu-io I/O with a spill file and the idle pass, no thread's stack
   * had more than 20 KiB resident (the block map's buffers are not on
   * it: they are mapped per thread, and only by threads that do I/O), so
   * 256 KiB, the cache threads' size, leaves over ten times that.  (With
   * 2 MiB, nbdcopy's 4 connections alone grew the daemon by 8 MiB; with
   * 512 KiB, which 144 KiB of static TLS once needed, an idle connection
   * locked 1.3 MiB.) */
  pthread_attr_t attr;
  if (pthread_attr_init (&attr) == 0) {
    if (pthread_attr_setstacksize (&attr, SWAP_THREAD_STACK) != 0 ||
        pthread_setattr_default_np (&attr) != 0)
      log_warn ("--swap: cannot set the default thread stack size; threads lock 8 MiB stacks");
    pthread_attr_destroy (&attr);
  }
  /* One malloc arena: per-thread arenas would each map (and lock) a heap
   * of their own for connection set-up, and the I/O path allocates
   * nothing that contention could slow. */
  mallopt (M_ARENA_MAX, 1);
  if (mlockall (MCL_CURRENT | MCL_FUTURE) == -1) {
    int e = errno;
    log_error ("--swap: cannot lock memory (mlockall): %m; raise RLIMIT_MEMLOCK or run as root");
    errno = e;
    return -1;
  }
  bool flusher = true, oom = true;
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1 && !(flusher = false))
    log_warn ("--swap: cannot mark the I/O threads as I/O flushers (PR_SET_IO_FLUSHER: %m; "
              "needs Linux 5.6 and CAP_SYS_RESOURCE): writes may stall in memory reclaim "
              "while the machine swaps onto this disk");
  int fd = open ("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if ((fd == -1 || write (fd, "-1000", 5) != 5) && !(oom = false))
    log_warn ("--swap: cannot set oom_score_adj to -1000: %m; the OOM killer may pick this daemon");
  if (fd != -1)
    close (fd);
  /* Commands and vectors for a full queue of requests exist from the
   * start and the pools are fixed at that: the I/O path never calls the
   * allocator.  More vectors than commands in flight (SWAP_QUEUE plus the
   * reserve), so a request never waits for a vector held by a queued one;
   * a larger size takes a larger vector when its own are out.  The 4 MiB
   * ones hold the largest payload (SWAP_MAX_PAYLOAD, above the kernel's
   * default 1280 KiB max_sectors_kb) with its read-modify-write edges. */
  if (scsi_cmd_pool_prefill (d->cmds, SWAP_QUEUE) == -1 ||
      sgv_pool_prefill (d->sgv, 0, SWAP_QUEUE + SWAP_QUEUE / 2) == -1 ||  /* 4 KiB */
      sgv_pool_prefill (d->sgv, 2, SWAP_QUEUE / 4) == -1 ||       /* 16 KiB */
      sgv_pool_prefill (d->sgv, 5, SWAP_QUEUE / 4) == -1 ||       /* 128 KiB */
      sgv_pool_prefill (d->sgv, 10, SWAP_QUEUE / 64) == -1) {     /* 4 MiB */
    int e = errno;
    log_error ("--swap: cannot preallocate the I/O pools: %m");
    errno = e;
    return -1;
  }
  d->export.max_payload = SWAP_MAX_PAYLOAD;
  /* The block map's reserve (none with --cache-mode off). */
  uint64_t low, high;
  reserve_watermarks (d, &low, &high);
  const char *what = o->file ? "cache" : "disk";
  char map_said[200] = "";
  struct cache_stats cs;
  if (cache_reserve_start (d->cache, low, high) == 0 && cache_get_stats (d->cache, &cs) == 0)
    snprintf (map_said, sizeof map_said, ", %s memory from a locked reserve of %" PRIu64
              " bytes (refilled below %" PRIu64 " up to %" PRIu64 " bytes; limit %" PRIu64 ")",
              what, cs.reserve_bytes, low, high, cs.mem_limit);
  else if (errno != EINVAL) {
    int e = errno;
    log_error ("--swap: cannot fill the %s memory reserve (%" PRIu64 " bytes): %m", what, high);
    errno = e;
    return -1;
  }
  log_info ("swap mode: memory locked, pools preallocated%s%s%s", map_said,
            flusher ? ", I/O threads are I/O flushers" : "",
            oom ? ", oom_score_adj -1000" : "");
  return 0;
}

/* A FUSE worker that libfuse started under load would map and lock a
 * stack while the machine swaps: start them all before serving. */
void
daemon_swap_fuse_workers (struct daemon_stack *d)
{
#ifdef HAVE_FUSE
  int n = fuse_front_start_workers (d->fuse);
  if (n == -1)
    log_warn ("--swap: could not start every FUSE worker thread before serving (%m); "
              "libfuse may start more while the machine swaps");
  else
    log_info ("swap mode: %d FUSE worker threads started", n);
#endif
}
