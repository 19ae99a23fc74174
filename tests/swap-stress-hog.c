/* swap-stress-hog: the memory hog of the swap stress test.  Run inside a
 * memory cgroup smaller than what it touches, so that the kernel must swap
 * it out and in again.
 *
 *   swap-stress-hog MIB SECONDS [SEED]
 *
 * Maps MIB megabytes and runs passes until SECONDS have gone by (at least
 * one).  Each pass writes every word of every page with a pattern named by
 * the pass, the page and the word, then reads every page back in a
 * scattered order and checks every word.  Pages differ in how well they
 * compress: one repeated word (the store keeps only the word), text-like
 * low-entropy words (lz4 packs them), and random words (stored raw), so
 * all of the store's paths carry swap traffic.  No page is all zeroes: the
 * kernel would not write such a page to the swap device at all.
 *
 * Prints one line a pass and a last line
 *   hog: MIB MiB, P passes, N pages verified, B bad words
 * and the first bad words it finds (page, word, expected, found).  Exits 0
 * when every word came back, 1 when one did not, 2 on a usage or mapping
 * error.  With no arguments it checks itself on 16 MiB for one pass.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_WORDS 512          /* 4 KiB pages of 64-bit words */
#define MAX_REPORTED 20

static uint64_t
mix (uint64_t x)                /* splitmix64's finaliser */
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* What page P holds in pass N is named by one key... */
static inline uint64_t
page_key (uint64_t seed, uint64_t pass, uint64_t page)
{
  return mix (seed ^ mix (pass ^ mix (page)));
}

/* ...and word W of it by the key and W. */
static inline uint64_t
pattern (uint64_t key, uint64_t w)
{
  switch (key & 7) {
  case 0:                       /* one word repeated: a same-filled page */
    return key | 1;
  case 1: case 2:               /* low entropy: compresses well */
    return (key & 0xffffffff00000000ull) | ((w & 15) * 0x01010101ull);
  default:                      /* random: incompressible */
    return mix (key ^ w) | 1;
  }
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t
gcd (uint64_t a, uint64_t b)
{
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int
main (int argc, char **argv)
{
  uint64_t mib = 16, seed = 1;
  double seconds = 0;

  if (argc > 1) {
    if (argc < 3 || argc > 4) {
      fprintf (stderr, "usage: %s MIB SECONDS [SEED]\n", argv[0]);
      return 2;
    }
    mib = strtoull (argv[1], NULL, 10);
    seconds = strtod (argv[2], NULL);
    if (argc == 4)
      seed = strtoull (argv[3], NULL, 10);
    if (mib == 0 || seconds < 0) {
      fprintf (stderr, "%s: MIB must be positive and SECONDS not negative\n", argv[0]);
      return 2;
    }
  }

  uint64_t pages = mib * 256, verified = 0, bad = 0, pass;
  size_t len = (size_t) (mib << 20);
  uint64_t *mem = mmap (NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror ("hog: mmap");
    return 2;
  }
  /* The kernel must swap single pages, not split huge ones. */
  madvise (mem, len, MADV_NOHUGEPAGE);

  /* Read back in the order i * step mod pages, a permutation when step
   * and pages are coprime: every page once, far from the last one. */
  uint64_t step = pages / 2 + 1;
  while (gcd (step, pages) != 1)
    step++;

  double start = now ();
  for (pass = 1;; pass++) {
    double t0 = now ();
    uint64_t pass_bad = 0;

    for (uint64_t p = 0; p < pages; p++) {
      uint64_t *page = mem + p * PAGE_WORDS, key = page_key (seed, pass, p);
      for (uint64_t w = 0; w < PAGE_WORDS; w++)
        page[w] = pattern (key, w);
    }
    for (uint64_t i = 0, p = 0; i < pages; i++, p = (p + step) % pages) {
      const uint64_t *page = mem + p * PAGE_WORDS;
      uint64_t key = page_key (seed, pass, p);
      for (uint64_t w = 0; w < PAGE_WORDS; w++) {
        uint64_t want = pattern (key, w);
        if (page[w] != want) {
          if (bad + pass_bad < MAX_REPORTED)
            printf ("hog: pass %" PRIu64 " page %" PRIu64 " word %" PRIu64
                    ": expected %016" PRIx64 " found %016" PRIx64 "\n",
                    pass, p, w, want, page[w]);
          pass_bad++;
        }
      }
      verified++;
    }
    bad += pass_bad;
    printf ("hog: pass %" PRIu64 ": %" PRIu64 " pages written and verified in %.1f s, %"
            PRIu64 " bad words\n", pass, pages, now () - t0, pass_bad);
    fflush (stdout);
    if (now () - start >= seconds)
      break;
  }
  printf ("hog: %" PRIu64 " MiB, %" PRIu64 " passes, %" PRIu64
          " pages verified, %" PRIu64 " bad words\n", mib, pass, verified, bad);
  munmap (mem, len);
  return bad != 0;
}
