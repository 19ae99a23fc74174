/* Fault store: a store that passes every call to the store below it,
 * except the calls its rules choose to fail.  For tests only: the unit
 * tests build one directly, and tests/sgblkd-test puts one under its cache
 * from SGBLK_TEST_STORE_FAULT (docs/architecture.md, "Failing stores");
 * sgblkd itself never makes one.
 *
 * A spec is rules separated by ',', each "OP[:KEY=VALUE]...":
 *   OP        read, write, flush, zero or trim (the store operation)
 *   after=N   let the first N calls of OP through (default 0)
 *   count=M   the window: the M calls after those (default: all later)
 *   rate=P    fail each call in the window with probability P, 0..1
 *             (default 1: every one)
 *   errno=E   EIO (default), ENOSPC, EROFS, EDQUOT, EPERM or a number
 *   seed=S    of the pseudo-random choice (default 1)
 * Each rule numbers the calls of its OP from 0 as they arrive; call k is
 * in the window when after <= k < after + count.  With a rate, whether
 * call k fails is a hash of (seed, k), so a run with the same order of
 * calls fails the same calls.  Several rules may name one OP: a call
 * fails if any of them says so (every rule counts it).
 *
 * Invariants: a failed call reaches nothing below, so the store below is
 * exactly as before it (a failing medium that wrote part of a request is
 * not modelled); calls outside every window are the store below's own.
 * Counters are atomic, so any number of threads may call in.  The wrapper
 * owns the store below from a successful open on and closes it.
 */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define MAX_RULES 8

enum fault_op { OP_READ, OP_WRITE, OP_FLUSH, OP_ZERO, OP_TRIM, OP_COUNT };

static const char *const op_names[OP_COUNT] = {
  "read", "write", "flush", "zero", "trim"
};

struct rule {
  enum fault_op op;
  uint64_t after, count;          /* count UINT64_MAX: no end */
  uint64_t threshold;             /* fail when hash < threshold (rate * 2^64) */
  bool always;                    /* rate 1 */
  uint64_t seed;
  int err;
  _Atomic uint64_t calls;
};

struct fault_store {
  struct store s;                 /* first: the store handle points here */
  struct store *inner;
  unsigned nrules;
  struct rule rules[MAX_RULES];
  _Atomic uint64_t injected;
};

/* splitmix64's finalizer: a well-mixed 64-bit hash of x. */
static uint64_t
mix (uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Does this call of op fail?  0, or the errno to fail it with. */
static int
should_fail (struct fault_store *f, enum fault_op op)
{
  int err = 0;

  for (unsigned i = 0; i < f->nrules; i++) {
    struct rule *r = &f->rules[i];
    if (r->op != op)
      continue;
    uint64_t k = atomic_fetch_add_explicit (&r->calls, 1, memory_order_relaxed);
    if (k < r->after || k - r->after >= r->count)
      continue;
    if (r->always || mix (r->seed ^ mix (k)) < r->threshold)
      err = err ? err : r->err;
  }
  if (err)
    atomic_fetch_add_explicit (&f->injected, 1, memory_order_relaxed);
  return err;
}

#define FAIL_IF(f, op)                          \
  do {                                          \
    int e_ = should_fail ((f), (op));           \
    if (e_) {                                   \
      errno = e_;                               \
      return -1;                                \
    }                                           \
  } while (0)

static inline struct fault_store *
to_fault (struct store *s)
{
  return (struct fault_store *) s;
}

static int
fault_pread (struct store *s, const struct iovec *iov, int iovcnt,
             uint64_t offset)
{
  FAIL_IF (to_fault (s), OP_READ);
  return store_pread (to_fault (s)->inner, iov, iovcnt, offset);
}

static int
fault_pwrite (struct store *s, const struct iovec *iov, int iovcnt,
              uint64_t offset, unsigned flags)
{
  FAIL_IF (to_fault (s), OP_WRITE);
  return store_pwrite (to_fault (s)->inner, iov, iovcnt, offset, flags);
}

static int
fault_flush (struct store *s)
{
  FAIL_IF (to_fault (s), OP_FLUSH);
  return store_flush (to_fault (s)->inner);
}

static int
fault_trim (struct store *s, uint64_t offset, uint64_t len)
{
  FAIL_IF (to_fault (s), OP_TRIM);
  return store_trim (to_fault (s)->inner, offset, len);
}

static int
fault_zero (struct store *s, uint64_t offset, uint64_t len, unsigned flags)
{
  FAIL_IF (to_fault (s), OP_ZERO);
  return store_zero (to_fault (s)->inner, offset, len, flags);
}

static int
fault_extent (struct store *s, uint64_t offset, uint64_t len,
              uint64_t *ext_len, bool *allocated)
{
  return store_extent (to_fault (s)->inner, offset, len, ext_len, allocated);
}

/* The store below readies the thread: the wrapper needs nothing. */
static int
fault_thread_prepare (struct store *s)
{
  return store_thread_prepare (to_fault (s)->inner);
}

static void
fault_stats (struct store *s, struct store_stats *st)
{
  store_get_stats (to_fault (s)->inner, st);
}

static void
fault_close (struct store *s)
{
  store_close (to_fault (s)->inner);
  free (s);
}

static const struct store_ops fault_ops = {
  .name = "fault",
  .pread = fault_pread,
  .pwrite = fault_pwrite,
  .flush = fault_flush,
  .trim = fault_trim,
  .zero = fault_zero,
  .extent = fault_extent,
  .thread_prepare = fault_thread_prepare,
  .stats = fault_stats,
  .close = fault_close,
};

/* A whole decimal number; false unless s is one. */
static bool
parse_u64 (const char *s, uint64_t *v)
{
  char *end;

  if (*s < '0' || *s > '9')
    return false;
  errno = 0;
  unsigned long long x = strtoull (s, &end, 10);
  if (errno || *end)
    return false;
  *v = x;
  return true;
}

static bool
parse_errno (const char *s, int *err)
{
  static const struct { const char *name; int err; } names[] = {
    { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EROFS", EROFS },
    { "EDQUOT", EDQUOT }, { "EPERM", EPERM }, { "EBADF", EBADF },
    { "EINVAL", EINVAL }, { "ENOMEM", ENOMEM },
  };
  uint64_t v;

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (s, names[i].name) == 0) {
      *err = names[i].err;
      return true;
    }
  if (!parse_u64 (s, &v) || v == 0 || v > 4095)
    return false;
  *err = (int) v;
  return true;
}

/* A rate: "1", "0", "0.25", ".5"; into a threshold of 2^64 * rate. */
static bool
parse_rate (const char *s, struct rule *r)
{
  char *end;

  errno = 0;
  double p = strtod (s, &end);
  if (errno || *end || end == s || !(p >= 0.0 && p <= 1.0))
    return false;
  r->always = p >= 1.0;
  r->threshold = r->always ? UINT64_MAX : (uint64_t) (p * 18446744073709551616.0);
  return true;
}

/* One rule, "OP[:KEY=VALUE]...", modified in place (split at ':';
 * strsep, not strtok, so that an empty field is an error). */
static bool
parse_rule (char *text, struct rule *r)
{
  char *tok = strsep (&text, ":");
  unsigned op;

  memset (r, 0, sizeof *r);
  r->count = UINT64_MAX;
  r->always = true;
  r->threshold = UINT64_MAX;
  r->seed = 1;
  r->err = EIO;
  for (op = 0; op < OP_COUNT && strcmp (tok, op_names[op]) != 0; op++)
    ;
  if (op == OP_COUNT)
    return false;
  r->op = (enum fault_op) op;
  while ((tok = strsep (&text, ":")) != NULL) {
    char *eq = strchr (tok, '=');
    if (eq == NULL)
      return false;
    *eq++ = '\0';
    bool ok;
    if (strcmp (tok, "after") == 0)
      ok = parse_u64 (eq, &r->after);
    else if (strcmp (tok, "count") == 0)
      ok = parse_u64 (eq, &r->count);
    else if (strcmp (tok, "seed") == 0)
      ok = parse_u64 (eq, &r->seed);
    else if (strcmp (tok, "rate") == 0)
      ok = parse_rate (eq, r);
    else if (strcmp (tok, "errno") == 0)
      ok = parse_errno (eq, &r->err);
    else
      ok = false;
    if (!ok)
      return false;
  }
  return true;
}

struct store *
store_fault_open (struct store *inner, const char *spec)
{
  struct fault_store *f;
  char *copy, *rest, *text;

  if (inner == NULL || spec == NULL) {
    errno = EINVAL;
    return NULL;
  }
  f = calloc (1, sizeof *f);
  copy = strdup (spec);
  if (f == NULL || copy == NULL) {
    free (f);
    free (copy);
    errno = ENOMEM;
    return NULL;
  }
  rest = copy;
  while ((text = strsep (&rest, ",")) != NULL) {
    if (f->nrules == MAX_RULES || !parse_rule (text, &f->rules[f->nrules])) {
      free (copy);
      free (f);
      errno = EINVAL;
      return NULL;
    }
    f->nrules++;
  }
  free (copy);
  f->inner = inner;
  f->s.ops = &fault_ops;
  f->s.size = inner->size;
  f->s.caps = inner->caps;
  return &f->s;
}

uint64_t
store_fault_injected (struct store *s)
{
  if (s == NULL || s->ops != &fault_ops)
    return 0;
  return atomic_load (&to_fault (s)->injected);
}
