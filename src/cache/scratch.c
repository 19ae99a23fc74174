/* The block map's per-thread scratch: lz4's compression state and two
 * block buffers ('bounce' for read-modify-write and partial reads,
 * 'packed' for a compressed object, also where a spilled slot is read
 * back to), in one private mapping per thread.
 *
 * Why not static TLS: glibc zeroes, so makes resident, a thread's static
 * TLS when the thread starts, in every thread of the process.  At 144 KiB
 * (two 64 KiB buffers and the state) that was most of an idle NBD
 * connection's cost (a session and a sender thread each), and under
 * --swap it is locked.  Here only a thread that does I/O on a map pays,
 * and only for the block size some open map really uses.
 *
 * Invariants:
 *  - A thread's scratch is reached through one pthread key; it is mapped
 *    on the thread's first need (cache_scratch) or ahead of its I/O
 *    (cache_thread_prepare, for swap mode, whose I/O path must not map),
 *    and unmapped by the key's destructor when the thread exits.
 *  - It is sized for the largest block size of the maps open when it is
 *    mapped, and never smaller than the block size of the map asking: a
 *    thread whose scratch is too small for a map opened later gets a new
 *    one, between two operations (never while one holds pointers into
 *    it: each store operation asks once, first).
 *  - The buffers are page aligned (the spill file is read with O_DIRECT)
 *    and a whole number of pages.  The mapping is not touched here: a
 *    page costs memory when the I/O path first uses it, except under
 *    mlockall(MCL_FUTURE), where the mapping is locked, so resident, at
 *    once.
 */
#include <config.h>

#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "internal.h"

#define PAGE 4096u
#define ROUND_UP(n, a) (((n) + (a) - 1) / (a) * (a))

/* Open maps by block size (index: log2 of it), for the size of new
 * scratch areas. */
static atomic_uint open_maps[32];

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_error;

static void
unmap (void *p)
{
  struct cache_scratch *sc = p;

  munmap (sc->base, sc->bytes);
}

static void
make_key (void)
{
  key_error = pthread_key_create (&key, unmap);
}

void
cache_scratch_open (uint32_t bs)
{
  atomic_fetch_add (&open_maps[__builtin_ctz (bs)], 1);
}

void
cache_scratch_close (uint32_t bs)
{
  atomic_fetch_sub (&open_maps[__builtin_ctz (bs)], 1);
}

/* The largest block size of an open map, at least bs. */
static uint32_t
largest_block (uint32_t bs)
{
  for (unsigned i = 31; (1u << i) > bs; i--)
    if (atomic_load_explicit (&open_maps[i], memory_order_relaxed))
      return 1u << i;
  return bs;
}

static struct cache_scratch *
map_scratch (uint32_t bs)
{
  size_t buf = ROUND_UP ((size_t) bs, PAGE);
  size_t state = ROUND_UP ((size_t) LZ4_sizeofState (), 64);
  size_t bytes = ROUND_UP (2 * buf + state + sizeof (struct cache_scratch), PAGE);
  uint8_t *base = mmap (NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (base == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  /* The descriptor lives in its own mapping's tail: nothing to free but
   * the mapping. */
  struct cache_scratch *sc = (struct cache_scratch *) (base + 2 * buf + state);
  sc->base = base;
  sc->bytes = bytes;
  sc->bs = bs;
  sc->bounce = base;
  sc->packed = base + buf;
  sc->lz4 = base + 2 * buf;
  return sc;
}

struct cache_scratch *
cache_scratch_get (uint32_t bs)
{
  pthread_once (&key_once, make_key);
  if (key_error) {
    errno = ENOMEM;
    return NULL;
  }
  struct cache_scratch *sc = pthread_getspecific (key);
  if (sc != NULL && sc->bs >= bs)
    return sc;
  struct cache_scratch *n = map_scratch (largest_block (bs));
  if (n == NULL)
    return NULL;
  if (pthread_setspecific (key, n) != 0) {
    munmap (n->base, n->bytes);
    errno = ENOMEM;
    return NULL;
  }
  if (sc != NULL)
    unmap (sc);
  return n;
}
