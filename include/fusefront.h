/* fusefront: the FUSE front-end.  Each export is a regular file on a FUSE
 * mount (the default export is MOUNTPOINT/disk), served by the same SCSI
 * core, pools and cache as the NBD front-end, so both may serve one unit
 * at once and see the same data.  (The prefix is fuse_front_ so as not to
 * tread on libfuse's own fuse_ names.) */
#ifndef SGBLK_FUSEFRONT_H
#define SGBLK_FUSEFRONT_H

#include <stdbool.h>

#include "nbd.h"        /* struct nbd_export: the unit, its pools, read-only */

struct fuse_front;

/* libfuse worker threads of a mount: requests on the file run on at
 * most this many at once. */
#define FUSE_FRONT_THREADS 16

/* Mount 'mountpoint' and serve 'exp' as a file there, with 'threads'
 * threads.  NULL with errno; a stale mount left by a daemon that died
 * fails with ENOTCONN (the caller says how to clear it). */
struct fuse_front *fuse_front_start (const char *mountpoint, struct nbd_export *exp,
                                     unsigned threads, const char *extra_opts);
/* Make libfuse start all its workers now rather than under load (swap
 * mode: a thread started later maps and locks a stack while the machine
 * swaps), each readied for I/O (blkio_thread_prepare).  Returns how many
 * there are, or -1 with errno if not all could be started. */
int fuse_front_start_workers (struct fuse_front *ff);
/* Take the file away from new opens (open, stat and the directory no
 * longer find it) while those already open go on; returns how many are
 * still open, so that the caller stops the mount once none is.  Idempotent. */
unsigned fuse_front_retire (struct fuse_front *ff);
/* Finish the requests in flight and unmount.  Idempotent. */
void fuse_front_stop (struct fuse_front *ff);

#endif
