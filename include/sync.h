/* sync: the threading helpers the modules share.
 *
 * The hot locks of the data path (worker queue, pools, a connection's
 * send lock) are held for a few instructions, so they spin briefly before
 * sleeping: on a small machine that saves a futex round trip and a context
 * switch on most contention.  And every pool of worker threads that is
 * not given a size gets one per online CPU, from one place; and the
 * monotonic clock in nanoseconds, and the deadline a default condition
 * variable's timed wait wants, have one definition each.
 */
#ifndef SGBLK_SYNC_H
#define SGBLK_SYNC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static inline int
sync_mutex_init_adaptive (pthread_mutex_t *m)
{
  pthread_mutexattr_t a;
  int r;

  pthread_mutexattr_init (&a);
  pthread_mutexattr_settype (&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  r = pthread_mutex_init (m, &a);
  pthread_mutexattr_destroy (&a);
  return r;
}

/* The default size of a pool of worker threads (--threads not given): the
 * number of online CPUs, and at least one if the system cannot say. */
static inline unsigned
sync_default_threads (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);

  return n > 0 ? (unsigned) n : 1;
}

/* CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call). */
static inline uint64_t
sync_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* The CLOCK_REALTIME time ns from now: the deadline of a timed wait on a
 * condition variable made with default attributes. */
static inline struct timespec
sync_deadline_ns (uint64_t ns)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  ns += (uint64_t) ts.tv_nsec;
  ts.tv_sec += (time_t) (ns / 1000000000u);
  ts.tv_nsec = (long) (ns % 1000000000u);
  return ts;
}

#endif
