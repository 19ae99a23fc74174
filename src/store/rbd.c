/* RBD store: a Ceph RBD image through librbd's asynchronous API.
 *
 * FILE is qemu's syntax, rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]...,
 * with KEY conf (the ceph.conf to read), id (the client name without
 * "client."), keyring, or any Ceph option, set as if in the conf file.
 * A backslash takes the next character literally (\: in a path).
 *
 * Requests: each operation is one librbd aio request (librbd splits it
 * over the image's objects and sends those in parallel).  A synchronous
 * call (pread, pwrite, flush...) waits for its completion with a
 * deadline of the store timeout; the cache's write-back sends its
 * batches (store_pwrite_batch) all at once.  Reads and plain writes also
 * come asynchronously (store_submit, the SCSI core's path for a unit
 * without the cache): those return at once, any number in flight, and
 * librbd's completion thread reports them; they are kept in a list,
 * oldest first, that a watchdog thread walks to fail with EIO those past
 * their deadline.  A read's data goes through a bounce buffer that the
 * request owns, never the caller's iovec, because a request may outlive
 * its caller (librbd fills the buffer when the cluster answers, which
 * may be after the deadline).  A write needs none where librbd copies
 * the caller's data before rbd_aio_write(v) returns: with
 * rbd_disable_zero_copy_writes, librbd's default, checked on the open
 * image (copies_writes); otherwise writes are bounced too.  (The copy
 * saved was a tenth of the daemon's CPU on 1 MiB writes.)  The ownership
 * invariant is that a struct rbd_req (its
 * completion and buffer) belongs to the waiting caller (or, for an
 * asynchronous one, to the list) until either the completion arrived
 * (then the caller, or the callback, frees it) or the deadline passed
 * (the caller or the watchdog marks it abandoned under the store's lock
 * and reports EIO; the completion callback, seeing that, frees it).
 * Whoever changes a request's state from PENDING does so under the lock,
 * once, so its submitter hears exactly one answer.  An abandoned write
 * may still land later, when the cluster answers again; the client was
 * told it failed, so its blocks hold old or new data, as after any
 * failed write.  Writes the caller saw succeed stay: librbd and the OSDs
 * order requests to one object in the order they were sent.
 *
 * Exclusive ownership: a writable image is opened with its exclusive
 * lock taken explicitly (the exclusive-lock feature); an explicitly
 * taken lock is not handed over when another client asks for it, so a
 * second writer is refused while this store lives.  A read-only open (a
 * snapshot, or --read-only) takes no lock.
 *
 * Extents come from rbd_diff_iterate2 over a window of at most
 * EXTENT_WINDOW bytes (without the fast-diff feature librbd looks at
 * each object, so an unbounded query over a large image would be slow).
 *
 * FUA is a write followed by a flush: librbd has no per-write FUA, and
 * its flush makes every earlier write durable on the OSDs.  Trim and
 * zero are both write_zeroes: librbd's discard may skip partial objects
 * (rbd_skip_partial_discard), which would break "reads as zeroes after
 * trim"; write_zeroes deallocates whole objects and zeroes the rest.
 *
 * librbd's own cache is off (rbd_cache=false, unless FILE sets it): a
 * write the store acknowledges has reached the OSDs' journal, as with
 * --cache-mode writethrough it must, and the daemon's cache in front
 * needs no second one.  With STORE_RBD_LIBRBD_CACHE (--cache-mode off)
 * it is as the Ceph configuration says, as for any librbd client: the
 * unit then reports a volatile cache (WCE), clients flush, and a flush
 * or FUA is rbd_aio_flush, which writes librbd's cache back first.
 *
 * Errors: librbd's negative errno values become ENOSPC (a full pool),
 * EROFS (writing a read-only image), or EIO; a deadline passed is EIO.
 */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define SPEC_MAX_KV 16

/* The parsed FILE; every string points into buf. */
struct rbd_spec {
  char *buf;
  const char *pool, *ns, *image, *snap, *conf, *id, *keyring;
  const char *key[SPEC_MAX_KV], *val[SPEC_MAX_KV];
  int nkv;
};

bool
store_rbd_is_spec (const char *file)
{
  return file != NULL && strncmp (file, "rbd:", 4) == 0;
}

/* Cut the next token off *p at any of the stop characters, removing
 * backslash escapes in place; returns its start and sets *stop to the
 * character that ended it (0 at the end). */
static char *
next_token (char **p, const char *stops, char *stop)
{
  char *start = *p, *out = *p, *in = *p;

  while (*in && !strchr (stops, *in)) {
    if (*in == '\\' && in[1])
      in++;
    *out++ = *in++;
  }
  *stop = *in;
  *p = *in ? in + 1 : in;
  *out = '\0';
  return start;
}

static void
spec_free (struct rbd_spec *sp)
{
  free (sp->buf);
  sp->buf = NULL;
}

/* 0, or -1 with EINVAL (why says what is wrong) or ENOMEM. */
static int
spec_parse (const char *file, struct rbd_spec *sp, const char **why)
{
  char *p, stop;
  const char *parts[3];
  int n = 0;

  memset (sp, 0, sizeof *sp);
  *why = "expected rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH]";
  if (!store_rbd_is_spec (file)) {
    errno = EINVAL;
    return -1;
  }
  sp->buf = strdup (file + 4);
  if (sp->buf == NULL)
    return -1;
  p = sp->buf;
  /* POOL[/NS]/IMAGE, up to '@' or ':'. */
  do {
    parts[n++] = next_token (&p, "/@:", &stop);
  } while (stop == '/' && n < 3);
  if (stop == '/' || n < 2)
    goto bad;
  for (int i = 0; i < n; i++)
    if (*parts[i] == '\0')
      goto bad;
  sp->pool = parts[0];
  sp->ns = n == 3 ? parts[1] : NULL;
  sp->image = parts[n - 1];
  if (stop == '@') {
    sp->snap = next_token (&p, ":", &stop);
    if (*sp->snap == '\0')
      goto bad;
  }
  while (stop == ':') {
    char *k = next_token (&p, "=:", &stop);
    if (stop != '=' || *k == '\0') {
      *why = "expected KEY=VALUE after ':' (conf=PATH, id=NAME, keyring=PATH or a Ceph option)";
      goto bad;
    }
    char *v = next_token (&p, ":", &stop);
    if (strcmp (k, "conf") == 0)
      sp->conf = v;
    else if (strcmp (k, "id") == 0)
      sp->id = v;
    else if (strcmp (k, "keyring") == 0)
      sp->keyring = v;
    else if (sp->nkv == SPEC_MAX_KV) {
      *why = "more than 16 Ceph options";
      goto bad;
    }
    else {
      sp->key[sp->nkv] = k;
      sp->val[sp->nkv++] = v;
    }
  }
  return 0;

bad:
  spec_free (sp);
  errno = EINVAL;
  return -1;
}

#ifndef HAVE_RBD

struct store *
store_rbd_open (const char *file, unsigned flags, unsigned timeout,
                char *why, size_t whylen)
{
  struct rbd_spec sp;
  const char *w;

  (void) flags; (void) timeout;
  if (spec_parse (file, &sp, &w) == -1) {
    snprintf (why, whylen, "%s", w);
    return NULL;
  }
  spec_free (&sp);
  snprintf (why, whylen, "this sgblkd was built without RBD support "
            "(install librbd-dev and configure --with-rbd)");
  errno = ENOTSUP;
  return NULL;
}

uint64_t
store_rbd_timeouts (struct store *s)
{
  (void) s;
  return 0;
}

uint64_t
store_rbd_closes_abandoned (void)
{
  return 0;
}

#else /* HAVE_RBD */

#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

/* librados and librbd are loaded (dlopen) when the first rbd: FILE is
 * opened, not linked: linked, their code (libceph-common with them, some
 * 170 MB) would be mapped into every daemon, and under --swap, which
 * locks every mapping, resident in every daemon that never serves an
 * image.  Each function used is reached through a pointer, p_NAME; the
 * names below it are macros for those pointers.  (X's first argument:
 * 0, librados's; 1, librbd's.) */
#define RBD_LIB_FUNCTIONS(X) \
  X (0, rados_create) \
  X (0, rados_conf_read_file) \
  X (0, rados_conf_set) \
  X (0, rados_conf_get) \
  X (0, rados_connect) \
  X (0, rados_ioctx_create) \
  X (0, rados_ioctx_destroy) \
  X (0, rados_ioctx_set_namespace) \
  X (0, rados_shutdown) \
  X (1, rbd_open) \
  X (1, rbd_open_read_only) \
  X (1, rbd_close) \
  X (1, rbd_get_size) \
  X (1, rbd_get_features) \
  X (1, rbd_lock_acquire) \
  X (1, rbd_lock_get_owners) \
  X (1, rbd_lock_get_owners_cleanup) \
  X (1, rbd_diff_iterate2) \
  X (1, rbd_aio_create_completion) \
  X (1, rbd_aio_get_return_value) \
  X (1, rbd_aio_release) \
  X (1, rbd_aio_read) \
  X (1, rbd_aio_write) \
  X (1, rbd_aio_writev) \
  X (1, rbd_config_image_list) \
  X (1, rbd_config_image_list_cleanup) \
  X (1, rbd_aio_write_zeroes) \
  X (1, rbd_aio_flush)
#define RBD_LIB_POINTER(lib, f) static __typeof__ (f) *p_##f;
RBD_LIB_FUNCTIONS (RBD_LIB_POINTER)

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[256];

static void
lib_load (void)
{
  void *h[2];

  h[0] = dlopen ("librados.so.2", RTLD_NOW | RTLD_LOCAL);
  h[1] = h[0] ? dlopen ("librbd.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;
  if (h[1] == NULL) {
    snprintf (lib_error, sizeof lib_error, "cannot load librbd: %s", dlerror ());
    return;
  }
#define RBD_LIB_RESOLVE(lib, f)                                         \
  if ((p_##f = (__typeof__ (p_##f)) dlsym (h[lib], #f)) == NULL) {      \
    snprintf (lib_error, sizeof lib_error, "cannot load librbd: %s", dlerror ()); \
    return;                                                             \
  }
  RBD_LIB_FUNCTIONS (RBD_LIB_RESOLVE)
#undef RBD_LIB_RESOLVE
}

/* 0 once every function is there; -1 with the reason in why. */
static int
lib_ready (char *why, size_t whylen)
{
  pthread_once (&lib_once, lib_load);
  if (lib_error[0] == '\0')
    return 0;
  snprintf (why, whylen, "%s", lib_error);
  errno = ENOSYS;
  return -1;
}

/* From here on, the library's names are its pointers. */
#define rados_create (*p_rados_create)
#define rados_conf_read_file (*p_rados_conf_read_file)
#define rados_conf_set (*p_rados_conf_set)
#define rados_conf_get (*p_rados_conf_get)
#define rados_connect (*p_rados_connect)
#define rados_ioctx_create (*p_rados_ioctx_create)
#define rados_ioctx_destroy (*p_rados_ioctx_destroy)
#define rados_ioctx_set_namespace (*p_rados_ioctx_set_namespace)
#define rados_shutdown (*p_rados_shutdown)
#define rbd_open (*p_rbd_open)
#define rbd_open_read_only (*p_rbd_open_read_only)
#define rbd_close (*p_rbd_close)
#define rbd_get_size (*p_rbd_get_size)
#define rbd_get_features (*p_rbd_get_features)
#define rbd_lock_acquire (*p_rbd_lock_acquire)
#define rbd_lock_get_owners (*p_rbd_lock_get_owners)
#define rbd_lock_get_owners_cleanup (*p_rbd_lock_get_owners_cleanup)
#define rbd_diff_iterate2 (*p_rbd_diff_iterate2)
#define rbd_aio_create_completion (*p_rbd_aio_create_completion)
#define rbd_aio_get_return_value (*p_rbd_aio_get_return_value)
#define rbd_aio_release (*p_rbd_aio_release)
#define rbd_aio_read (*p_rbd_aio_read)
#define rbd_aio_write (*p_rbd_aio_write)
#define rbd_aio_writev (*p_rbd_aio_writev)
#define rbd_config_image_list (*p_rbd_config_image_list)
#define rbd_config_image_list_cleanup (*p_rbd_config_image_list_cleanup)
#define rbd_aio_write_zeroes (*p_rbd_aio_write_zeroes)
#define rbd_aio_flush (*p_rbd_aio_flush)

#define EXTENT_WINDOW (UINT64_C (128) << 20)

struct rbd_store {
  struct store s;                 /* first: the store handle points here */
  rados_t cluster;
  rados_ioctx_t io;
  rbd_image_t image;
  bool read_only;
  bool librbd_cache;              /* rbd_cache as configured */
  bool copies_writes;             /* librbd copies a write's data at submit */
  unsigned timeout;               /* seconds a request may take */
  pthread_mutex_t lock;           /* guards every rbd_req's state, the list */
  /* The asynchronous requests pending, oldest (first deadline) first.
   * The watchdog sleeps until the first one's deadline, or with none
   * pending for one timeout: a request added meanwhile has a later
   * deadline, so nobody wakes it (a wake-up per request cost a context
   * switch each); wd_cond only tells it to exit. */
  struct rbd_req *aio_head, *aio_tail;
  pthread_cond_t wd_cond;
  pthread_t watchdog;
  bool wd_exit;
  _Atomic uint64_t reads, writes, flushes, trims, zeroes, timeouts;
};

enum req_state {
  REQ_PENDING,                    /* submitted, nobody answered yet */
  REQ_DONE,                       /* completed; the waiter takes the result */
  REQ_ABANDONED,                  /* past its deadline, answered EIO: the
                                   * completion callback frees it */
};

struct rbd_req {
  struct rbd_store *r;
  rbd_completion_t c;
  pthread_cond_t done;
  enum req_state state;           /* under r->lock */
  ssize_t ret;
  char *buf;                      /* bounce buffer, or NULL */
  /* An asynchronous request: its submitter's struct, and its place in
   * the store's list (under r->lock). */
  struct store_aio *aio;
  size_t len;
  struct timespec deadline;
  struct rbd_req *prev, *next;
};

static inline struct rbd_store *
to_rbd (struct store *s)
{
  return (struct rbd_store *) s;
}

static void
req_free (struct rbd_req *q)
{
  rbd_aio_release (q->c);
  pthread_cond_destroy (&q->done);
  free (q->buf);
  free (q);
}

static void
aio_unlink (struct rbd_store *r, struct rbd_req *q)
{
  if (q->prev)
    q->prev->next = q->next;
  else
    r->aio_head = q->next;
  if (q->next)
    q->next->prev = q->prev;
  else
    r->aio_tail = q->prev;
  q->prev = q->next = NULL;
}

static int map_error (ssize_t ret);

/* An asynchronous request answered by the cluster: hand its data over
 * and its result to the submitter, then free it. */
static void
aio_finish (struct rbd_req *q)
{
  struct store_aio *a = q->aio;
  int err = 0;

  if (q->ret < 0)
    err = map_error (q->ret);
  else if (a->op == STORE_AIO_READ) {
    if ((size_t) q->ret != q->len)    /* the image shrank under us */
      err = EIO;
    else
      for (size_t i = 0, done = 0; i < (size_t) a->iovcnt; i++) {
        memcpy (a->iov[i].iov_base, q->buf + done, a->iov[i].iov_len);
        done += a->iov[i].iov_len;
      }
  }
  req_free (q);
  a->done (a, err);
}

/* librbd's completion thread: wake the caller, answer an asynchronous
 * request's submitter, or free what a deadline left. */
static void
req_complete (rbd_completion_t c, void *arg)
{
  struct rbd_req *q = arg;
  struct rbd_store *r = q->r;

  pthread_mutex_lock (&r->lock);
  q->ret = rbd_aio_get_return_value (c);
  if (q->state == REQ_ABANDONED) {
    pthread_mutex_unlock (&r->lock);
    req_free (q);
    return;
  }
  q->state = REQ_DONE;
  if (q->aio) {
    aio_unlink (r, q);
    pthread_mutex_unlock (&r->lock);
    aio_finish (q);
    return;
  }
  pthread_cond_signal (&q->done);
  pthread_mutex_unlock (&r->lock);
}

static struct rbd_req *
req_new (struct rbd_store *r, size_t buflen)
{
  struct rbd_req *q = calloc (1, sizeof *q);
  pthread_condattr_t ca;

  if (q == NULL)
    return NULL;
  q->r = r;
  if (buflen && (q->buf = malloc (buflen)) == NULL) {
    free (q);
    return NULL;
  }
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&q->done, &ca);
  pthread_condattr_destroy (&ca);
  if (rbd_aio_create_completion (q, req_complete, &q->c) < 0) {
    pthread_cond_destroy (&q->done);
    free (q->buf);
    free (q);
    errno = ENOMEM;
    return NULL;
  }
  return q;
}

/* librbd's error to the store's: ENOSPC, EROFS or EIO. */
static int
map_error (ssize_t ret)
{
  int e = ret < 0 ? (int) -ret : EIO;
  return e == ENOSPC || e == EDQUOT ? ENOSPC : e == EROFS ? EROFS : EIO;
}

static void
deadline (const struct rbd_store *r, struct timespec *dl)
{
  clock_gettime (CLOCK_MONOTONIC, dl);
  dl->tv_sec += r->timeout;
}

/* Wait for q, submitted with submit's result sub (a librbd return
 * value), until the deadline dl (NULL: the store's timeout from now).
 * Returns librbd's result (>= 0), or -1 with errno; frees q unless it
 * is left to the callback. */
static ssize_t
req_wait (struct rbd_req *q, int sub, char **buf, const struct timespec *dl)
{
  struct rbd_store *r = q->r;
  struct timespec now_dl;
  ssize_t ret;

  if (sub < 0) {                  /* never submitted: no callback comes */
    req_free (q);
    errno = map_error (sub);
    return -1;
  }
  if (dl == NULL) {
    deadline (r, &now_dl);
    dl = &now_dl;
  }
  pthread_mutex_lock (&r->lock);
  while (q->state == REQ_PENDING)
    if (pthread_cond_timedwait (&q->done, &r->lock, dl) == ETIMEDOUT &&
        q->state == REQ_PENDING) {
      q->state = REQ_ABANDONED;   /* from now on the callback's */
      pthread_mutex_unlock (&r->lock);
      atomic_fetch_add_explicit (&r->timeouts, 1, memory_order_relaxed);
      errno = EIO;
      return -1;
    }
  pthread_mutex_unlock (&r->lock);
  ret = q->ret;
  if (buf) {                      /* the caller takes the buffer over */
    *buf = q->buf;
    q->buf = NULL;
  }
  req_free (q);
  if (ret < 0) {
    errno = map_error (ret);
    return -1;
  }
  return ret;
}

static int
rbd_store_pread (struct store *s, const struct iovec *iov, int iovcnt,
                 uint64_t offset)
{
  struct rbd_store *r = to_rbd (s);
  size_t len = (size_t) store_iov_len (iov, iovcnt), done = 0;
  struct rbd_req *q;
  char *buf;
  ssize_t ret;

  atomic_fetch_add_explicit (&r->reads, 1, memory_order_relaxed);
  if (len == 0)
    return 0;
  if ((q = req_new (r, len)) == NULL)
    return -1;
  ret = req_wait (q, rbd_aio_read (r->image, offset, len, q->buf, q->c), &buf, NULL);
  if (ret < 0)
    return -1;
  if ((size_t) ret != len) {      /* the image shrank under us */
    free (buf);
    errno = EIO;
    return -1;
  }
  for (int i = 0; i < iovcnt; i++) {
    memcpy (iov[i].iov_base, buf + done, iov[i].iov_len);
    done += iov[i].iov_len;
  }
  free (buf);
  return 0;
}

static int
rbd_store_flush (struct store *s)
{
  struct rbd_store *r = to_rbd (s);
  struct rbd_req *q;

  atomic_fetch_add_explicit (&r->flushes, 1, memory_order_relaxed);
  if (r->read_only)
    return 0;
  if ((q = req_new (r, 0)) == NULL)
    return -1;
  return req_wait (q, rbd_aio_flush (r->image, q->c), NULL, NULL) < 0 ? -1 : 0;
}

static int
rbd_store_pwrite (struct store *s, const struct iovec *iov, int iovcnt,
                  uint64_t offset, unsigned flags)
{
  struct rbd_store *r = to_rbd (s);
  size_t len = (size_t) store_iov_len (iov, iovcnt), done = 0;
  struct rbd_req *q;
  int sub;

  if (r->read_only) {
    errno = EROFS;
    return -1;
  }
  atomic_fetch_add_explicit (&r->writes, 1, memory_order_relaxed);
  if (len > 0) {
    if ((q = req_new (r, r->copies_writes ? 0 : len)) == NULL)
      return -1;
    if (r->copies_writes)
      sub = rbd_aio_writev (r->image, iov, iovcnt, offset, q->c);
    else {
      for (int i = 0; i < iovcnt; i++) {
        memcpy (q->buf + done, iov[i].iov_base, iov[i].iov_len);
        done += iov[i].iov_len;
      }
      sub = rbd_aio_write (r->image, offset, len, q->buf, q->c);
    }
    /* (A write's completion value is 0, not the length.) */
    if (req_wait (q, sub, NULL, NULL) < 0)
      return -1;
  }
  return (flags & STORE_FUA) ? rbd_store_flush (s) : 0;
}

/* The cache's write-back: every write in flight at once, one deadline
 * for them all, then one flush for FUA. */
static void
rbd_store_pwrite_batch (struct store *s, const struct store_write *w, int n,
                        unsigned flags, int *res)
{
  struct rbd_store *r = to_rbd (s);
  struct rbd_req *q[STORE_BATCH_MAX];
  int sub[STORE_BATCH_MAX];
  struct timespec dl;
  bool any = false;

  for (int i = 0; i < n; i++) {
    res[i] = 0;
    q[i] = NULL;
    if (r->read_only) {
      res[i] = EROFS;
      continue;
    }
    atomic_fetch_add_explicit (&r->writes, 1, memory_order_relaxed);
    if ((q[i] = req_new (r, r->copies_writes ? 0 : w[i].len)) == NULL) {
      res[i] = errno;
      continue;
    }
    if (q[i]->buf)
      memcpy (q[i]->buf, w[i].buf, w[i].len);
    sub[i] = rbd_aio_write (r->image, w[i].offset, w[i].len,
                            q[i]->buf ? q[i]->buf : w[i].buf, q[i]->c);
  }
  deadline (r, &dl);
  for (int i = 0; i < n; i++)
    if (q[i]) {
      res[i] = req_wait (q[i], sub[i], NULL, &dl) < 0 ? errno : 0;
      any |= res[i] == 0;
    }
  if ((flags & STORE_FUA) && any && rbd_store_flush (s) == -1)
    for (int i = 0; i < n; i++)
      if (res[i] == 0)
        res[i] = errno;
}

static bool
ts_before (const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/* Fails the asynchronous requests past their deadline, oldest first,
 * as req_wait does for a synchronous one. */
static void *
watchdog (void *arg)
{
  struct rbd_store *r = arg;
  struct timespec now;

  pthread_mutex_lock (&r->lock);
  while (!r->wd_exit) {
    struct rbd_req *q = r->aio_head;
    if (q == NULL) {
      /* A request added while this sleeps has a deadline past its end. */
      deadline (r, &now);
      pthread_cond_timedwait (&r->wd_cond, &r->lock, &now);
      continue;
    }
    clock_gettime (CLOCK_MONOTONIC, &now);
    if (!ts_before (&q->deadline, &now)) {
      pthread_cond_timedwait (&r->wd_cond, &r->lock, &q->deadline);
      continue;
    }
    struct store_aio *a = q->aio;
    aio_unlink (r, q);
    q->state = REQ_ABANDONED;       /* from now on the callback's */
    pthread_mutex_unlock (&r->lock);
    atomic_fetch_add_explicit (&r->timeouts, 1, memory_order_relaxed);
    a->done (a, EIO);
    pthread_mutex_lock (&r->lock);
  }
  pthread_mutex_unlock (&r->lock);
  return NULL;
}

static void
rbd_store_submit (struct store *s, struct store_aio *a)
{
  struct rbd_store *r = to_rbd (s);
  size_t len = (size_t) store_iov_len (a->iov, a->iovcnt), done = 0;
  bool write = a->op == STORE_AIO_WRITE;
  struct rbd_req *q;
  int sub;

  if (write && r->read_only) {
    a->done (a, EROFS);
    return;
  }
  atomic_fetch_add_explicit (write ? &r->writes : &r->reads, 1, memory_order_relaxed);
  if (len == 0) {
    a->done (a, 0);
    return;
  }
  bool bounce = !write || !r->copies_writes;
  if ((q = req_new (r, bounce ? len : 0)) == NULL) {
    a->done (a, errno);
    return;
  }
  q->aio = a;
  q->len = len;
  if (write && bounce)
    for (int i = 0; i < a->iovcnt; i++) {
      memcpy (q->buf + done, a->iov[i].iov_base, a->iov[i].iov_len);
      done += a->iov[i].iov_len;
    }
  /* In the list before librbd has it: its callback may come first. */
  deadline (r, &q->deadline);
  pthread_mutex_lock (&r->lock);
  q->prev = r->aio_tail;
  if (r->aio_tail)
    r->aio_tail->next = q;
  else
    r->aio_head = q;                    /* the watchdog wakes by itself */
  r->aio_tail = q;
  pthread_mutex_unlock (&r->lock);
  if (!write)
    sub = rbd_aio_read (r->image, a->offset, len, q->buf, q->c);
  else if (bounce)
    sub = rbd_aio_write (r->image, a->offset, len, q->buf, q->c);
  else
    sub = rbd_aio_writev (r->image, a->iov, a->iovcnt, a->offset, q->c);
  if (sub >= 0)
    return;
  /* Not submitted: no callback comes; answer unless the watchdog did. */
  pthread_mutex_lock (&r->lock);
  bool answered = q->state == REQ_ABANDONED;
  if (!answered)
    aio_unlink (r, q);
  pthread_mutex_unlock (&r->lock);
  req_free (q);
  if (!answered)
    a->done (a, map_error (sub));
}

static int
zeroes (struct rbd_store *r, uint64_t offset, uint64_t len)
{
  struct rbd_req *q;

  if (r->read_only) {
    errno = EROFS;
    return -1;
  }
  if (len == 0)
    return 0;
  if ((q = req_new (r, 0)) == NULL)
    return -1;
  return req_wait (q, rbd_aio_write_zeroes (r->image, offset, (size_t) len,
                                            q->c, 0, 0), NULL, NULL) < 0 ? -1 : 0;
}

static int
rbd_store_trim (struct store *s, uint64_t offset, uint64_t len)
{
  atomic_fetch_add_explicit (&to_rbd (s)->trims, 1, memory_order_relaxed);
  return zeroes (to_rbd (s), offset, len);
}

static int
rbd_store_zero (struct store *s, uint64_t offset, uint64_t len, unsigned flags)
{
  (void) flags;                   /* write_zeroes is fast, and may deallocate */
  atomic_fetch_add_explicit (&to_rbd (s)->zeroes, 1, memory_order_relaxed);
  return zeroes (to_rbd (s), offset, len);
}

/* The data extents rbd_diff_iterate2 reports in a window, in any order. */
struct ext_list {
  struct { uint64_t off, len; } *v;
  size_t n, cap;
};

static int
ext_add (uint64_t off, size_t len, int exists, void *arg)
{
  struct ext_list *l = arg;

  if (!exists || len == 0)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    void *v = realloc (l->v, cap * sizeof l->v[0]);
    if (v == NULL)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n].off = off;
  l->v[l->n++].len = len;
  return 0;
}

static int
ext_cmp (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

static int
rbd_store_extent (struct store *s, uint64_t offset, uint64_t len,
                  uint64_t *ext_len, bool *allocated)
{
  struct rbd_store *r = to_rbd (s);
  struct ext_list l = { NULL, 0, 0 };
  uint64_t end, pos = offset;
  int ret;

  if (len > EXTENT_WINDOW)
    len = EXTENT_WINDOW;
  end = offset + len;
  ret = rbd_diff_iterate2 (r->image, NULL, offset, len, 1, 0, ext_add, &l);
  if (ret < 0) {
    free (l.v);
    errno = ret == -ENOMEM ? ENOMEM : EIO;
    return -1;
  }
  qsort (l.v, l.n, sizeof l.v[0], ext_cmp);
  /* Allocated from offset while the extents cover it without a gap. */
  for (size_t i = 0; i < l.n; i++) {
    if (l.v[i].off > pos)
      break;
    if (l.v[i].off + l.v[i].len > pos)
      pos = l.v[i].off + l.v[i].len;
  }
  if (pos > offset) {
    *allocated = true;
    *ext_len = (pos < end ? pos : end) - offset;
  }
  else {                          /* a hole up to the first extent after it */
    uint64_t next = end;
    for (size_t i = 0; i < l.n; i++)
      if (l.v[i].off > offset && l.v[i].off < next)
        next = l.v[i].off;
    *allocated = false;
    *ext_len = next - offset;
  }
  free (l.v);
  return 0;
}

static void
rbd_store_stats (struct store *s, struct store_stats *st)
{
  struct rbd_store *r = to_rbd (s);

  memset (st, 0, sizeof *st);
  st->reads = atomic_load (&r->reads);
  st->writes = atomic_load (&r->writes);
  st->flushes = atomic_load (&r->flushes);
  st->trims = atomic_load (&r->trims);
  st->zeroes = atomic_load (&r->zeroes);
}

/* Opening and closing, bounded.  librbd's open reads the image's header
 * from an OSD and its close waits for every request in flight: with the
 * OSDs silent, both wait without end, and a daemon would neither start
 * nor exit.  So each runs in a thread of its own, and the caller waits
 * for it up to a deadline.  Past it the caller goes on without it (an
 * open fails with ETIMEDOUT; a close is counted as abandoned), and the
 * job becomes the thread's: when librbd returns, if ever, the thread
 * undoes what it did (closes an image opened too late, which releases
 * its lock) and frees everything.  The state changes once, under the
 * job's lock, so exactly one side frees the job. */
enum bg_state {
  BG_RUNNING,                     /* librbd has not returned */
  BG_DONE,                        /* it has; the caller takes the result */
  BG_ABANDONED,                   /* the caller gave up; the thread cleans up */
};

struct bg_job {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum bg_state state;
  /* An open: its arguments and result. */
  char *file;
  unsigned flags, timeout;
  struct store *s;
  int err;
  char why[384];
  /* A close: the store, freed by whoever frees the job. */
  struct rbd_store *r;
};

static _Atomic uint64_t closes_abandoned;

static struct bg_job *
bg_new (void)
{
  struct bg_job *j = calloc (1, sizeof *j);
  pthread_condattr_t ca;

  if (j == NULL)
    return NULL;
  pthread_mutex_init (&j->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&j->cond, &ca);
  pthread_condattr_destroy (&ca);
  return j;
}

static void rbd_store_free (struct rbd_store *r);

static void
bg_free (struct bg_job *j)
{
  pthread_mutex_destroy (&j->lock);
  pthread_cond_destroy (&j->cond);
  free (j->file);
  free (j);
}

/* The thread's end: hand the result over, or clean up after a caller
 * that gave up. */
static void
bg_finish (struct bg_job *j)
{
  pthread_mutex_lock (&j->lock);
  if (j->state == BG_RUNNING) {
    j->state = BG_DONE;
    pthread_cond_signal (&j->cond);
    pthread_mutex_unlock (&j->lock);
    return;
  }
  pthread_mutex_unlock (&j->lock);
  if (j->s)
    j->s->ops->close (j->s);      /* opened too late: let the image go */
  if (j->r)
    rbd_store_free (j->r);
  bg_free (j);
}

/* Start fn (j) in a detached thread and wait up to secs seconds: true
 * if it is done (j is the caller's), false if not (j is the thread's
 * now) or it could not start (errno; j is the caller's, fn not run). */
static bool
bg_run (void *(*fn) (void *), struct bg_job *j, unsigned secs, bool *started)
{
  pthread_attr_t a;
  pthread_t t;
  struct timespec dl;
  int e;

  pthread_attr_init (&a);
  pthread_attr_setdetachstate (&a, PTHREAD_CREATE_DETACHED);
  e = pthread_create (&t, &a, fn, j);
  pthread_attr_destroy (&a);
  *started = e == 0;
  if (e) {
    errno = e;
    return false;
  }
  clock_gettime (CLOCK_MONOTONIC, &dl);
  dl.tv_sec += secs;
  pthread_mutex_lock (&j->lock);
  while (j->state == BG_RUNNING)
    if (pthread_cond_timedwait (&j->cond, &j->lock, &dl) == ETIMEDOUT &&
        j->state == BG_RUNNING) {
      j->state = BG_ABANDONED;
      pthread_mutex_unlock (&j->lock);
      errno = ETIMEDOUT;
      return false;
    }
  pthread_mutex_unlock (&j->lock);
  return true;
}

/* Undo rbd_connect: whatever of the image, pool and cluster handles it
 * made.  rbd_close waits for requests in flight, abandoned ones too, and
 * releases the exclusive lock. */
static void
rbd_disconnect (struct rbd_store *r)
{
  if (r->image) rbd_close (r->image);
  if (r->io) rados_ioctx_destroy (r->io);
  if (r->cluster) rados_shutdown (r->cluster);
}

static void *
closer (void *arg)
{
  struct bg_job *j = arg;

  rbd_disconnect (j->r);
  bg_finish (j);
  return NULL;
}

static void
rbd_store_free (struct rbd_store *r)
{
  pthread_mutex_destroy (&r->lock);
  free (r);
}

uint64_t
store_rbd_closes_abandoned (void)
{
  return atomic_load (&closes_abandoned);
}

static void
rbd_store_close (struct store *s)
{
  struct rbd_store *r = to_rbd (s);
  struct bg_job *j;
  bool started = false;

  /* The front-ends are gone: no asynchronous request is pending but
   * abandoned ones, which the completion callback frees. */
  pthread_mutex_lock (&r->lock);
  r->wd_exit = true;
  pthread_cond_signal (&r->wd_cond);
  pthread_mutex_unlock (&r->lock);
  pthread_join (r->watchdog, NULL);
  pthread_cond_destroy (&r->wd_cond);
  if ((j = bg_new ()) != NULL) {
    j->r = r;
    if (bg_run (closer, j, r->timeout, &started)) {
      bg_free (j);
      rbd_store_free (r);
      return;
    }
    if (started) {                /* the closer frees r and j */
      atomic_fetch_add (&closes_abandoned, 1);
      return;
    }
    bg_free (j);
  }
  /* No thread to spare: close here, unbounded. */
  rbd_disconnect (r);
  rbd_store_free (r);
}

uint64_t
store_rbd_timeouts (struct store *s)
{
  if (s == NULL || s->ops->close != rbd_store_close)
    return 0;
  return atomic_load (&to_rbd (s)->timeouts);
}

static const struct store_ops rbd_ops = {
  .name = "rbd",
  .pread = rbd_store_pread,
  .pwrite = rbd_store_pwrite,
  .flush = rbd_store_flush,
  .pwrite_batch = rbd_store_pwrite_batch,
  .submit = rbd_store_submit,
  .trim = rbd_store_trim,
  .zero = rbd_store_zero,
  .extent = rbd_store_extent,
  .stats = rbd_store_stats,
  .close = rbd_store_close,
};

/* Connect and open; on failure why names the problem, and everything
 * made so far is undone. */
static int
rbd_connect (struct rbd_store *r, const struct rbd_spec *sp, char *why,
             size_t whylen)
{
  char secs[16];
  int ret;

#define SAY(e, ...) do { snprintf (why, whylen, __VA_ARGS__); errno = (e); goto fail; } while (0)
  r->cluster = NULL;
  r->io = NULL;
  r->image = NULL;
  ret = rados_create (&r->cluster, sp->id);
  if (ret < 0) {
    r->cluster = NULL;
    SAY (-ret, "cannot set up a Ceph client: %s", strerror (-ret));
  }
  ret = rados_conf_read_file (r->cluster, sp->conf);
  if (ret < 0 && sp->conf)
    SAY (-ret, "cannot read the Ceph configuration %s: %s", sp->conf, strerror (-ret));
  if (ret < 0)
    SAY (-ret, "no Ceph configuration in the default places (give :conf=PATH)");
  /* The daemon says what went wrong in one line of its own: librados
   * writes nothing to stderr (unless FILE asks for it below). */
  rados_conf_set (r->cluster, "log_to_stderr", "false");
  rados_conf_set (r->cluster, "err_to_stderr", "false");
  /* The daemon's cache is the cache.  librbd's own would also make a
   * write acknowledged under --cache-mode writethrough (no volatile
   * cache, so clients never flush) sit in memory.  With no cache of the
   * daemon's in front, librbd's is what the configuration says. */
  if (!r->librbd_cache)
    rados_conf_set (r->cluster, "rbd_cache", "false");
  if (sp->keyring && (ret = rados_conf_set (r->cluster, "keyring", sp->keyring)) < 0)
    SAY (-ret, "bad keyring option '%s': %s", sp->keyring, strerror (-ret));
  for (int i = 0; i < sp->nkv; i++)
    if ((ret = rados_conf_set (r->cluster, sp->key[i], sp->val[i])) < 0)
      SAY (EINVAL, "bad Ceph option %s=%s: %s", sp->key[i], sp->val[i], strerror (-ret));
  /* A cluster that does not answer fails the start within the timeout. */
  snprintf (secs, sizeof secs, "%u", r->timeout);
  rados_conf_set (r->cluster, "client_mount_timeout", secs);
  rados_conf_set (r->cluster, "rados_mon_op_timeout", secs);
  /* (Else librados looks for monitors in DNS, and says ENOENT.) */
  char mons[2] = "";
  if (rados_conf_get (r->cluster, "mon_host", mons, sizeof mons) == 0 && mons[0] == '\0')
    SAY (ENOENT, "no monitor address (mon host) in the Ceph configuration%s%s",
         sp->conf ? " " : "", sp->conf ? sp->conf : "");
  ret = rados_connect (r->cluster);
  if (ret == -ETIMEDOUT)
    SAY (-ret, "no answer from the cluster's monitors within %u s (is the cluster up? see --store-timeout)",
         r->timeout);
  if (ret == -EACCES || ret == -EPERM || ret == -ENOENT || ret == -EINVAL)
    SAY (-ret, "cannot authenticate to the cluster as client.%s: %s (check :id= and :keyring=)",
         sp->id ? sp->id : "admin", strerror (-ret));
  if (ret < 0)
    SAY (-ret, "cannot connect to the cluster: %s", strerror (-ret));
  ret = rados_ioctx_create (r->cluster, sp->pool, &r->io);
  if (ret < 0) {
    r->io = NULL;
    if (ret == -ENOENT)
      SAY (-ret, "no pool '%s' in the cluster", sp->pool);
    SAY (-ret, "cannot open pool '%s': %s", sp->pool, strerror (-ret));
  }
  if (sp->ns)
    rados_ioctx_set_namespace (r->io, sp->ns);
  if (r->read_only || sp->snap)
    ret = rbd_open_read_only (r->io, sp->image, &r->image, sp->snap);
  else
    ret = rbd_open (r->io, sp->image, &r->image, NULL);
  if (ret < 0) {
    r->image = NULL;
    if (ret == -ENOENT && sp->snap &&
        rbd_open_read_only (r->io, sp->image, &r->image, NULL) == 0)
      SAY (ENOENT, "image '%s' has no snapshot '%s'", sp->image, sp->snap);
    r->image = NULL;
    if (ret == -ENOENT)
      SAY (ENOENT, "no image '%s' in pool '%s'", sp->image, sp->pool);
    SAY (-ret, "cannot open image '%s': %s", sp->image, strerror (-ret));
  }
  return 0;
fail:
  ret = errno;
  rbd_disconnect (r);
  errno = ret;
  return -1;
}

/* Become the image's only writer, or say who is. */
static int
rbd_take_lock (struct rbd_store *r, const struct rbd_spec *sp, char *why,
               size_t whylen)
{
  uint64_t features = 0;
  int ret;

  if (rbd_get_features (r->image, &features) < 0 ||
      !(features & RBD_FEATURE_EXCLUSIVE_LOCK))
    SAY (EINVAL, "image '%s' lacks the exclusive-lock feature that keeps a second writer out "
         "from under the cache (rbd feature enable %s/%s exclusive-lock), or serve it --read-only",
         sp->image, sp->pool, sp->image);
  ret = rbd_lock_acquire (r->image, RBD_LOCK_MODE_EXCLUSIVE);
  if (ret == -EROFS || ret == -EBUSY || ret == -EAGAIN) {
    char *owners[4] = { NULL };
    size_t n = 4;
    rbd_lock_mode_t mode;
    bool named = rbd_lock_get_owners (r->image, &mode, owners, &n) == 0 && n > 0;
    snprintf (why, whylen, "image '%s' is in use by another client%s%s%s (its exclusive lock "
              "is held); serve it --read-only, or stop that client first",
              sp->image, named ? " (" : "", named ? owners[0] : "", named ? ")" : "");
    if (named)
      rbd_lock_get_owners_cleanup (owners, n);
    errno = EBUSY;
    goto fail;
  }
  if (ret < 0)
    SAY (-ret, "cannot take the exclusive lock of image '%s': %s", sp->image, strerror (-ret));
  return 0;
fail:
  return -1;
#undef SAY
}

/* Whether librbd copies a write's data before rbd_aio_write(v) returns:
 * the image's rbd_disable_zero_copy_writes, as the Ceph configuration,
 * the pool and the image set it.  When in doubt, no: writes bounce. */
static bool
rbd_copies_writes (struct rbd_store *r)
{
  rbd_config_option_t *opts = NULL;
  int n = 256, ret;
  bool copies = false;

  do {                            /* -ERANGE: n says how many there are */
    free (opts);
    if ((opts = calloc ((size_t) n, sizeof *opts)) == NULL)
      return false;
  } while ((ret = rbd_config_image_list (r->image, opts, &n)) == -ERANGE);
  if (ret >= 0) {
    for (int i = 0; i < n; i++)
      if (strcmp (opts[i].name, "rbd_disable_zero_copy_writes") == 0)
        copies = strcmp (opts[i].value, "true") == 0;
    rbd_config_image_list_cleanup (opts, n);
  }
  free (opts);
  return copies;
}

static struct store *
open_now (const char *file, unsigned flags, unsigned timeout,
                char *why, size_t whylen)
{
  struct rbd_spec sp;
  struct rbd_store *r;
  const char *w;
  uint64_t size;
  int e;

  if (spec_parse (file, &sp, &w) == -1) {
    snprintf (why, whylen, "%s", errno == EINVAL ? w : strerror (errno));
    return NULL;
  }
  if (sp.snap && !(flags & STORE_RBD_READ_ONLY)) {
    spec_free (&sp);
    snprintf (why, whylen, "a snapshot is read-only: serve it with --read-only");
    errno = EROFS;
    return NULL;
  }
  if (lib_ready (why, whylen) == -1) {
    e = errno;
    spec_free (&sp);
    errno = e;
    return NULL;
  }
  r = calloc (1, sizeof *r);
  if (r == NULL) {
    spec_free (&sp);
    snprintf (why, whylen, "%s", strerror (ENOMEM));
    errno = ENOMEM;
    return NULL;
  }
  r->read_only = flags & STORE_RBD_READ_ONLY;
  r->librbd_cache = flags & STORE_RBD_LIBRBD_CACHE;
  r->timeout = timeout ? timeout : STORE_RBD_TIMEOUT;
  if (rbd_connect (r, &sp, why, whylen) == -1)
    goto fail;
  if (!r->read_only && rbd_take_lock (r, &sp, why, whylen) == -1)
    goto fail_open;
  r->copies_writes = rbd_copies_writes (r);
  if ((e = rbd_get_size (r->image, &size)) < 0) {
    snprintf (why, whylen, "cannot get the size of image '%s': %s", sp.image, strerror (-e));
    errno = -e;
    goto fail_open;
  }
  pthread_mutex_init (&r->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&r->wd_cond, &ca);
  pthread_condattr_destroy (&ca);
  if ((e = pthread_create (&r->watchdog, NULL, watchdog, r)) != 0) {
    snprintf (why, whylen, "cannot start the request watchdog: %s", strerror (e));
    pthread_cond_destroy (&r->wd_cond);
    pthread_mutex_destroy (&r->lock);
    errno = e;
    goto fail_open;
  }
  r->s.ops = &rbd_ops;
  r->s.size = size;
  r->s.caps = STORE_CAP_PERSISTENT | STORE_CAP_TRIM | STORE_CAP_FAST_ZERO |
              STORE_CAP_EXTENTS | (r->read_only ? STORE_CAP_READ_ONLY : 0);
  spec_free (&sp);
  return &r->s;

fail_open:
  e = errno;
  rbd_disconnect (r);
  errno = e;
fail:
  e = errno;
  spec_free (&sp);
  free (r);
  errno = e;
  return NULL;
}

static void *
opener (void *arg)
{
  struct bg_job *j = arg;

  j->s = open_now (j->file, j->flags, j->timeout, j->why, sizeof j->why);
  j->err = errno;
  bg_finish (j);
  return NULL;
}

struct store *
store_rbd_open (const char *file, unsigned flags, unsigned timeout,
                char *why, size_t whylen)
{
  struct bg_job *j = bg_new ();
  struct store *s;
  bool started;
  int e;

  if (timeout == 0)
    timeout = STORE_RBD_TIMEOUT;
  if (j == NULL || (j->file = strdup (file)) == NULL) {
    if (j)
      bg_free (j);
    snprintf (why, whylen, "%s", strerror (ENOMEM));
    errno = ENOMEM;
    return NULL;
  }
  j->flags = flags;
  j->timeout = timeout;
  /* Connecting is bounded by the timeout (client_mount_timeout); then
   * opening the image and taking its lock get as long again. */
  if (!bg_run (opener, j, 2 * timeout, &started)) {
    e = errno;
    if (!started) {
      bg_free (j);
      snprintf (why, whylen, "cannot start a thread to open the image: %s", strerror (e));
    }
    else
      snprintf (why, whylen, "no answer from the cluster within %u s while opening the image "
                "(are its OSDs up? see --store-timeout)", 2 * timeout);
    errno = e;
    return NULL;
  }
  s = j->s;
  e = j->err;
  if (s == NULL)
    snprintf (why, whylen, "%s", j->why);
  bg_free (j);
  errno = e;
  return s;
}

#endif /* HAVE_RBD */
