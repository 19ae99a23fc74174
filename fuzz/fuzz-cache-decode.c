/* libFuzzer target: the block map's decompression path.
 *
 * The input replaces a block's compressed object, as memory damage (or a
 * bug in the writer) would: the read path must either decode it to
 * exactly one block, the same bytes lz4 itself decodes, or fail with EIO
 * and count the block once; never crash, read outside the object, or
 * serve a short or overlong decode as data.  With a backing store, a
 * clean damaged block is read again from the store, and a dirty one is
 * never written back (FLUSH fails and the store keeps its old data).
 *
 * Input: one byte of mode (bit 0 an LZ4HC object against the cache's
 * dictionary, bit 1 a backing store, bit 2 the block dirty, bit 3 read
 * through two segments, i.e. the bounce buffer, not decoded in place),
 * then the object, 1 to 4096 bytes. */
#include <config.h>

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "../src/cache/internal.h"
#include "log.h"
#include "../tests/cache-fake-backing.h"

#define BS 4096u
#define NBLOCKS 4u
#define B 1u                           /* the block under test */

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

static struct store *mem, *cached;
static struct fake *backing;
static uint8_t pattern[BS];

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static struct store *
make (struct store *b)
{
  /* recompress_idle gives the map its dictionary; defer_threads keeps
   * the idle pass and the flusher from ever running. */
  struct cache_config cc = { .size = NBLOCKS * BS, .backing = b,
                             .recompress_idle = 60, .defer_threads = true };
  struct store *s = cache_create (&cc);
  CHECK (s != NULL);
  struct cache *k = (struct cache *) s;
  /* The dictionary: text like the block's, so HC objects that refer to
   * it decode to something. */
  for (unsigned i = 0; i < CACHE_DICT_BYTES; i += BS)
    memcpy (k->dict + i, pattern, BS);
  atomic_store (&k->dict_len, CACHE_DICT_BYTES);
  return s;
}

static void
setup (void)
{
  log_init ("fuzz", false, -1);
  for (unsigned i = 0; i < BS; i++)
    pattern[i] = (uint8_t) "a block of compressible text, line after line.\n"[i % 48];
  mem = make (NULL);
  backing = fake_new (NBLOCKS * BS);
  memcpy (backing->data + B * BS, pattern, BS);
  cached = make (&backing->s);
}

static uint64_t
corrupt (struct store *s)
{
  struct cache_stats st;
  CHECK (cache_get_stats (s, &st) == 0);
  return st.corrupt_blocks;
}

static int
rd (struct store *s, uint8_t *out, bool split)
{
  struct iovec iov[2] = { { out, split ? 1000 : BS }, { out + 1000, BS - 1000 } };
  return store_pread (s, iov, split ? 2 : 1, B * BS);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static uint8_t out[BS], ref[BS];

  if (mem == NULL)
    setup ();
  if (size < 2)
    return 0;
  uint8_t mode = data[0];
  bool hc = mode & 1, with_backing = mode & 2, dirty = mode & 4, split = mode & 8;
  const uint8_t *obj = data + 1;
  uint32_t csize = (uint32_t) (size - 1 > BS ? BS : size - 1);
  struct store *s = with_backing ? cached : mem;
  struct cache *k = (struct cache *) s;

  /* The block as a write leaves it, then its object swapped for ours. */
  cache_drop_block (k, B);
  CHECK (cache_store_block (k, B, pattern, dirty || !with_backing, false) == 0);
  struct cmeta *m = &k->meta[B];
  CHECK ((m->flags & (CM_PRESENT | CM_SAME | CM_HUGE)) == CM_PRESENT);
  uint64_t h = zpool_alloc (k->zp, csize, B, false);
  CHECK (h != 0);
  memcpy (zpool_map (k->zp, h), obj, csize);
  struct cmeta n = *m;
  n.handle = h;
  n.csize = csize;
  n.flags = hc ? n.flags | CM_HC : n.flags & ~(uint32_t) CM_HC;
  zpool_free (k->zp, m->handle);
  cache_account (k, m, &n);
  *m = n;

  /* What lz4 makes of it, from a copy of exactly csize bytes, so that
   * ASan sees any read past the object. */
  uint8_t *copy = malloc (csize);
  CHECK (copy != NULL);
  memcpy (copy, obj, csize);
  int r = hc ? LZ4_decompress_safe_usingDict ((const char *) copy, (char *) ref, (int) csize,
                                              BS, (const char *) k->dict, CACHE_DICT_BYTES)
             : LZ4_decompress_safe ((const char *) copy, (char *) ref, (int) csize, BS);
  free (copy);
  bool good = r == (int) BS;

  uint64_t bad0 = corrupt (s);
  errno = 0;
  int rr = rd (s, out, split);
  if (good)
    CHECK (rr == 0 && memcmp (out, ref, BS) == 0 && corrupt (s) == bad0);
  else if (with_backing && !dirty) {
    /* Clean: the store's copy is served instead, and the damage counted. */
    CHECK (rr == 0 && memcmp (out, pattern, BS) == 0 && corrupt (s) == bad0 + 1);
  }
  else {
    CHECK (rr == -1 && errno == EIO && corrupt (s) == bad0 + 1);
    /* Counted once: a second read fails the same way, not counted again. */
    CHECK (rd (s, out, !split) == -1 && errno == EIO && corrupt (s) == bad0 + 1);
  }

  if (with_backing && dirty) {
    unsigned w0 = backing->nwrites;
    int fr = store_flush (s);
    if (good)
      CHECK (fr == 0 && memcmp (backing->data + B * BS, ref, BS) == 0);
    else
      CHECK (fr == -1 && memcmp (backing->data + B * BS, pattern, BS) == 0 &&
             backing->nwrites == w0);
    memcpy (backing->data + B * BS, pattern, BS);
  }
  cache_drop_block (k, B);
  return 0;
}
