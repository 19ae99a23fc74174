/* sgblkd: command line, daemon life cycle and signal handling.
 *
 * Start-up builds the stack bottom up (store, sgv pool, command pool,
 * logical unit, NBD server), binds every listener while still attached to
 * the terminal so that "port in use" or "socket held by a live daemon"
 * reach the user, then daemonizes and starts the worker threads.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigtimedwait, which also gives the once-a-second tick that
 * trims idle vectors from the sgv pool.  Life cycle of the main thread:
 * SETUP -> SERVING -> (SIGTERM/SIGINT) STOPPING -> exit 0.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "cli.h"
#ifdef HAVE_FUSE
#include "fusefront.h"
#endif
#include "log.h"
#include "nbd.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"
#include "sync.h"

/* Linux 5.6's PR_SET_IO_FLUSHER; older headers lack it, and the call
 * must not silently disappear with them. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Swap mode: commands preallocated for this many requests in flight, the
 * largest READ or WRITE payload it accepts (told to NBD clients), and the
 * stack of each thread it starts. */
#define SWAP_QUEUE 256
#define SWAP_MAX_PAYLOAD (2u << 20)
#define SWAP_THREAD_STACK (2u << 20)

struct daemon_state {
  struct cli_options opt;
  struct store *store;
  struct sgv_pool *sgv;
  struct scsi_cmd_pool *cmds;
  struct scsi_lu *lu;
  struct blkio io;               /* the unit's seam, shared by the front-ends */
  bool io_ready;
  struct nbd_server *srv;
  struct nbd_export export;
#ifdef HAVE_FUSE
  struct fuse_front *fuse;
#endif
  bool pidfile_written;
};

/* The in-memory disk is the compressed block map with nothing behind it;
 * a file gets the map as a cache in front of it (unless --cache-mode off). */
static struct store *
open_store (const struct cli_options *o)
{
  struct cache_config cc = {
    .block_size = o->cache_block,
    .mode = CACHE_MODE_WRITEBACK,
  };
  struct store *s, *file;

  if (o->file == NULL) {
    cc.size = o->size;
    cc.mem_limit = o->mem_limit;
    s = cache_create (&cc);
    if (s == NULL)
      log_error ("cannot create an in-memory disk of %" PRIu64 " bytes: %m",
                 o->size);
    return s;
  }

  /* --create makes a missing file; an existing one of another size is
   * somebody's data, and is never resized. */
  struct stat sb;
  if (o->create && stat (o->file, &sb) == 0 && S_ISREG (sb.st_mode) &&
      (uint64_t) sb.st_size != o->size) {
    log_error ("%s: exists with size %" PRIu64 ", not the --size %" PRIu64
               " given with --create; refusing to resize it",
               o->file, (uint64_t) sb.st_size, o->size);
    return NULL;
  }

  unsigned flags = 0;
  if (o->read_only) flags |= STORE_FILE_READ_ONLY;
  if (o->create) flags |= STORE_FILE_CREATE;
  if (o->direct) flags |= STORE_FILE_DIRECT;
  file = store_file_open (o->file, flags, o->size);
  if (file == NULL) {
    int e = errno;
    if (e == EACCES && !o->read_only)
      log_error ("%s: cannot open for writing: %s (use --read-only to serve it read-only)",
                 o->file, strerror (e));
    else if (e == EINVAL && o->direct)
      log_error ("%s: cannot open with O_DIRECT (the filesystem may not support it; drop --direct)",
                 o->file);
    else if (e == EINVAL)
      log_error ("%s: not a regular file or block device, or empty", o->file);
    else
      log_error ("%s: %s", o->file, strerror (e));
    return NULL;
  }
  if (cache_mode_parse (o->cache_mode, &cc.mode) == -1)
    abort ();                   /* cli_parse checked it */
  cc.backing = file;
  cc.mem_limit = o->cache_size;
  s = cache_create (&cc);
  if (s == NULL) {
    log_error ("%s: cannot create a cache of %" PRIu64 " bytes: %m",
               o->file, o->cache_size);
    store_close (file);
  }
  return s;
}

/* The data path only counts blocks found damaged; say so once for each
 * new one (the last one's number, if several came at once). */
static void
report_corrupt_blocks (struct daemon_state *d, uint64_t *seen)
{
  struct cache_stats cs;

  if (cache_get_stats (d->store, &cs) == -1 || cs.corrupt_blocks == *seen)
    return;
  log_error ("cache: %" PRIu64 " more block%s failed to decompress (last: "
             "byte offset %" PRIu64 "); %s",
             cs.corrupt_blocks - *seen, cs.corrupt_blocks - *seen > 1 ? "s" : "",
             cs.last_corrupt * cs.block_size,
             d->opt.file ? "a clean one is read again from the file; a dirty one "
             "fails reads and FLUSH with EIO until it is rewritten"
             : "reads of it fail with EIO until it is rewritten");
  *seen = cs.corrupt_blocks;
}

static void
log_stats (struct daemon_state *d)
{
  struct sgv_stats sv;
  struct scsi_pool_stats cp;
  struct scsi_lu_stats lu;
  struct store_stats st;
  struct nbd_server_stats ns;

  sgv_pool_get_stats (d->sgv, &sv);
  scsi_cmd_pool_get_stats (d->cmds, &cp);
  scsi_lu_get_stats (d->lu, &lu);
  store_get_stats (d->store, &st);
  struct cache_stats cs;
  if (cache_get_stats (d->store, &cs) == 0)
    log_info ("cache %s, %" PRIu32 "-byte blocks: original %" PRIu64
              " B compressed %" PRIu64 " B memory used %" PRIu64
              " B (limit %" PRIu64 ") same-filled %" PRIu64 " raw %" PRIu64
              " hits %" PRIu64 " misses %" PRIu64 " dirty %" PRIu64
              " written back %" PRIu64 " evicted %" PRIu64
              " writer waits %" PRIu64 " compacted %" PRIu64
              " corrupt %" PRIu64,
              d->opt.file ? cache_mode_name (cs.mode) : "in-memory",
              cs.block_size, cs.orig_bytes,
              cs.compr_bytes, cs.mem_used, cs.mem_limit, cs.same_blocks,
              cs.huge_blocks, cs.hits, cs.misses, cs.dirty_blocks,
              cs.written_back, cs.evicted, cs.writer_waits, cs.compactions,
              cs.corrupt_blocks);
  nbd_server_get_stats (d->srv, &ns);
  log_info ("nbd: connections open %" PRIu64 " total %" PRIu64
            " requests %" PRIu64 " errors %" PRIu64 " read %" PRIu64
            " B written %" PRIu64 " B handshake failures %" PRIu64
            " stuck cleanups %" PRIu64,
            ns.connections_open, ns.connections_total, ns.requests,
            ns.errors, ns.bytes_read, ns.bytes_written,
            ns.handshake_failures, ns.cleanup_stuck);
  log_info ("scsi: commands %" PRIu64 " reads %" PRIu64 " writes %" PRIu64
            " syncs %" PRIu64 " unmaps %" PRIu64 " write-sames %" PRIu64
            " errors %" PRIu64,
            lu.commands, lu.reads, lu.writes, lu.syncs, lu.unmaps,
            lu.write_sames, lu.errors);
  log_info ("cmd pool: allocated %" PRIu64 " in use %" PRIu64 " cached %"
            PRIu64 " reserve %" PRIu64 "/%" PRIu64 " fallbacks %" PRIu64
            " waits %" PRIu64 " alloc failures %" PRIu64,
            cp.allocated, cp.in_use, cp.cached, cp.reserve_level,
            cp.reserve_size, cp.fallbacks, cp.waits, cp.alloc_failures);
  log_info ("sgv pool: allocated %" PRIu64 " in use %" PRIu64 " cached %"
            PRIu64 " (%" PRIu64 " B) hits %" PRIu64 " misses %" PRIu64
            " flushed %" PRIu64 " trimmed %" PRIu64,
            sv.allocated, sv.in_use, sv.cached, sv.cached_bytes, sv.hits,
            sv.misses, sv.flushed, sv.trimmed);
  log_info ("store %s: allocated %" PRIu64 " B reads %" PRIu64 " writes %"
            PRIu64 " flushes %" PRIu64 " trims %" PRIu64 " zeroes %" PRIu64,
            d->store->ops->name, st.bytes_allocated, st.reads, st.writes,
            st.flushes, st.trims, st.zeroes);
}

static int
write_pidfile (const char *path)
{
  char buf[32];
  int fd, n;

  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1)
    return -1;
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

static int
setup (struct daemon_state *d)
{
  const struct cli_options *o = &d->opt;

  d->store = open_store (o);
  if (d->store == NULL)
    return -1;
  if (d->store->size < o->block_size || d->store->size % o->block_size) {
    log_error ("%s: size %" PRIu64 " is not a positive multiple of the block size %" PRIu32,
               o->file ? o->file : "memory", d->store->size, o->block_size);
    return -1;
  }

  struct sgv_pool_config sc = { .name = "sgblkd", .idle_ns = 5000000000ull };
  d->sgv = sgv_pool_create (&sc);
  struct scsi_cmd_pool_config cc = { .reserve = 64, .max_cached = 1024 };
  d->cmds = scsi_cmd_pool_create (&cc);
  if (d->sgv == NULL || d->cmds == NULL) {
    log_error ("cannot create the I/O pools: %m");
    return -1;
  }

  struct scsi_lu_config lc = {
    .store = d->store,
    .sgv = d->sgv,
    .block_size = o->block_size,
    .read_only = o->read_only,
    /* WCE: a volatile cache sits between acknowledgement and the medium. */
    .write_cache = (d->store->caps & STORE_CAP_PERSISTENT) != 0 &&
                   strcmp (o->cache_mode, "writethrough") != 0,
    .serial = NULL,
  };
  d->lu = scsi_lu_create (&lc);
  if (d->lu == NULL) {
    log_error ("cannot create the logical unit: %m");
    return -1;
  }

  if (blkio_init (&d->io, d->lu, d->sgv) == -1) {
    log_error ("cannot set up block I/O: %m");
    return -1;
  }
  d->io_ready = true;
  d->export = (struct nbd_export) {
    .name = o->export_name,
    .description = o->file ? o->file : "sgblk in-memory disk",
    .lu = d->lu, .cmds = d->cmds, .sgv = d->sgv, .io = &d->io,
    .read_only = o->read_only,
  };
  struct nbd_server_config nc = {
    .threads = o->threads ? o->threads : sync_default_threads (),
    .exports = &d->export, .nexports = 1,
  };
  d->srv = nbd_server_create (&nc);
  if (d->srv == NULL) {
    log_error ("cannot create the NBD server: %m");
    return -1;
  }
  for (unsigned i = 0; i < o->nunix; i++) {
    if (nbd_server_listen_unix (d->srv, o->unix_paths[i]) == -1) {
      if (errno == EADDRINUSE)
        log_error ("%s: socket is in use by a running server (not taking it over)",
                   o->unix_paths[i]);
      else
        log_error ("%s: cannot listen: %m", o->unix_paths[i]);
      return -1;
    }
  }
  if (o->port > 0 &&
      nbd_server_listen_tcp (d->srv, o->bind, o->port) == -1) {
    log_error ("%s:%d: cannot listen: %m", o->bind, o->port);
    return -1;
  }
  return 0;
}

/* --swap: what a daemon that the kernel swaps onto needs, before any
 * thread exists (threads inherit the I/O flusher flag).  Locking memory is
 * essential (a swapped-out daemon deadlocks the swap-in it must serve):
 * failing it fails start-up.  The rest degrades with a clear warning. */
static int
swap_mode (struct daemon_state *d)
{
  /* Threads started from now on (connections, FUSE workers) get stacks
   * of SWAP_THREAD_STACK: every byte of a stack is locked and resident
   * under mlockall, and the I/O path needs a small fraction of glibc's
   * 8 MiB default. */
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
    log_error ("--swap: cannot lock memory (mlockall): %m; raise RLIMIT_MEMLOCK or run as root");
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
    log_error ("--swap: cannot preallocate the I/O pools: %m");
    return -1;
  }
  d->export.max_payload = SWAP_MAX_PAYLOAD;
  /* The block map's memory too (none with --cache-mode off). */
  uint64_t map_bytes = d->opt.file ? d->opt.cache_size : d->opt.mem_limit;
  char map_said[80] = "";
  if (cache_prealloc (d->store) == 0)
    snprintf (map_said, sizeof map_said, " and %" PRIu64 " bytes of %s memory",
              map_bytes, d->opt.file ? "cache" : "disk");
  else if (errno != EINVAL) {
    log_error ("--swap: cannot preallocate %" PRIu64 " bytes of %s memory: %m",
               map_bytes, d->opt.file ? "cache" : "disk");
    return -1;
  }
  log_info ("swap mode: memory locked, pools%s preallocated%s%s", map_said,
            flusher ? ", I/O threads are I/O flushers" : "",
            oom ? ", oom_score_adj -1000" : "");
  return 0;
}

static int
start_fuse (struct daemon_state *d)
{
#ifdef HAVE_FUSE
  d->fuse = fuse_front_start (d->opt.fuse_mount, &d->export,
                              d->opt.threads ? d->opt.threads : sync_default_threads (),
                              d->opt.fuse_opts);
  if (d->fuse == NULL) {
    if (errno == ENOTCONN)
      log_error ("%s: stale FUSE mount of a daemon that died; clear it with: fusermount3 -u %s",
                 d->opt.fuse_mount, d->opt.fuse_mount);
    else
      log_error ("%s: cannot mount: %m", d->opt.fuse_mount);
    return -1;
  }
  if (d->opt.swap) {
    int n = fuse_front_start_workers (d->fuse);
    if (n == -1)
      log_warn ("--swap: could not start every FUSE worker thread before serving (%m); "
                "libfuse may start more while the machine swaps");
    else
      log_info ("swap mode: %d FUSE worker threads started", n);
  }
  /* Said last: whoever waits for it finds the file ready and, in swap
   * mode, the daemon's memory all set up. */
  log_info ("serving the disk as %s/%s", d->opt.fuse_mount,
            d->opt.export_name[0] ? d->opt.export_name : "disk");
  return 0;
#else
  log_error ("--fuse: this sgblkd was built without libfuse3");
  errno = ENOTSUP;
  return -1;
#endif
}

/* Returns -1 if data may not have reached the store (the exit status must
 * say so), 0 otherwise. */
static int
teardown (struct daemon_state *d)
{
  int r = 0;

#ifdef HAVE_FUSE
  /* FUSE first: its requests in flight finish, then it unmounts. */
  fuse_front_stop (d->fuse);
#endif
  if (d->srv) {
    nbd_server_stop (d->srv);
    log_stats (d);
    nbd_server_destroy (d->srv);
  }
  if (d->io_ready)
    blkio_fini (&d->io);
  if (d->lu) scsi_lu_destroy (d->lu);
  if (d->store && store_flush (d->store) == -1) {
    log_error ("final flush failed: %m");
    r = -1;
  }
  if (d->cmds && scsi_cmd_pool_destroy (d->cmds) == -1)
    log_error ("commands still in use at exit");
  if (d->sgv && sgv_pool_destroy (d->sgv) == -1)
    log_error ("vectors still in use at exit");
  store_close (d->store);
  if (d->pidfile_written)
    unlink (d->opt.pidfile);
  return r;
}

int
main (int argc, char **argv)
{
  struct daemon_state d = { 0 };
  sigset_t sigs;
  int ready_fd = -1;
  int status = CLI_EXIT_RUNTIME;
  unsigned ticks = 0;
  uint64_t corrupt_seen = 0;

  if (cli_parse (argc, argv, &d.opt, stderr) == -1)
    return CLI_EXIT_USAGE;
  if (d.opt.help) {
    cli_usage (stdout);
    return CLI_EXIT_OK;
  }
  if (d.opt.version) {
    printf ("sgblkd %s\n", PACKAGE_VERSION);
    return CLI_EXIT_OK;
  }

  log_init ("sgblkd", false, d.opt.verbose);
  signal (SIGPIPE, SIG_IGN);
  /* Block the signals we take synchronously before any thread exists, so
   * that every thread inherits the mask. */
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGUSR1);
  sigaddset (&sigs, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);

  /* Swap mode locks the in-memory disk's whole memory at start: without
   * --mem-limit it may take half the machine's memory, or the disk size
   * if that is less. */
  if (d.opt.swap && d.opt.file == NULL && d.opt.mem_limit == 0) {
    long pages = sysconf (_SC_PHYS_PAGES), psize = sysconf (_SC_PAGESIZE);
    uint64_t half = pages > 0 && psize > 0 ? (uint64_t) pages * (uint64_t) psize / 2 : d.opt.size;
    d.opt.mem_limit = d.opt.size < half ? d.opt.size : half;
  }
  if (setup (&d) == -1)
    goto out;

  /* Said before detaching, so that whoever started us sees how to
   * connect; the sockets are bound already. */
  log_info ("serving %s (%" PRIu64 " bytes, %" PRIu32 "-byte blocks%s) as export '%s'",
            d.opt.file ? d.opt.file : "an in-memory disk", d.store->size,
            d.opt.block_size, d.opt.read_only ? ", read-only" : "",
            d.opt.export_name);
  for (unsigned i = 0; i < d.opt.nunix; i++)
    log_info ("listening on unix:%s (nbd+unix:///%s?socket=%s)",
              d.opt.unix_paths[i], d.opt.export_name, d.opt.unix_paths[i]);
  if (d.opt.port > 0)
    log_info ("listening on %s:%d (nbd://%s:%d/%s)", d.opt.bind, d.opt.port,
              d.opt.bind, d.opt.port, d.opt.export_name);
  if (!d.opt.foreground) {
    if (daemonize (&ready_fd) == -1) {
      log_error ("cannot daemonize: %m");
      goto out;
    }
    log_init ("sgblkd", true, d.opt.verbose);
  }
  if (d.opt.pidfile) {
    if (write_pidfile (d.opt.pidfile) == -1) {
      log_error ("%s: cannot write pidfile: %m", d.opt.pidfile);
      goto out;
    }
    d.pidfile_written = true;
  }
  if (d.opt.swap && swap_mode (&d) == -1)
    goto out;
#ifdef SGBLK_TEST_HOOKS
  /* Tests make normal command allocations fail to exercise the reserve
   * under load (--disable-test-hooks leaves this out). */
  const char *fail_every = getenv ("SGBLK_TEST_CMD_FAIL_EVERY");
  if (fail_every && atoi (fail_every) > 0) {
    scsi_cmd_pool_fail_every (d.cmds, (unsigned) atoi (fail_every));
    log_warn ("test hook: every %d. command allocation fails", atoi (fail_every));
  }
#endif
  if (nbd_server_start (d.srv) == -1) {
    log_error ("cannot start the NBD server: %m");
    goto out;
  }
  if (d.opt.fuse_mount && start_fuse (&d) == -1)
    goto out;
  tell_parent (&ready_fd, 0);

  for (;;) {
    struct timespec tick = { .tv_sec = 1 };
    int sig = sigtimedwait (&sigs, NULL, &tick);
    /* (Taken now: the report below may set errno.) */
    bool idle = sig == -1 && errno == EAGAIN;
    if (sig == SIGTERM || sig == SIGINT) {
      log_info ("%s: finishing in-flight I/O, flushing and exiting",
                strsignal (sig));
      break;
    }
    report_corrupt_blocks (&d, &corrupt_seen);
    if (sig == SIGUSR1)
      log_stats (&d);
    else if (idle && !d.opt.swap) {
      /* (In swap mode memory stays as preallocated: what is given back
       * would have to be faulted in again while the machine swaps.) */
      sgv_pool_trim (d.sgv);
      /* Every ten seconds, give back the memory of sparse arena chunks. */
      if (++ticks % 10 == 0)
        cache_compact (d.store);
    }
  }
  status = CLI_EXIT_OK;

 out:
  tell_parent (&ready_fd, (char) status);
  if (teardown (&d) == -1)
    status = CLI_EXIT_RUNTIME;
  return status;
}
