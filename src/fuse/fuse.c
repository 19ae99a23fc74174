/* The FUSE front-end: an export as a regular file, via libfuse3's
 * high-level API and its multithreaded loop.
 *
 * Every read, write, fsync, fallocate and lseek is one call of the unit's
 * block-I/O seam (blkio.h) with a command from the export's pool and the
 * data in a vector from its sgv pool, exactly as an NBD request: unaligned
 * edges and the unit's rmw lock are the seam's, shared with NBD, so the
 * two front-ends see each other's writes in some serial order.
 *
 * Page cache policy: direct_io.  The file is a device: a loop device on
 * top has its own page cache, and caching the same pages again in the
 * FUSE file would double the memory a swap test needs and hide the
 * device's own write-back from fsync.
 *
 * Allocations: libfuse allocates for every request (its request object,
 * and a buffer for each read through the high-level API), which no
 * front-end of it can avoid.  What is ours to choose keeps it down:
 * nullpath_ok spares the path string of each read, write, fsync and
 * fallocate (the open file's handle says which file it is), and worker
 * threads, once started, stay, so a busy mount does not create and
 * destroy threads (each a stack to map and, under --swap, to lock).
 * libfuse starts a worker only when a request finds none idle; under
 * --swap, fuse_front_start_workers makes it start them all at once: it
 * sends FUSE_THREADS reads of its own and holds each in op_read until
 * all have arrived, so that every worker is busy and libfuse adds the
 * next, and none is left to start while the machine swaps.  Each worker
 * so held readies itself for I/O (blkio_thread_prepare), which is why
 * there is one read for every worker, the last one included: a worker's
 * first request must not be the one to map its buffers.
 */
#include <config.h>

#define FUSE_USE_VERSION 314
#include <fuse.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fusefront.h"
#include "log.h"
#include "sync.h"

#define FUSE_THREADS FUSE_FRONT_THREADS
#define DISK_FH 1                      /* fi->fh of the disk file */

struct fuse_front {
  struct fuse *f;
  struct nbd_export *exp;
  char *mountpoint;
  char name[256];               /* file name in the mount */
  uint64_t size;
  pthread_t loop;
  bool running;
  /* Starting the workers: reads held in op_read until warm_in reaches
   * warm_target (0: not starting them). */
  pthread_mutex_t warm_lock;
  pthread_cond_t warm_cond;
  atomic_uint warm_target;
  unsigned warm_in;
  /* Retiring (fuse_front_retire): the file is gone for new opens, and
   * the mount stays until the opens still on it are released. */
  atomic_uint opens;
  atomic_bool retiring;
};

/* Hold a read of fuse_front_start_workers until all of them are in; a
 * read of anybody else's that comes meanwhile counts as one of them. */
static void
warm_up_wait (struct fuse_front *ff)
{
  struct timespec deadline = sync_deadline_ns (10 * UINT64_C (1000000000));

  /* A failure leaves it to the first request; said by the caller. */
  (void) blkio_thread_prepare (ff->exp->io);
  pthread_mutex_lock (&ff->warm_lock);
  if (atomic_load (&ff->warm_target) && ++ff->warm_in >= ff->warm_target)
    pthread_cond_broadcast (&ff->warm_cond);
  while (atomic_load (&ff->warm_target) && ff->warm_in < ff->warm_target)
    if (pthread_cond_timedwait (&ff->warm_cond, &ff->warm_lock, &deadline) == ETIMEDOUT)
      break;
  pthread_mutex_unlock (&ff->warm_lock);
}

static struct fuse_front *
front (void)
{
  return fuse_get_context ()->private_data;
}

/* A command from the export's pool for one operation. */
static struct scsi_cmd *
cmd_get (struct fuse_front *ff)
{
  return scsi_cmd_get (ff->exp->cmds, true);
}

/* Give c back; the seam's errno as FUSE's -errno. */
static int
cmd_put (struct fuse_front *ff, struct scsi_cmd *c, int err)
{
  scsi_cmd_put (ff->exp->cmds, c);
  if (err == EPERM && ff->exp->read_only)
    err = EROFS;
  return -err;
}

/* Read or write len bytes at off through a vector; buf is libfuse's. */
static int
rw (struct fuse_front *ff, bool write, char *buf, uint64_t off, size_t len)
{
  struct blkio *io = ff->exp->io;
  struct sgv_vec *v = blkio_vec_get (io, len);
  int err;

  if (v == NULL)
    return -errno;
  struct scsi_cmd *c = cmd_get (ff);
  if (write) {
    sgv_copy_from_buf (v, 0, buf, len);
    err = blkio_write (io, c, off, len, v, 0);
  }
  else if ((err = blkio_read (io, c, off, len, v)) == 0)
    sgv_copy_to_buf (v, 0, buf, len);
  blkio_vec_put (io, v);
  return cmd_put (ff, c, err);
}

static bool
is_file (struct fuse_front *ff, const char *path)
{
  return path[0] == '/' && strcmp (path + 1, ff->name) == 0;
}

static int
op_getattr (const char *path, struct stat *st, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();

  memset (st, 0, sizeof *st);
  st->st_uid = getuid ();
  st->st_gid = getgid ();
  /* nullpath_ok: an open file is the disk or else the root directory. */
  if (path == NULL ? fi == NULL || fi->fh != DISK_FH : strcmp (path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (path != NULL && (!is_file (ff, path) || atomic_load (&ff->retiring)))
    return -ENOENT;
  st->st_mode = S_IFREG | (ff->exp->read_only ? 0444 : 0644);
  st->st_nlink = 1;
  st->st_size = (off_t) ff->size;
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t) (ff->size / 512);
  return 0;
}

static int
op_readdir (const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
            struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  struct fuse_front *ff = front ();

  if (path != NULL && strcmp (path, "/") != 0)   /* NULL: the open root */
    return -ENOTDIR;
  fill (buf, ".", NULL, 0, 0);
  fill (buf, "..", NULL, 0, 0);
  if (!atomic_load (&ff->retiring))
    fill (buf, ff->name, NULL, 0, 0);
  return 0;
}

static int
op_open (const char *path, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();

  if (!is_file (ff, path))
    return -ENOENT;
  if (ff->exp->read_only && (fi->flags & O_ACCMODE) != O_RDONLY)
    return -EROFS;
  /* Counted before retiring is looked at, which fuse_front_retire sets
   * before it counts: one of the two sees the other. */
  atomic_fetch_add (&ff->opens, 1);
  if (atomic_load (&ff->retiring)) {
    atomic_fetch_sub (&ff->opens, 1);
    return -ENOENT;
  }
  fi->direct_io = 1;
  fi->fh = DISK_FH;
  return 0;
}

static int
op_release (const char *path, struct fuse_file_info *fi)
{
  (void) path;
  if (fi->fh == DISK_FH)
    atomic_fetch_sub (&front ()->opens, 1);
  return 0;
}

static int
read_disk (const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();

  if ((uint64_t) off >= ff->size)
    return 0;
  if (len > ff->size - (uint64_t) off)
    len = ff->size - (uint64_t) off;
  if (len == 0)
    return 0;
  if (atomic_load (&ff->warm_target))
    warm_up_wait (ff);
  int r = rw (ff, false, buf, (uint64_t) off, len);
  return r < 0 ? r : (int) len;
}

static int
write_disk (const char *path, const char *buf, size_t len, off_t off,
          struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();

  if (ff->exp->read_only)
    return -EROFS;
  if ((uint64_t) off >= ff->size || len > ff->size - (uint64_t) off)
    return -ENOSPC;                    /* a device does not grow */
  if (len == 0)
    return 0;
  int r = rw (ff, true, (char *) buf, (uint64_t) off, len);
  return r < 0 ? r : (int) len;
}

static int
fsync_disk (const char *path, int datasync, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();
  struct scsi_cmd *c = cmd_get (ff);

  return cmd_put (ff, c, blkio_flush (ff->exp->io, c));
}

/* Zero [off, off+len), deallocating whole blocks when punching. */
static int
fallocate_disk (const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();
  bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  uint64_t start = (uint64_t) off, end;

  if (!punch && mode != FALLOC_FL_ZERO_RANGE && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
    return -EOPNOTSUPP;
  if (ff->exp->read_only)
    return -EROFS;
  if (off < 0 || len <= 0 || start >= ff->size)
    return -EINVAL;
  end = start + (uint64_t) len > ff->size ? ff->size : start + (uint64_t) len;
  struct scsi_cmd *c = cmd_get (ff);
  return cmd_put (ff, c, blkio_zero (ff->exp->io, c, start, end - start,
                                     punch ? BLKIO_MAY_TRIM : 0));
}

/* Each answer to a request for the disk's data, counted for the export
 * as NBD's are (blkio_count): r is bytes or 0, or -errno. */
static int
counted (enum blkio_op op, int r)
{
  blkio_count (front ()->exp->io, op, r > 0 ? (uint64_t) r : 0, r < 0 ? -r : 0);
  return r;
}

static int
op_read (const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
  return counted (BLKIO_OP_READ, read_disk (path, buf, len, off, fi));
}

static int
op_write (const char *path, const char *buf, size_t len, off_t off,
          struct fuse_file_info *fi)
{
  return counted (BLKIO_OP_WRITE, write_disk (path, buf, len, off, fi));
}

static int
op_fsync (const char *path, int datasync, struct fuse_file_info *fi)
{
  return counted (BLKIO_OP_FLUSH, fsync_disk (path, datasync, fi));
}

static int
op_fallocate (const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
  return counted (mode & FALLOC_FL_PUNCH_HOLE ? BLKIO_OP_TRIM : BLKIO_OP_ZERO,
                  fallocate_disk (path, mode, off, len, fi));
}

static int
op_statfs (const char *path, struct statvfs *st)
{
  struct fuse_front *ff = front ();

  memset (st, 0, sizeof *st);
  st->f_bsize = st->f_frsize = 4096;
  st->f_blocks = ff->size / 4096;
  st->f_files = 2;
  st->f_namemax = 255;
  return 0;
}

/* A device has a fixed size and nothing else to change. */
static int
op_truncate (const char *path, off_t size, struct fuse_file_info *fi)
{
  return (uint64_t) size == front ()->size ? 0 : -EPERM;
}

static int
op_chmod (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  return -EPERM;
}

static int
op_create (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  return -EPERM;
}

/* SEEK_DATA and SEEK_HOLE from the unit's extents. */
static off_t
op_lseek (const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
  struct fuse_front *ff = front ();
  struct blkio_extent ext[32];
  uint64_t pos = (uint64_t) off;
  int err = 0;

  if (whence != SEEK_DATA && whence != SEEK_HOLE)
    return -EINVAL;
  if (off < 0 || pos >= ff->size)
    return -ENXIO;
  struct scsi_cmd *c = cmd_get (ff);
  while (pos < ff->size && err == 0) {
    unsigned n;
    err = blkio_extents (ff->exp->io, c, pos, ff->size - pos, ext, 32, &n);
    for (unsigned i = 0; i < n && err == 0; i++) {
      if (ext[i].hole != (whence == SEEK_DATA)) {
        cmd_put (ff, c, 0);
        return (off_t) pos;
      }
      pos += ext[i].len;
    }
  }
  if (err)
    return cmd_put (ff, c, err);
  cmd_put (ff, c, 0);
  /* No more data: ENXIO; a hole: the end of the file counts as one. */
  return whence == SEEK_DATA ? -ENXIO : (off_t) ff->size;
}

static void *
op_init (struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  cfg->direct_io = 1;
  cfg->kernel_cache = 0;
  cfg->use_ino = 0;
  cfg->nullpath_ok = 1;
  conn->max_write = 1u << 20;
  conn->max_read = 1u << 20;
  return fuse_get_context ()->private_data;
}

static const struct fuse_operations ops = {
  .init = op_init,
  .getattr = op_getattr,
  .readdir = op_readdir,
  .open = op_open,
  .release = op_release,
  .read = op_read,
  .write = op_write,
  .fsync = op_fsync,
  .fallocate = op_fallocate,
  .statfs = op_statfs,
  .truncate = op_truncate,
  .chmod = op_chmod,
  .create = op_create,
  .lseek = op_lseek,
};

static void *
loop_thread (void *arg)
{
  struct fuse_front *ff = arg;
  struct fuse_loop_config *lc = fuse_loop_cfg_create ();

  fuse_loop_cfg_set_max_threads (lc, FUSE_THREADS);
  fuse_loop_cfg_set_idle_threads (lc, FUSE_THREADS);
  fuse_loop_cfg_set_clone_fd (lc, 0);
  fuse_loop_mt (ff->f, lc);
  fuse_loop_cfg_destroy (lc);
  return NULL;
}

struct fuse_front *
fuse_front_start (const char *mountpoint, struct nbd_export *exp, unsigned threads,
                  const char *extra_opts)
{
  struct fuse_front *ff = calloc (1, sizeof *ff);
  struct stat st;
  char opts[1024];

  if (ff == NULL)
    return NULL;
  /* A mount left by a daemon that died answers ENOTCONN. */
  if (stat (mountpoint, &st) == -1) {
    int e = errno;
    free (ff);
    errno = e;
    return NULL;
  }
  if (!S_ISDIR (st.st_mode)) {
    free (ff);
    errno = ENOTDIR;
    return NULL;
  }
  ff->exp = exp;
  ff->size = exp->io->size;
  snprintf (ff->name, sizeof ff->name, "%s", exp->name[0] ? exp->name : "disk");
  ff->mountpoint = strdup (mountpoint);
  pthread_mutex_init (&ff->warm_lock, NULL);
  pthread_cond_init (&ff->warm_cond, NULL);
  snprintf (opts, sizeof opts, "fsname=sgblk,subtype=sgblk,max_read=1048576%s%s",
            extra_opts && *extra_opts ? "," : "", extra_opts ? extra_opts : "");
  char *argv[] = { (char *) "sgblkd", (char *) "-o", opts, NULL };
  struct fuse_args args = FUSE_ARGS_INIT (3, argv);
  ff->f = fuse_new (&args, &ops, sizeof ops, ff);
  fuse_opt_free_args (&args);
  if (ff->f == NULL) {
    free (ff->mountpoint);
    free (ff);
    errno = EINVAL;
    return NULL;
  }
  if (fuse_mount (ff->f, mountpoint) != 0) {
    fuse_destroy (ff->f);
    free (ff->mountpoint);
    free (ff);
    errno = EIO;
    return NULL;
  }
  (void) threads;
  if (pthread_create (&ff->loop, NULL, loop_thread, ff) != 0) {
    fuse_unmount (ff->f);
    fuse_destroy (ff->f);
    free (ff->mountpoint);
    free (ff);
    errno = EAGAIN;
    return NULL;
  }
  ff->running = true;
  return ff;
}

void
fuse_front_stop (struct fuse_front *ff)
{
  if (ff == NULL)
    return;
  if (ff->running) {
    fuse_exit (ff->f);
    fuse_unmount (ff->f);             /* the loop's read then fails: it returns */
    pthread_join (ff->loop, NULL);
    ff->running = false;
  }
  fuse_destroy (ff->f);
  pthread_mutex_destroy (&ff->warm_lock);
  pthread_cond_destroy (&ff->warm_cond);
  free (ff->mountpoint);
  free (ff);
}

unsigned
fuse_front_retire (struct fuse_front *ff)
{
  if (ff == NULL)
    return 0;
  atomic_store (&ff->retiring, true);
  return atomic_load (&ff->opens);
}

/* One read of the disk file through the mount, from outside libfuse. */
static void *
warm_up_read (void *arg)
{
  struct fuse_front *ff = arg;
  char path[4096], buf[512];
  intptr_t ok = 0;

  snprintf (path, sizeof path, "%s/%s", ff->mountpoint, ff->name);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ok = pread (fd, buf, sizeof buf, 0) == (ssize_t) sizeof buf;
    close (fd);
  }
  return (void *) ok;
}

int
fuse_front_start_workers (struct fuse_front *ff)
{
  pthread_t t[FUSE_THREADS];
  pthread_attr_t attr;
  unsigned n = 0, done = 0;

  /* Small stacks: they open and read, and glibc keeps the stacks of
   * finished threads (locked, under --swap) for the next ones. */
  pthread_attr_init (&attr);
  pthread_attr_setstacksize (&attr, 512 * 1024);
  ff->warm_in = 0;
  atomic_store (&ff->warm_target, FUSE_THREADS);
  int err = 0;
  for (; n < FUSE_THREADS; n++)
    if ((err = pthread_create (&t[n], &attr, warm_up_read, ff)) != 0)
      break;
  pthread_attr_destroy (&attr);
  pthread_mutex_lock (&ff->warm_lock);
  if (n < FUSE_THREADS) {                /* release those that started */
    atomic_store (&ff->warm_target, 0);
    pthread_cond_broadcast (&ff->warm_cond);
  }
  pthread_mutex_unlock (&ff->warm_lock);
  for (unsigned i = 0; i < n; i++) {
    void *ok;
    pthread_join (t[i], &ok);
    done += ok != NULL;
  }
  pthread_mutex_lock (&ff->warm_lock);
  bool all = ff->warm_in >= FUSE_THREADS;
  atomic_store (&ff->warm_target, 0);
  pthread_cond_broadcast (&ff->warm_cond);
  pthread_mutex_unlock (&ff->warm_lock);
  if (!all || done < FUSE_THREADS) {
    errno = err ? err : EAGAIN;
    return -1;
  }
  return FUSE_THREADS;
}
