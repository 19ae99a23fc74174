/* hog: runs inside the test guest, in a memory cgroup smaller than what
 * it touches, so that the kernel must swap it out.  Writes a pattern that
 * names each page over MiB megabytes, then reads every page back.
 *
 *   hog MIB      exit 0 if every page came back, 1 otherwise
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
  size_t mib = argc > 1 ? strtoul (argv[1], NULL, 10) : 192;
  size_t pages = mib * 256, bad = 0;
  uint64_t *mem = malloc (mib << 20);

  if (mem == NULL) {
    perror ("malloc");
    return 1;
  }
  for (size_t p = 0; p < pages; p++)
    for (size_t w = 0; w < 512; w += 64)
      mem[p * 512 + w] = p * 0x9e3779b97f4a7c15ull + w;
  for (size_t p = 0; p < pages; p++)
    for (size_t w = 0; w < 512; w += 64)
      if (mem[p * 512 + w] != p * 0x9e3779b97f4a7c15ull + w)
        bad++;
  printf ("hog: %zu MiB, %zu pages, %zu bad words\n", mib, pages, bad);
  return bad != 0;
}
