/* fuse-floor: the least a FUSE server can do for a disk file, as a
 * reference for the swap benchmark (fuse-swap.sh).
 *
 *   fuse-floor MOUNTPOINT SIZE_MIB
 *
 * One file, "disk", of SIZE_MIB MiB of plain memory, mapped and locked
 * at start (so that it is never swapped out onto itself); libfuse's
 * low-level API and its multithreaded loop, direct_io like sgblkd's
 * file.  A read replies straight from that memory and a write copies
 * into it: no compression, no command or vector, no lock.  What a swap
 * run costs over this file is therefore what the loop device and FUSE
 * cost, which no server behind them can take back; sgblkd's time over
 * the floor's is what it adds.  It serves until unmounted.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define ROOT_INO 1
#define DISK_INO 2

static char *mem;
static size_t size;

static void
attr_of (fuse_ino_t ino, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  if (ino == ROOT_INO) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  }
  else {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = (off_t) size;
  }
}

static void
floor_init (void *userdata, struct fuse_conn_info *conn)
{
  (void) userdata;
  conn->max_write = 1u << 20;
  conn->max_read = 1u << 20;
}

static void
floor_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct fuse_entry_param e = { .ino = DISK_INO };

  if (parent != ROOT_INO || strcmp (name, "disk") != 0) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  attr_of (DISK_INO, &e.attr);
  fuse_reply_entry (req, &e);
}

static void
floor_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct stat st;

  (void) fi;
  attr_of (ino, &st);
  fuse_reply_attr (req, &st, 0);
}

static void
floor_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  fi->direct_io = 1;
  fuse_reply_open (req, fi);
}

static void
floor_read (fuse_req_t req, fuse_ino_t ino, size_t len, off_t off,
            struct fuse_file_info *fi)
{
  (void) ino;
  (void) fi;
  if ((size_t) off >= size)
    len = 0;
  else if (len > size - (size_t) off)
    len = size - (size_t) off;
  fuse_reply_buf (req, mem + off, len);
}

static void
floor_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t len,
             off_t off, struct fuse_file_info *fi)
{
  (void) ino;
  (void) fi;
  if ((size_t) off > size || len > size - (size_t) off) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  memcpy (mem + off, buf, len);
  fuse_reply_write (req, len);
}

static void
floor_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
  (void) ino;
  (void) datasync;
  (void) fi;
  fuse_reply_err (req, 0);
}

/* blkdiscard and mkswap's discard: the range reads as zeroes after. */
static void
floor_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                 struct fuse_file_info *fi)
{
  (void) ino;
  (void) mode;
  (void) fi;
  if (off < 0 || len < 0 || (size_t) off > size || (size_t) len > size - (size_t) off) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  memset (mem + off, 0, (size_t) len);
  fuse_reply_err (req, 0);
}

static const struct fuse_lowlevel_ops ops = {
  .init = floor_init,
  .lookup = floor_lookup,
  .getattr = floor_getattr,
  .open = floor_open,
  .read = floor_read,
  .write = floor_write,
  .fsync = floor_fsync,
  .fallocate = floor_fallocate,
};

int
main (int argc, char **argv)
{
  char *fargv[] = { argv[0], (char *) "-o", (char *) "fsname=fuse-floor,max_read=1048576", NULL };
  struct fuse_args args = FUSE_ARGS_INIT (3, fargv);
  struct fuse_session *se;
  struct fuse_loop_config *lc;
  int r;

  if (argc != 3 || atol (argv[2]) <= 0) {
    fprintf (stderr, "usage: fuse-floor MOUNTPOINT SIZE_MIB\n");
    return 2;
  }
  size = (size_t) atol (argv[2]) << 20;
  mem = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror ("fuse-floor: mmap");
    return 1;
  }
  if (mlockall (MCL_CURRENT | MCL_FUTURE) == -1) {
    perror ("fuse-floor: mlockall");
    return 1;
  }
  se = fuse_session_new (&args, &ops, sizeof ops, NULL);
  if (se == NULL || fuse_session_mount (se, argv[1]) != 0) {
    fprintf (stderr, "fuse-floor: cannot mount on %s\n", argv[1]);
    return 1;
  }
  lc = fuse_loop_cfg_create ();
  fuse_loop_cfg_set_max_threads (lc, 16);
  fuse_loop_cfg_set_idle_threads (lc, 16);
  r = fuse_session_loop_mt (se, lc);
  fuse_loop_cfg_destroy (lc);
  fuse_session_unmount (se);
  fuse_session_destroy (se);
  return r == 0 ? 0 : 1;
}
