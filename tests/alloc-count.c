/* alloc-count: an LD_PRELOAD shim that reports every allocator call a
 * process makes between two moments a test chooses.
 *
 * SGBLK_ALLOC_COUNT=PREFIX names three files:
 *   PREFIX.start  created by the test: calls from now on are counted;
 *   PREFIX.stop   created by the test: calls from now on are not;
 *   PREFIX.log    written by the shim: "loaded pid N" at load, then one
 *                 line per counted call ("malloc 4096 from OBJ(FUNC+0xOFF)
 *                 tid N thread NAME"), so a failing test says who
 *                 allocated, and in which thread (a test may exempt a
 *                 thread that works outside the I/O path by its name).
 * The window is observed on the next allocator call of any thread: a call
 * after the test created PREFIX.start is always counted.  Counted are the
 * malloc family (malloc, calloc, realloc, reallocarray, free of a non-NULL
 * pointer, posix_memalign, aligned_alloc, memalign, valloc, pvalloc) and
 * the program's own calls that map, unmap, lock or advise memory (mmap,
 * munmap, mremap, mprotect, madvise, mlock, mlock2, munlock; glibc's
 * internal ones are not interposable and come from malloc, which is
 * counted anyway).
 *
 * The shim allocates nothing itself: it forwards to glibc's __libc_*
 * entry points, formats on the stack and writes with write(2).  A
 * thread-local guard (initial-exec, so touching it cannot allocate) keeps
 * calls made while reporting from being reported.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc (size_t);
extern void *__libc_calloc (size_t, size_t);
extern void *__libc_realloc (void *, size_t);
extern void *__libc_memalign (size_t, size_t);
extern void *__libc_valloc (size_t);
extern void *__libc_pvalloc (size_t);
extern void __libc_free (void *);

enum window {
  BEFORE,       /* PREFIX.start does not exist yet */
  COUNTING,     /* between PREFIX.start and PREFIX.stop */
  AFTER,        /* PREFIX.stop exists: nothing more is counted */
};

static char start_path[4096], stop_path[4096];
static int log_fd = -1;
static _Atomic int window = AFTER;         /* AFTER until the constructor ran */
static __thread int busy __attribute__ ((tls_model ("initial-exec")));

static void say (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
say (const char *fmt, ...)
{
  char line[512];
  va_list ap;

  va_start (ap, fmt);
  int n = vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  if (n > (int) sizeof line - 1)
    n = sizeof line - 1;
  if (log_fd >= 0 && write (log_fd, line, (size_t) n) != n) {
    /* A test that cannot read the log fails on its own. */
  }
}

__attribute__ ((constructor)) static void
init (void)
{
  const char *prefix = getenv ("SGBLK_ALLOC_COUNT");

  if (prefix == NULL || strlen (prefix) > sizeof start_path - 8)
    return;
  snprintf (start_path, sizeof start_path, "%s.start", prefix);
  snprintf (stop_path, sizeof stop_path, "%s.stop", prefix);
  char log_path[4096];
  snprintf (log_path, sizeof log_path, "%s.log", prefix);
  log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  say ("loaded pid %ld\n", (long) getpid ());
  atomic_store (&window, BEFORE);
}

/* Is this call in the window?  Moves the window on as the files appear. */
static int
counting (void)
{
  int w = atomic_load (&window);

  if (w == BEFORE && access (start_path, F_OK) == 0) {
    int expected = BEFORE;
    atomic_compare_exchange_strong (&window, &expected, COUNTING);
    w = atomic_load (&window);
  }
  if (w == COUNTING && access (stop_path, F_OK) == 0) {
    atomic_store (&window, AFTER);
    w = AFTER;
  }
  return w == COUNTING;
}

static void
report (const char *what, size_t n, const void *caller)
{
  if (busy)
    return;
  busy = 1;
  int saved = errno;
  if (counting ()) {
    char name[17] = "";
    prctl (PR_GET_NAME, name, 0, 0, 0);   /* a system call: allocates nothing */
    Dl_info di;
    if (dladdr (caller, &di) && di.dli_fname) {
      const char *obj = strrchr (di.dli_fname, '/');
      obj = obj ? obj + 1 : di.dli_fname;
      if (di.dli_sname)
        say ("%s %zu from %s(%s+0x%lx) tid %ld thread %s\n", what, n, obj, di.dli_sname,
             (unsigned long) ((uintptr_t) caller - (uintptr_t) di.dli_saddr),
             (long) syscall (SYS_gettid), name);
      else
        say ("%s %zu from %s(+0x%lx) tid %ld thread %s\n", what, n, obj,
             (unsigned long) ((uintptr_t) caller - (uintptr_t) di.dli_fbase),
             (long) syscall (SYS_gettid), name);
    }
    else
      say ("%s %zu from %p tid %ld thread %s\n", what, n, caller,
           (long) syscall (SYS_gettid), name);
  }
  errno = saved;
  busy = 0;
}

#define CALLER __builtin_return_address (0)

void *
malloc (size_t n)
{
  report ("malloc", n, CALLER);
  return __libc_malloc (n);
}

void *
calloc (size_t n, size_t size)
{
  report ("calloc", n * size, CALLER);
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t n)
{
  report ("realloc", n, CALLER);
  return __libc_realloc (p, n);
}

void *
reallocarray (void *p, size_t n, size_t size)
{
  report ("reallocarray", n * size, CALLER);
  if (size && n > SIZE_MAX / size) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc (p, n * size);
}

void
free (void *p)
{
  if (p)
    report ("free", 0, CALLER);
  __libc_free (p);
}

int
posix_memalign (void **out, size_t align, size_t n)
{
  report ("posix_memalign", n, CALLER);
  if (align < sizeof (void *) || (align & (align - 1)))
    return EINVAL;
  void *p = __libc_memalign (align, n);
  if (p == NULL)
    return ENOMEM;
  *out = p;
  return 0;
}

void *
aligned_alloc (size_t align, size_t n)
{
  report ("aligned_alloc", n, CALLER);
  return __libc_memalign (align, n);
}

void *
memalign (size_t align, size_t n)
{
  report ("memalign", n, CALLER);
  return __libc_memalign (align, n);
}

void *
valloc (size_t n)
{
  report ("valloc", n, CALLER);
  return __libc_valloc (n);
}

void *
pvalloc (size_t n)
{
  report ("pvalloc", n, CALLER);
  return __libc_pvalloc (n);
}

void *
mmap (void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
  report ("mmap", n, CALLER);
  return (void *) syscall (SYS_mmap, addr, n, prot, flags, fd, off);
}

int
munmap (void *addr, size_t n)
{
  report ("munmap", n, CALLER);
  return (int) syscall (SYS_munmap, addr, n);
}

void *
mremap (void *addr, size_t old, size_t n, int flags, ...)
{
  va_list ap;
  void *to;

  va_start (ap, flags);
  to = (flags & MREMAP_FIXED) ? va_arg (ap, void *) : NULL;
  va_end (ap);
  report ("mremap", n, CALLER);
  return (void *) syscall (SYS_mremap, addr, old, n, flags, to);
}

int
mprotect (void *addr, size_t n, int prot)
{
  report ("mprotect", n, CALLER);
  return (int) syscall (SYS_mprotect, addr, n, prot);
}

int
madvise (void *addr, size_t n, int advice)
{
  report ("madvise", n, CALLER);
  return (int) syscall (SYS_madvise, addr, n, advice);
}

int
mlock (const void *addr, size_t n)
{
  report ("mlock", n, CALLER);
  return (int) syscall (SYS_mlock, addr, n);
}

int
mlock2 (const void *addr, size_t n, unsigned int flags)
{
  report ("mlock2", n, CALLER);
  return (int) syscall (SYS_mlock2, addr, n, flags);
}

int
munlock (const void *addr, size_t n)
{
  report ("munlock", n, CALLER);
  return (int) syscall (SYS_munlock, addr, n);
}
