/* A replay driver for the fuzz targets: calls a target's
 * LLVMFuzzerTestOneInput once per file named (or per file in each
 * directory named).  libFuzzer needs clang; this needs nothing, so make
 * check replays the seed corpus and the regression inputs of every
 * target with whichever compiler built the tree.  Any crash or abort of
 * the target fails the run. */
#include <config.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static unsigned replayed;

static int
replay_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  if (f == NULL) {
    perror (path);
    return -1;
  }
  size_t cap = 4096, n = 0, r;
  uint8_t *buf = malloc (cap);
  while (buf && (r = fread (buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *b = realloc (buf, cap * 2);
      if (b == NULL) {
        free (buf);
        buf = NULL;
        break;
      }
      buf = b;
      cap *= 2;
    }
  }
  fclose (f);
  if (buf == NULL) {
    fprintf (stderr, "%s: out of memory\n", path);
    return -1;
  }
  fprintf (stderr, "replay %s (%zu bytes)\n", path, n);
  LLVMFuzzerTestOneInput (buf, n);
  free (buf);
  replayed++;
  return 0;
}

static int
replay (const char *path)
{
  struct stat st;
  if (stat (path, &st) == -1) {
    perror (path);
    return -1;
  }
  if (!S_ISDIR (st.st_mode))
    return replay_file (path);
  struct dirent **names;
  int n = scandir (path, &names, NULL, alphasort), rc = 0;
  if (n == -1) {
    perror (path);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    if (names[i]->d_name[0] != '.') {
      size_t len = strlen (path) + strlen (names[i]->d_name) + 2;
      char *p = malloc (len);
      if (p == NULL || (snprintf (p, len, "%s/%s", path, names[i]->d_name), replay (p)) == -1)
        rc = -1;
      free (p);
    }
    free (names[i]);
  }
  free (names);
  return rc;
}

int
main (int argc, char **argv)
{
  int rc = 0;
  for (int i = 1; i < argc; i++)
    if (replay (argv[i]) == -1)
      rc = 1;
  fprintf (stderr, "%u inputs replayed\n", replayed);
  return rc;
}
