/* libFuzzer target: sgblkd's option parser with an arbitrary argv.
 *
 * The input is the arguments after argv[0], separated by NUL bytes.
 * cli_parse must accept or refuse every argv without crashing; a refusal
 * writes its message (starting "sgblkd: "); an acceptance leaves options
 * within the ranges the rest of the daemon relies on.  The file named
 * by --config is not read here (config.c reads it and runs each export's
 * merged argv through cli_parse again). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 64
#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char msg[4096];
  char *argv[MAX_ARGS + 2];
  int argc = 0;
  struct cli_options o;

  /* One copy of the input, NUL-terminated, cut into arguments; getopt
   * permutes argv, so it must be ours to change. */
  char *buf = malloc (size + 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data, size);
  buf[size] = '\0';
  argv[argc++] = (char *) "sgblkd";
  for (size_t i = 0; i <= size && argc <= MAX_ARGS; ) {
    argv[argc++] = buf + i;
    i += strlen (buf + i) + 1;
  }
  argv[argc] = NULL;

  memset (msg, 0, sizeof msg);
  FILE *err = fmemopen (msg, sizeof msg - 1, "w");
  CHECK (err != NULL);
  int r = cli_parse (argc, argv, &o, err);
  fclose (err);
  if (r == -1)
    CHECK (strncmp (msg, "sgblkd: ", 8) == 0);
  else {
    CHECK (r == 0);
    if (!o.help && !o.version) {
      CHECK (o.nunix <= CLI_MAX_UNIX);
      for (unsigned i = 0; i < o.nunix; i++)
        CHECK (o.unix_paths[i] != NULL && o.unix_paths[i][0] != '\0');
      CHECK (o.block_size == 512 || o.block_size == 4096);
      CHECK (o.cache_block >= 4096 && o.cache_block <= 65536 &&
             (o.cache_block & (o.cache_block - 1)) == 0);
      CHECK (o.port == -1 || (o.port >= 1 && o.port <= 65535));
      CHECK (o.threads <= 1024 && o.busy_poll_us <= 1000000 &&
             o.recompress_idle <= 32767);
      CHECK (o.bind != NULL && o.export_name != NULL && strlen (o.export_name) <= 4096);
      CHECK (o.cache_mode != NULL);
      /* Options that need others of the same export (a size, a file, a
       * mount point) are checked per export when --config's file is read
       * (config.c): the command line alone is then only a set of
       * defaults. */
      if (o.config == NULL) {
        if (o.file == NULL || o.create)
          CHECK (o.size > 0 && o.size % o.block_size == 0);
        if (o.file == NULL)
          CHECK (!o.create && !o.direct);
        if (o.fuse_opts)
          CHECK (o.fuse_mount != NULL);
      }
      /* Every string it kept is readable (ASan: still ours). */
      volatile size_t sum = strlen (o.bind) + strlen (o.cache_mode) +
                            (o.file ? strlen (o.file) : 0) +
                            (o.spill ? strlen (o.spill) : 0) +
                            (o.pidfile ? strlen (o.pidfile) : 0);
      (void) sum;
    }
  }
  free (buf);
  return 0;
}
