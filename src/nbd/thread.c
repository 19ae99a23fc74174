/* A connection's threads and their stacks.
 *
 * glibc keeps the stacks of threads that exited (up to 40 MiB of them) to
 * reuse, so the stacks of connections that have closed stay resident, and
 * under --swap locked, for good.  A connection's session and sender run
 * on stacks mapped here instead and unmapped once the thread is joined:
 * what a connection costs is given back when it closes.
 *
 * A session's stack is the default thread stack size
 * (pthread_getattr_default_np: 8 MiB of address space, or --swap's
 * smaller size); a sender, which only sends and releases, needs far less
 * and gets NBD_SENDER_STACK.  A stack is mapped without
 * reserving swap, with a guard page below it; glibc puts the thread's
 * descriptor and static TLS at its top.  Only what a thread touches is
 * resident, except under --swap, where mlockall maps it in whole.
 */
#include <config.h>

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

int
nbd_thread_start (struct nbd_thread *t, size_t stack, void *(*fn) (void *), void *arg)
{
  pthread_attr_t attr;
  size_t size = stack, guard = (size_t) sysconf (_SC_PAGESIZE);
  int e;

  if (size == 0) {
    if (pthread_getattr_default_np (&attr) == 0) {
      pthread_attr_getstacksize (&attr, &size);
      pthread_attr_destroy (&attr);
    }
    if (size < NBD_THREAD_STACK_MIN)
      size = NBD_THREAD_STACK_MIN;
  }
  size = (size + guard - 1) & ~(guard - 1);
  void *p = mmap (NULL, size + guard, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return -1;
  if (mprotect (p, guard, PROT_NONE) == -1 || pthread_attr_init (&attr) != 0) {
    e = errno;
    munmap (p, size + guard);
    errno = e;
    return -1;
  }
  pthread_attr_setstack (&attr, (char *) p + guard, size);
  e = pthread_create (&t->id, &attr, fn, arg);
  pthread_attr_destroy (&attr);
  if (e != 0) {
    munmap (p, size + guard);
    errno = e;
    return -1;
  }
  t->map = p;
  t->map_len = size + guard;
  return 0;
}

void
nbd_thread_join (struct nbd_thread *t)
{
  pthread_join (t->id, NULL);
  munmap (t->map, t->map_len);
  t->map = NULL;
}
