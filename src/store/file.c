/* File store: a regular file or a block device, accessed with
 * preadv/pwritev at explicit offsets (the shared file position is never
 * used, so any number of threads may call in at once).
 *
 * Size: store.size is the exact size of the file or device; the caller
 * checks that it is a multiple of its block size.  STORE_FILE_CREATE
 * creates the file if needed and extends it to create_size if it is
 * smaller (never shrinks it).  A size of 0 is refused with EINVAL, as is
 * anything that is neither a regular file nor a block device.
 * STORE_FILE_DIRECT opens with O_DIRECT; a filesystem that refuses it
 * (tmpfs, for one) makes the open fail with EINVAL, and the caller decides
 * whether to retry without it.
 *
 * Deallocation and zeroing: what the filesystem or device supports is
 * learnt by trying.  Regular files are probed once at open with a hole
 * punch past the end of file, which changes nothing; block devices are
 * looked up in sysfs (write_zeroes_max_bytes).  That sets STORE_CAP_TRIM
 * and STORE_CAP_FAST_ZERO.  At run time, a method the kernel refuses with
 * EOPNOTSUPP is remembered in an atomic flag and not tried again, and the
 * operation falls back to the next method, down to writing zeroes (except
 * for fast zero requests, which fail with ENOTSUP instead).  After trim or
 * zero, the range always reads as zeroes.
 *
 * FUA: pwritev2 with RWF_DSYNC where the kernel supports it, otherwise
 * pwritev followed by fdatasync.
 *
 * A regular file never changes size under the store (docs/architecture.md,
 * "Failing stores"): if someone else truncates it, a read that meets the
 * new end of file fails with EIO rather than invent zeroes, and a write,
 * zero or trim reaching past it fails with EIO rather than extend the
 * file (or report zeroes that a read would then refuse), which is checked
 * with fstat before each write (a truncation between that check and the
 * write can still be extended over; nothing short of a lease closes that
 * window).  Both are counted, with the size
 * seen, for the daemon to report.
 *
 * Errors are the system calls' own errno values (EIO, ENOSPC, ...); writes
 * to a store opened read-only fail with EROFS.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef HAVE_LINUX_FS_H
#include <linux/fs.h>
#endif

#include "store.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define ZERO_CHUNK (64u * 1024)
#define ZERO_IOVS  16             /* 1 MiB of zeroes per system call */
#define TMP_IOVS   64             /* resumed transfers are split into these */

/* Page-aligned so that O_DIRECT writes of zeroes work. */
static const unsigned char zero_buf[ZERO_CHUNK]
  __attribute__ ((aligned (4096)));

struct file_store {
  struct store s;                 /* first: the store handle points here */
  int fd;
  bool is_blk;
  bool read_only;
  /* Methods the kernel refused; set once, never cleared. */
  atomic_bool punch_bad, zero_range_bad, alloc_bad, dsync_bad;
  _Atomic uint64_t reads, writes, flushes, trims, zeroes;
  _Atomic uint64_t short_errors, short_size;
};

static inline struct file_store *
to_file (struct store *s)
{
  return (struct file_store *) s;
}

/* Does errno say "this method is not supported here"? */
static bool
unsupported (int e)
{
  return e == EOPNOTSUPP || e == ENOTSUP || e == ENOSYS || e == ENOTTY;
}

/* One write system call; *rwf is RWF_DSYNC or 0.  If the kernel refuses
 * the flag but accepts the plain write, *rwf becomes 0 (and stays 0 for the
 * store) so that the caller syncs afterwards. */
static ssize_t
write_call (struct file_store *f, const struct iovec *v, int cnt,
            uint64_t off, int *rwf)
{
#ifdef RWF_DSYNC
  if (*rwf) {
    ssize_t r = pwritev2 (f->fd, v, cnt, (off_t) off, *rwf);

    if (r >= 0 || !(unsupported (errno) || errno == EINVAL))
      return r;
    /* EINVAL may also mean a bad O_DIRECT alignment: only a plain write
     * that succeeds proves the flag was the problem. */
    r = pwritev (f->fd, v, cnt, (off_t) off);
    if (r >= 0) {
      atomic_store (&f->dsync_bad, true);
      *rwf = 0;
    }
    return r;
  }
#endif
  return pwritev (f->fd, v, cnt, (off_t) off);
}

/* The file is shorter than the store: count it, remember the size it
 * has now, and fail with EIO. */
static int
shrunk (struct file_store *f)
{
  struct stat sb;

  if (fstat (f->fd, &sb) == 0)
    atomic_store_explicit (&f->short_size, (uint64_t) sb.st_size,
                           memory_order_relaxed);
  atomic_fetch_add_explicit (&f->short_errors, 1, memory_order_relaxed);
  errno = EIO;
  return -1;
}

/* Would writing up to end extend the regular file?  Then fail (EIO). */
static int
check_size (struct file_store *f, uint64_t end)
{
  struct stat sb;

  if (f->is_blk)
    return 0;
  if (fstat (f->fd, &sb) == -1)
    return -1;
  if ((uint64_t) sb.st_size < end)
    return shrunk (f);
  return 0;
}

/* Transfer the whole iovec array at off, resuming after short transfers
 * and EINTR.  End of file inside the store's range means the file shrank
 * under us: EIO, for a read as for a write. */
static int
rw_all (struct file_store *f, bool write, const struct iovec *iov,
        int iovcnt, uint64_t off, int *rwf)
{
  struct iovec tmp[TMP_IOVS];
  size_t skip = 0;                /* bytes of iov[0] already done */

  if (write && check_size (f, off + store_iov_len (iov, iovcnt)) == -1)
    return -1;

  for (;;) {
    const struct iovec *v = iov;
    int cnt;
    ssize_t r;

    while (iovcnt > 0 && iov[0].iov_len == skip) {
      iov++;
      iovcnt--;
      skip = 0;
    }
    if (iovcnt == 0)
      return 0;
    cnt = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
    if (skip) {
      /* Resume inside iov[0]: describe the rest in a small local array. */
      cnt = cnt < TMP_IOVS ? cnt : TMP_IOVS;
      tmp[0].iov_base = (char *) iov[0].iov_base + skip;
      tmp[0].iov_len = iov[0].iov_len - skip;
      memcpy (&tmp[1], &iov[1], (size_t) (cnt - 1) * sizeof tmp[0]);
      v = tmp;
    }
    r = write ? write_call (f, v, cnt, off, rwf)
              : preadv (f->fd, v, cnt, (off_t) off);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      if (write) {
        errno = EIO;
        return -1;
      }
      return shrunk (f);
    }
    off += (uint64_t) r;
    while (r > 0) {
      size_t k = iov[0].iov_len - skip;

      if ((size_t) r < k) {
        skip += (size_t) r;
        break;
      }
      r -= (ssize_t) k;
      iov++;
      iovcnt--;
      skip = 0;
    }
  }
}

static int
file_pread (struct store *s, const struct iovec *iov, int iovcnt,
            uint64_t offset)
{
  struct file_store *f = to_file (s);
  int rwf = 0;

  atomic_fetch_add_explicit (&f->reads, 1, memory_order_relaxed);
  return rw_all (f, false, iov, iovcnt, offset, &rwf);
}

static int
file_pwrite (struct store *s, const struct iovec *iov, int iovcnt,
             uint64_t offset, unsigned flags)
{
  struct file_store *f = to_file (s);
  bool fua = flags & STORE_FUA;
  int rwf = 0;

  if (f->read_only) {
    errno = EROFS;
    return -1;
  }
  atomic_fetch_add_explicit (&f->writes, 1, memory_order_relaxed);
#ifdef RWF_DSYNC
  if (fua && !atomic_load_explicit (&f->dsync_bad, memory_order_relaxed))
    rwf = RWF_DSYNC;
#endif
  if (rw_all (f, true, iov, iovcnt, offset, &rwf) == -1)
    return -1;
  if (fua && rwf == 0 && fdatasync (f->fd) == -1)
    return -1;
  return 0;
}

static int
file_flush (struct store *s)
{
  struct file_store *f = to_file (s);

  atomic_fetch_add_explicit (&f->flushes, 1, memory_order_relaxed);
  return fdatasync (f->fd);
}

/* Try fallocate(mode); 1 done, 0 not supported (remembered in *bad), -1
 * failed with errno. */
static int
try_fallocate (struct file_store *f, atomic_bool *bad, int mode,
               uint64_t offset, uint64_t len)
{
#ifdef HAVE_FALLOCATE
  if (atomic_load_explicit (bad, memory_order_relaxed))
    return 0;
  for (;;) {
    if (fallocate (f->fd, mode, (off_t) offset, (off_t) len) == 0)
      return 1;
    if (errno == EINTR)
      continue;
    if (unsupported (errno)) {
      atomic_store (bad, true);
      return 0;
    }
    return -1;
  }
#else
  return 0;
#endif
}

static int
punch (struct file_store *f, uint64_t offset, uint64_t len)
{
#if defined (FALLOC_FL_PUNCH_HOLE) && defined (FALLOC_FL_KEEP_SIZE)
  return try_fallocate (f, &f->punch_bad,
                        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        offset, len);
#else
  return 0;
#endif
}

static int
zero_range (struct file_store *f, uint64_t offset, uint64_t len)
{
#if defined (FALLOC_FL_ZERO_RANGE) && defined (FALLOC_FL_KEEP_SIZE)
  return try_fallocate (f, &f->zero_range_bad,
                        FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                        offset, len);
#else
  return 0;
#endif
}

/* Write zeroes the slow way, 1 MiB per system call. */
static int
write_zeroes (struct file_store *f, uint64_t offset, uint64_t len)
{
  struct iovec iov[ZERO_IOVS];
  int rwf = 0;

  while (len > 0) {
    int cnt = 0;
    uint64_t chunk = 0;

    while (cnt < ZERO_IOVS && chunk < len) {
      uint64_t k = len - chunk < ZERO_CHUNK ? len - chunk : ZERO_CHUNK;

      iov[cnt].iov_base = (void *) zero_buf;
      iov[cnt].iov_len = (size_t) k;
      cnt++;
      chunk += k;
    }
    if (rw_all (f, true, iov, cnt, offset, &rwf) == -1)
      return -1;
    offset += chunk;
    len -= chunk;
  }
  return 0;
}

static int
file_trim (struct store *s, uint64_t offset, uint64_t len)
{
  struct file_store *f = to_file (s);
  int r;

  if (f->read_only) {
    errno = EROFS;
    return -1;
  }
  if (check_size (f, offset + len) == -1)
    return -1;
  atomic_fetch_add_explicit (&f->trims, 1, memory_order_relaxed);
  if ((r = punch (f, offset, len)) != 0)
    return r == 1 ? 0 : -1;
  /* Cannot deallocate: at least honour "reads as zeroes afterwards". */
  if ((r = zero_range (f, offset, len)) != 0)
    return r == 1 ? 0 : -1;
  return write_zeroes (f, offset, len);
}

static int
file_zero (struct store *s, uint64_t offset, uint64_t len, unsigned flags)
{
  struct file_store *f = to_file (s);
  int r;

  if (f->read_only) {
    errno = EROFS;
    return -1;
  }
  if (check_size (f, offset + len) == -1)
    return -1;
  atomic_fetch_add_explicit (&f->zeroes, 1, memory_order_relaxed);
  if (flags & STORE_MAY_TRIM) {
    if ((r = punch (f, offset, len)) != 0)
      return r == 1 ? 0 : -1;
  }
  /* On a block device the kernel may emulate ZERO_RANGE by writing zeroes
   * itself, which is only fast if the device can offload it. */
  if (!f->is_blk || (s->caps & STORE_CAP_FAST_ZERO)) {
    if ((r = zero_range (f, offset, len)) != 0)
      return r == 1 ? 0 : -1;
  }
  /* Punch a hole and allocate it again: zeroes, and still provisioned. */
  if (!f->is_blk
      && !atomic_load_explicit (&f->alloc_bad, memory_order_relaxed)) {
    if ((r = punch (f, offset, len)) != 0) {
      if (r == -1)
        return -1;
#ifdef FALLOC_FL_KEEP_SIZE
      r = try_fallocate (f, &f->alloc_bad, FALLOC_FL_KEEP_SIZE, offset, len);
#endif
      /* Zeroes either way; if allocating failed (even ENOSPC) the range
       * is a hole, which is what a later write would meet anyway. */
      return 0;
    }
  }
  if (flags & STORE_FAST_ZERO) {
    errno = ENOTSUP;
    return -1;
  }
  return write_zeroes (f, offset, len);
}

static int
file_extent (struct store *s, uint64_t offset, uint64_t len,
             uint64_t *ext_len, bool *allocated)
{
  struct file_store *f = to_file (s);
  uint64_t end = offset + len;
  off_t d, h;

  *ext_len = len;
  *allocated = true;
  if (!(s->caps & STORE_CAP_EXTENTS))
    return 0;
  d = lseek (f->fd, (off_t) offset, SEEK_DATA);
  if (d == -1) {
    if (errno == ENXIO) {         /* no data from here to end of file */
      *allocated = false;
      return 0;
    }
    return 0;                     /* cannot tell: call it data */
  }
  if ((uint64_t) d > offset) {
    *allocated = false;
    *ext_len = ((uint64_t) d < end ? (uint64_t) d : end) - offset;
    return 0;
  }
  h = lseek (f->fd, (off_t) offset, SEEK_HOLE);
  if (h != -1 && (uint64_t) h > offset && (uint64_t) h < end)
    *ext_len = (uint64_t) h - offset;
  return 0;
}

static void
file_stats (struct store *s, struct store_stats *st)
{
  struct file_store *f = to_file (s);
  struct stat sb;

  st->bytes_allocated = s->size;
  if (!f->is_blk && fstat (f->fd, &sb) == 0)
    st->bytes_allocated = (uint64_t) sb.st_blocks * 512;
  st->reads = atomic_load (&f->reads);
  st->writes = atomic_load (&f->writes);
  st->flushes = atomic_load (&f->flushes);
  st->trims = atomic_load (&f->trims);
  st->zeroes = atomic_load (&f->zeroes);
  st->short_file_errors = atomic_load (&f->short_errors);
  st->short_file_size = atomic_load (&f->short_size);
}

static void
file_close (struct store *s)
{
  struct file_store *f = to_file (s);

  /* The daemon flushes before closing; this is a second line of defence
   * and cheap when there is nothing to write. */
  if (!f->read_only)
    fdatasync (f->fd);
  close (f->fd);
  free (f);
}

static const struct store_ops file_ops = {
  .name = "file",
  .pread = file_pread,
  .pwrite = file_pwrite,
  .flush = file_flush,
  .trim = file_trim,
  .zero = file_zero,
  .extent = file_extent,
  .stats = file_stats,
  .close = file_close,
};

/* Can the block device offload zeroing (and so punch holes)?  A partition
 * has no queue directory of its own; its disk's is one level up. */
static bool
blk_can_write_zeroes (dev_t rdev)
{
  for (int i = 0; i < 2; i++) {
    char path[128];
    unsigned long long v = 0;
    FILE *fp;
    int n;

    snprintf (path, sizeof path,
              "/sys/dev/block/%u:%u/%squeue/write_zeroes_max_bytes",
              major (rdev), minor (rdev), i ? "../" : "");
    fp = fopen (path, "re");
    if (fp == NULL)
      continue;
    n = fscanf (fp, "%llu", &v);
    fclose (fp);
    return n == 1 && v > 0;
  }
  return false;
}

struct store *
store_file_open (const char *path, unsigned flags, uint64_t create_size)
{
  bool ro = flags & STORE_FILE_READ_ONLY;
  int oflags = O_CLOEXEC | (ro ? O_RDONLY : O_RDWR);
  struct file_store *f;
  struct stat sb;
  uint64_t size;
  int fd, e;

  if (path == NULL || (ro && (flags & STORE_FILE_CREATE))) {
    errno = EINVAL;
    return NULL;
  }
  if (flags & STORE_FILE_CREATE)
    oflags |= O_CREAT;
  if (flags & STORE_FILE_DIRECT)
    oflags |= O_DIRECT;
  fd = open (path, oflags, 0666);
  if (fd == -1)
    return NULL;
  if (fstat (fd, &sb) == -1)
    goto fail;

  f = calloc (1, sizeof *f);
  if (f == NULL)
    goto fail;
  f->fd = fd;
  f->read_only = ro;
  f->s.ops = &file_ops;
  f->s.caps = STORE_CAP_PERSISTENT | (ro ? STORE_CAP_READ_ONLY : 0);

  if (S_ISBLK (sb.st_mode)) {
#ifdef BLKGETSIZE64
    if (ioctl (fd, BLKGETSIZE64, &size) == -1)
      goto fail_free;
#else
    errno = ENOTSUP;
    goto fail_free;
#endif
    f->is_blk = true;
    if (!ro && blk_can_write_zeroes (sb.st_rdev))
      f->s.caps |= STORE_CAP_TRIM | STORE_CAP_FAST_ZERO;
  }
  else if (S_ISREG (sb.st_mode)) {
    size = (uint64_t) sb.st_size;
    if ((flags & STORE_FILE_CREATE) && size < create_size) {
      if (ftruncate (fd, (off_t) create_size) == -1)
        goto fail_free;
      size = create_size;
    }
    /* A hole punched past end of file changes nothing, but tells whether
     * the filesystem can punch at all. */
    if (!ro && punch (f, size, 4096) == 1)
      f->s.caps |= STORE_CAP_TRIM | STORE_CAP_FAST_ZERO;
    if (lseek (fd, 0, SEEK_DATA) != -1 || errno == ENXIO)
      f->s.caps |= STORE_CAP_EXTENTS;
  }
  else {
    errno = EINVAL;
    goto fail_free;
  }
  if (size == 0) {
    errno = EINVAL;
    goto fail_free;
  }
  f->s.size = size;
  return &f->s;

 fail_free:
  e = errno;
  free (f);
  errno = e;
 fail:
  e = errno;
  close (fd);
  errno = e;
  return NULL;
}
