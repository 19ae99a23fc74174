/* Command-line parsing: every usage error gives one clear line and the
 * parser refuses it; good command lines give the documented defaults. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "cli.h"
#include "nbd.h"

static char errbuf[4096];

/* Parse a NULL-terminated list of words; returns cli_parse's result and
 * leaves what it printed in errbuf. */
static int
parse (struct cli_options *o, ...)
{
  char *argv[32];
  int argc = 0;
  va_list ap;
  FILE *err = fmemopen (errbuf, sizeof errbuf, "w");

  assert_non_null (err);
  argv[argc++] = (char *) "sgblkd";
  va_start (ap, o);
  for (char *w; (w = va_arg (ap, char *)) != NULL; )
    argv[argc++] = w;
  va_end (ap);
  argv[argc] = NULL;
  memset (errbuf, 0, sizeof errbuf);
  int r = cli_parse (argc, argv, o, err);
  fclose (err);
  return r;
}

static void
assert_usage_error (const char *needle)
{
  const char *nl = strchr (errbuf, '\n');

  assert_non_null (strstr (errbuf, needle));
  /* Exactly one line, which names the program. */
  assert_non_null (nl);
  assert_int_equal (nl[1], '\0');
  assert_int_equal (strncmp (errbuf, "sgblkd: ", 8), 0);
}

static void
no_arguments_give_a_1g_memory_disk_on_tcp_localhost (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, NULL), 0);
  assert_null (o.file);
  assert_int_equal (o.size, 1ull << 30);
  assert_int_equal (o.port, 10809);
  assert_string_equal (o.bind, "127.0.0.1");
  assert_string_equal (o.export_name, "");
  assert_int_equal (o.block_size, 512);
  assert_false (o.read_only);
  assert_false (o.foreground);
}

static void
unix_socket_alone_opens_no_tcp_port (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-U", "/tmp/s", "--size", "64M", NULL), 0);
  assert_int_equal (o.nunix, 1);
  assert_string_equal (o.unix_paths[0], "/tmp/s");
  assert_int_equal (o.port, -1);
  assert_int_equal (o.size, 64ull << 20);
}

static void
unix_and_tcp_can_be_given_together (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-U", "/tmp/s", "-p", "10900", "-b", "::1", NULL), 0);
  assert_int_equal (o.nunix, 1);
  assert_int_equal (o.port, 10900);
  assert_string_equal (o.bind, "::1");
}

static void
size_suffixes_are_powers_of_1024 (void **state)
{
  uint64_t v;

  assert_int_equal (cli_parse_size ("4096", &v), 0); assert_int_equal (v, 4096);
  assert_int_equal (cli_parse_size ("8K", &v), 0);   assert_int_equal (v, 8192);
  assert_int_equal (cli_parse_size ("3m", &v), 0);   assert_int_equal (v, 3ull << 20);
  assert_int_equal (cli_parse_size ("2G", &v), 0);   assert_int_equal (v, 2ull << 30);
  assert_int_equal (cli_parse_size ("2GiB", &v), 0); assert_int_equal (v, 2ull << 30);
  assert_int_equal (cli_parse_size ("1T", &v), 0);   assert_int_equal (v, 1ull << 40);
  assert_int_equal (cli_parse_size ("", &v), -1);
  assert_int_equal (cli_parse_size ("-1G", &v), -1);
  assert_int_equal (cli_parse_size ("1X", &v), -1);
  assert_int_equal (cli_parse_size ("1Gx", &v), -1);
  assert_int_equal (cli_parse_size ("99999999999T", &v), -1);
}

static void
zero_size_is_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--size", "0", NULL), -1);
  assert_usage_error ("size must not be zero");
}

static void
unparsable_size_is_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-s", "lots", NULL), -1);
  assert_usage_error ("invalid size 'lots'");
}

static void
size_not_a_multiple_of_the_block_size_is_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-s", "1000", NULL), -1);
  assert_usage_error ("not a multiple of the block size 512");
  assert_int_equal (parse (&o, "-s", "6K", "-B", "4096", NULL), -1);
  assert_usage_error ("not a multiple of the block size 4096");
  assert_int_equal (parse (&o, "-s", "8K", "-B", "4096", NULL), 0);
}

static void
block_size_other_than_512_or_4096_is_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-B", "1024", NULL), -1);
  assert_usage_error ("invalid block size '1024'");
}

static void
unknown_options_are_named (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--frobnicate", NULL), -1);
  assert_usage_error ("unknown option '--frobnicate'");
  assert_int_equal (parse (&o, "-x", NULL), -1);
  assert_usage_error ("unknown option '-x'");
}

static void
missing_option_argument_is_named (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--unix", NULL), -1);
  assert_usage_error ("needs an argument");
  assert_int_equal (parse (&o, "-p", NULL), -1);
  assert_usage_error ("needs an argument");
}

static void
bad_port_and_thread_counts_are_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-p", "0", NULL), -1);
  assert_usage_error ("invalid port '0'");
  assert_int_equal (parse (&o, "-p", "70000", NULL), -1);
  assert_usage_error ("invalid port '70000'");
  assert_int_equal (parse (&o, "-t", "0", NULL), -1);
  assert_usage_error ("invalid thread count '0'");
  assert_int_equal (parse (&o, "--handshake-timeout", "0", NULL), -1);
  assert_usage_error ("invalid handshake timeout '0'");
  assert_int_equal (parse (&o, "--handshake-timeout", "5s", NULL), -1);
  assert_usage_error ("invalid handshake timeout '5s'");
  assert_int_equal (parse (&o, NULL), 0);
  assert_int_equal (o.handshake_timeout, 0);              /* NBD's default */
  assert_int_equal (parse (&o, "--handshake-timeout", "600", NULL), 0);
  assert_int_equal (o.handshake_timeout, 600);
  assert_int_equal (parse (&o, "--busy-poll", "-1", NULL), -1);
  assert_usage_error ("invalid busy-poll time '-1'");
  assert_int_equal (parse (&o, "--busy-poll", "2000000", NULL), -1);
  assert_usage_error ("invalid busy-poll time '2000000'");
  assert_int_equal (parse (&o, NULL), 0);
  assert_int_equal (o.busy_poll_us, CLI_BUSY_POLL_US);
  assert_int_equal (parse (&o, "--busy-poll", "0", NULL), 0);
  assert_int_equal (o.busy_poll_us, 0);
  assert_int_equal (parse (&o, "--recompress-idle", "32768", NULL), -1);
  assert_usage_error ("invalid idle time '32768'");
  assert_int_equal (parse (&o, "--recompress-idle", "1m", NULL), -1);
  assert_usage_error ("invalid idle time '1m'");
  assert_int_equal (parse (&o, NULL), 0);
  assert_int_equal (o.recompress_idle, CLI_RECOMPRESS_IDLE);
  assert_int_equal (parse (&o, "--recompress-idle", "0", NULL), 0);
  assert_int_equal (o.recompress_idle, 0);
  assert_int_equal (parse (&o, "--spill", "", NULL), -1);
  assert_usage_error ("empty spill file name");
  assert_int_equal (parse (&o, "--spill", "/tmp/s", "disk.img", NULL), -1);
  assert_usage_error ("--spill applies to the in-memory disk");
  assert_int_equal (parse (&o, "--spill", "/var/tmp/sgblk.spill", "--mem-limit", "1G", NULL), 0);
  assert_string_equal (o.spill, "/var/tmp/sgblk.spill");
}

static void
size_with_file_needs_create (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-s", "1G", "disk.img", NULL), -1);
  assert_usage_error ("only sets the size for --create");
  assert_int_equal (parse (&o, "--create", "disk.img", NULL), -1);
  assert_usage_error ("--create needs --size");
  assert_int_equal (parse (&o, "--create", "-s", "1G", "disk.img", NULL), 0);
  assert_true (o.create);
  assert_string_equal (o.file, "disk.img");
}

static void
two_files_are_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "a.img", "b.img", NULL), -1);
  assert_usage_error ("unexpected argument 'b.img'");
}

static void
memory_only_options_with_a_file_are_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--mem-limit", "1G", "a.img", NULL), -1);
  assert_usage_error ("--mem-limit applies to the in-memory disk");
  assert_int_equal (parse (&o, "--direct", NULL), -1);
  assert_usage_error ("--direct needs FILE");
}

static void
cache_options_are_checked (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "a.img", NULL), 0);
  assert_int_equal (o.cache_size, 256ull << 20);
  assert_string_equal (o.cache_mode, "writeback");
  assert_int_equal (o.cache_block, 4096);
  assert_int_equal (parse (&o, "--cache-size", "64M", "--cache-mode", "writethrough",
                           "--cache-block", "64K", "a.img", NULL), 0);
  assert_int_equal (o.cache_size, 64ull << 20);
  assert_string_equal (o.cache_mode, "writethrough");
  assert_int_equal (o.cache_block, 65536);
  assert_int_equal (parse (&o, "--cache-mode", "sometimes", "a.img", NULL), -1);
  assert_usage_error ("invalid cache mode 'sometimes'");
  assert_int_equal (parse (&o, "--cache-block", "12K", NULL), -1);
  assert_usage_error ("invalid cache block '12K'");
  assert_int_equal (parse (&o, "--cache-block", "128K", NULL), -1);
  assert_usage_error ("invalid cache block '128K'");
  assert_int_equal (parse (&o, "--cache-size", "1G", NULL), -1);
  assert_usage_error ("need FILE");
  assert_int_equal (parse (&o, "--cache-block", "16K", "--size", "1G", NULL), 0);
}

static void
fuse_alone_opens_no_tcp_port (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "--fuse-opt", "allow_other", NULL), 0);
  assert_string_equal (o.fuse_mount, "/mnt/x");
  assert_string_equal (o.fuse_opts, "allow_other");
  assert_int_equal (o.port, -1);
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-p", "10900", NULL), 0);
  assert_int_equal (o.port, 10900);
  assert_int_equal (parse (&o, "--fuse-opt", "ro", NULL), -1);
  assert_usage_error ("--fuse-opt needs --fuse");
}

static void
conflicting_options_are_refused (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "-r", "--create", "-s", "1G", "a.img", NULL), -1);
  assert_usage_error ("--read-only and --create conflict");
  assert_int_equal (parse (&o, "--cache-mode", "off", "--cache-size", "64M", "a.img", NULL), -1);
  assert_usage_error ("--cache-size with --cache-mode off");
  assert_int_equal (parse (&o, "--cache-mode", "off", "--cache-block", "8K", "a.img", NULL), -1);
  assert_usage_error ("--cache-block with --cache-mode off");
  assert_int_equal (parse (&o, "--cache-mode", "off", "--recompress-idle", "5", "a.img", NULL), -1);
  assert_usage_error ("--recompress-idle with --cache-mode off");
  assert_int_equal (parse (&o, "--cache-mode", "off", "a.img", NULL), 0);
  assert_int_equal (parse (&o, "-U", "/tmp/s", "-U", "/tmp/s", NULL), -1);
  assert_usage_error ("given twice");
  assert_int_equal (parse (&o, "-P", "", NULL), -1);
  assert_usage_error ("empty pidfile name");
  assert_int_equal (parse (&o, "-b", "", NULL), -1);
  assert_usage_error ("empty bind address");
}

static void
unix_socket_paths_must_fit_sockaddr_un (void **state)
{
  struct cli_options o;
  char path[CLI_MAX_UNIX_PATH + 2];

  memset (path, 'a', sizeof path - 1);
  path[sizeof path - 1] = '\0';
  assert_int_equal (parse (&o, "-U", path, NULL), -1);
  assert_usage_error ("longer than 107 bytes");
  path[CLI_MAX_UNIX_PATH] = '\0';
  assert_int_equal (parse (&o, "-U", path, NULL), 0);
}

static void
fuse_export_names_must_be_file_names (void **state)
{
  struct cli_options o;
  char name[CLI_MAX_FUSE_NAME + 2];

  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-e", "a/b", NULL), -1);
  assert_usage_error ("export name 'a/b' contains '/'");
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-e", ".", NULL), -1);
  assert_usage_error ("is '.' or '..'");
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-e", "..", NULL), -1);
  assert_usage_error ("is '.' or '..'");
  memset (name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-e", name, NULL), -1);
  assert_usage_error ("longer than 255 bytes");
  name[CLI_MAX_FUSE_NAME] = '\0';
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", "-e", name, NULL), 0);
  /* Without --fuse an export name is only a name. */
  assert_int_equal (parse (&o, "-e", "a/b", NULL), 0);
  /* The default name is the file "disk". */
  assert_int_equal (parse (&o, "--fuse", "/mnt/x", NULL), 0);
}

static void
memory_limits_must_hold_one_largest_request (void **state)
{
  struct cli_options o;
  uint64_t min32 = cache_min_mem_limit (4096, NBD_MAX_PAYLOAD);

  assert_int_equal (parse (&o, "--cache-size", "4K", "a.img", NULL), -1);
  assert_usage_error ("--cache-size 4K is too small");
  assert_int_equal (parse (&o, "--cache-size", "32M", "a.img", NULL), -1);
  assert_usage_error ("give at least 33M");
  assert_int_equal (parse (&o, "--cache-size", "33M", "a.img", NULL), 0);
  assert_int_equal (parse (&o, "--mem-limit", "1", NULL), -1);
  assert_usage_error ("--mem-limit 1 is too small");
  assert_int_equal (parse (&o, "--mem-limit", "4095", NULL), -1);
  assert_usage_error ("--mem-limit 4095 is too small");
  assert_int_equal (parse (&o, "--mem-limit", "33M", NULL), 0);
  /* The exact minimum is accepted, one byte less is not. */
  char arg[32];
  snprintf (arg, sizeof arg, "%llu", (unsigned long long) min32);
  assert_int_equal (parse (&o, "--mem-limit", arg, NULL), 0);
  snprintf (arg, sizeof arg, "%llu", (unsigned long long) min32 - 1);
  assert_int_equal (parse (&o, "--mem-limit", arg, NULL), -1);
  /* What --help, the man page and the README say: 33M, and 3M with
   * --swap, are enough whatever the cache block. */
  for (uint32_t bs = 4096; bs <= 65536; bs *= 2) {
    assert_true (cache_min_mem_limit (bs, NBD_MAX_PAYLOAD) > NBD_MAX_PAYLOAD);
    assert_true (cache_min_mem_limit (bs, NBD_MAX_PAYLOAD) <= 33ull << 20);
    assert_true (cache_min_mem_limit (bs, CLI_SWAP_MAX_PAYLOAD) <= 3ull << 20);
  }
  assert_int_equal (cache_min_mem_limit (4096, NBD_MAX_PAYLOAD), 33705984);
  /* --swap serves requests of at most 2 MiB; a small disk, none larger
   * than itself. */
  assert_int_equal (parse (&o, "--swap", "--mem-limit", "3M", NULL), 0);
  assert_int_equal (parse (&o, "--swap", "--mem-limit", "2M", NULL), -1);
  assert_int_equal (parse (&o, "--size", "1M", "--mem-limit", "2M", NULL), 0);
  assert_int_equal (parse (&o, "--create", "--size", "1M", "--cache-size", "2M", "a.img", NULL), 0);
  /* No cache, nothing to check. */
  assert_int_equal (parse (&o, "--cache-mode", "off", "a.img", NULL), 0);
}

static void
swap_refuses_limits_above_the_machines_memory (void **state)
{
  struct cli_options o;
  char buf[512];
  FILE *err;

  assert_int_equal (parse (&o, "--swap", "--cache-size", "100T", "a.img", NULL), 0);
  err = fmemopen (buf, sizeof buf, "w");
  assert_int_equal (cli_check_memory (&o, 8ull << 30, err), -1);
  fclose (err);
  assert_non_null (strstr (buf, "--cache-size"));
  assert_non_null (strstr (buf, "--swap locks it"));
  assert_int_equal (parse (&o, "--swap", "--mem-limit", "9G", NULL), 0);
  err = fmemopen (buf, sizeof buf, "w");
  assert_int_equal (cli_check_memory (&o, 8ull << 30, err), -1);
  fclose (err);
  assert_non_null (strstr (buf, "--mem-limit"));
  assert_int_equal (parse (&o, "--swap", "--mem-limit", "8G", NULL), 0);
  assert_int_equal (cli_check_memory (&o, 8ull << 30, stderr), 0);
  /* Without --swap nothing is locked: a limit is only a cap. */
  assert_int_equal (parse (&o, "--cache-size", "100T", "a.img", NULL), 0);
  assert_int_equal (cli_check_memory (&o, 8ull << 30, stderr), 0);
}

static void
stats_file_options_are_checked (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, NULL), 0);
  assert_null (o.stats_file);
  assert_int_equal (parse (&o, "--stats-file", "s.prom", NULL), 0);
  assert_string_equal (o.stats_file, "s.prom");
  assert_int_equal (o.stats_interval, CLI_STATS_INTERVAL);
  assert_int_equal (parse (&o, "--stats-file", "s.prom", "--stats-interval", "3600", NULL), 0);
  assert_int_equal (o.stats_interval, 3600);
  assert_int_equal (parse (&o, "--stats-file", "", NULL), -1);
  assert_usage_error ("empty stats file name");
  assert_int_equal (parse (&o, "--stats-file", "s.prom", "--stats-interval", "0", NULL), -1);
  assert_usage_error ("invalid stats interval '0' (1-3600 seconds)");
  assert_int_equal (parse (&o, "--stats-interval", "10", NULL), -1);
  assert_usage_error ("--stats-interval needs --stats-file");
}

static void
help_and_version_stop_parsing (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, "--help", NULL), 0);
  assert_true (o.help);
  assert_int_equal (parse (&o, "-V", NULL), 0);
  assert_true (o.version);
}

static void
tls_options_go_together (void **state)
{
  struct cli_options o;

  assert_int_equal (parse (&o, NULL), 0);
  assert_int_equal (o.tls, CLI_TLS_OFF);
  assert_int_equal (parse (&o, "--tls=require", "--tls-psk", "k.psk", NULL), 0);
  assert_int_equal (o.tls, CLI_TLS_REQUIRE);
  assert_string_equal (o.tls_psk, "k.psk");
  assert_int_equal (parse (&o, "--tls", "on", "--tls-certificates", "pki", "--tls-verify-peer", NULL), 0);
  assert_int_equal (o.tls, CLI_TLS_ON);
  assert_true (o.tls_verify_peer);
  assert_string_equal (o.tls_certificates, "pki");
  /* The values are enum nbd_tls_mode's, which stack.c passes on. */
  assert_int_equal (CLI_TLS_REQUIRE, NBD_TLS_REQUIRE);
  assert_int_equal (CLI_TLS_ON, NBD_TLS_ON);

  assert_int_equal (parse (&o, "--tls=maybe", NULL), -1);
  assert_usage_error ("invalid --tls 'maybe' (off, on or require)");
  assert_int_equal (parse (&o, "--tls=require", NULL), -1);
  assert_usage_error ("--tls=require needs --tls-certificates DIR or --tls-psk FILE");
  assert_int_equal (parse (&o, "--tls-psk", "k.psk", NULL), -1);
  assert_usage_error ("--tls-psk needs --tls=on or --tls=require");
  assert_int_equal (parse (&o, "--tls=off", "--tls-verify-peer", NULL), -1);
  assert_usage_error ("--tls-verify-peer needs --tls=on or --tls=require");
  assert_int_equal (parse (&o, "--tls=on", "--tls-psk", "k", "--tls-certificates", "d", NULL), -1);
  assert_usage_error ("cannot be used together");
  assert_int_equal (parse (&o, "--tls=on", "--tls-psk", "k", "--tls-verify-peer", NULL), -1);
  assert_usage_error ("--tls-verify-peer needs --tls-certificates");
  assert_int_equal (parse (&o, "--tls=on", "--tls-psk", "", NULL), -1);
  assert_usage_error ("empty TLS PSK file name");
}

static void
help_text_lists_every_long_option (void **state)
{
  static const char *const opts[] = {
    "--size", "--create", "--direct", "--mem-limit", "--read-only",
    "--block-size", "--unix", "--port", "--bind", "--export-name",
    "--cache-size", "--cache-mode", "--cache-block", "--recompress-idle", "--spill",
    "--fuse", "--fuse-opt", "--swap",
    "--threads", "--handshake-timeout", "--busy-poll", "--foreground", "--pidfile", "--verbose", "--version",
    "--stats-file", "--stats-interval",
    "--tls", "--tls-certificates", "--tls-psk", "--tls-verify-peer",
    "--description", "--config",
    "--help",
  };
  char buf[8192] = "";
  FILE *f = fmemopen (buf, sizeof buf - 1, "w");

  cli_usage (f);
  fclose (f);
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    struct cli_options o;
    assert_non_null (strstr (buf, opts[i]));
    /* ... and the parser knows it. */
    (void) parse (&o, opts[i], "4096", NULL);
    assert_null (strstr (errbuf, "unknown option"));
  }
}

/* Load a configuration file with the given text and command line. */
static int
load (struct cli_config *c, const char *text, char **argv, int argc)
{
  char path[] = "/tmp/sgblk-cli-config.XXXXXX";
  int fd = mkstemp (path);
  FILE *err = fmemopen (errbuf, sizeof errbuf, "w");

  assert_true (fd >= 0);
  assert_non_null (err);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  close (fd);
  memset (errbuf, 0, sizeof errbuf);
  int r = cli_config_load (path, argc, argv, c, err);
  fclose (err);
  unlink (path);
  return r;
}

static void
config_sections_override_the_command_line_which_overrides_sgblkd (void **state)
{
  struct cli_config c;
  char *argv[] = { (char *) "sgblkd", (char *) "--config", (char *) "x",
                   (char *) "-r", (char *) "--cache-block", (char *) "8K",
                   (char *) "-U", (char *) "/tmp/a.sock", NULL };
  (void) state;

  assert_int_equal (load (&c,
    "[sgblkd]\n"
    "cache-block = 16K\n"
    "threads = 3\n"
    "unix = /tmp/b.sock\n"
    "\n"
    "; comment\n"
    "[one]\n"
    "size = 64M\n"
    "\n"
    "[two]\n"
    "read-only = no\n"
    "cache-block = 32K\n"
    "description = \"quoted text\"\n", argv, 8), 0);
  assert_int_equal (c.n, 2);
  const struct cli_options *one = &c.exports[0]->opt, *two = &c.exports[1]->opt;
  assert_string_equal (one->export_name, "one");
  assert_true (one->read_only);                 /* the command line's -r */
  assert_int_equal (one->cache_block, 8192);    /* the command line beats [sgblkd] */
  assert_int_equal (one->size, 64 << 20);
  assert_int_equal (one->threads, 3);           /* [sgblkd] where nothing else says */
  assert_int_equal (one->nunix, 1);             /* the command line's sockets replace the file's */
  assert_string_equal (one->unix_paths[0], "/tmp/a.sock");
  assert_false (two->read_only);                /* the section beats the command line */
  assert_int_equal (two->cache_block, 32768);
  assert_string_equal (two->description, "quoted text");
  assert_int_equal (two->size, 1 << 30);        /* the in-memory default */
  assert_string_equal (c.exports[1]->name, "two");
  assert_int_equal (c.exports[1]->line, 10);
  assert_int_equal (c.daemon->opt.threads, 3);
  assert_null (strstr (c.daemon_spec, "cache-block"));  /* an export's key */
  cli_config_free (&c);
}

static void
config_specs_are_equal_exactly_when_the_options_are (void **state)
{
  struct cli_config a, b, d;
  char *argv[] = { (char *) "sgblkd", (char *) "--config", (char *) "x", NULL };
  (void) state;

  /* The order of keys and sections, comments and spacing do not matter. */
  assert_int_equal (load (&a, "[x]\nsize = 8M\nread-only\n[y]\n", argv, 3), 0);
  assert_int_equal (load (&b, "# c\n[y]\n[x]\nread-only = yes\n  size=8M\n", argv, 3), 0);
  assert_int_equal (load (&d, "[x]\nsize = 8M\n[y]\n", argv, 3), 0);
  assert_string_equal (a.exports[0]->spec, b.exports[1]->spec);
  assert_string_equal (a.exports[1]->spec, b.exports[0]->spec);
  assert_string_not_equal (a.exports[0]->spec, d.exports[0]->spec);
  assert_string_equal (a.daemon_spec, d.daemon_spec);
  cli_config_free (&a);
  cli_config_free (&b);
  cli_config_free (&d);
}

static void
config_errors_name_the_line (void **state)
{
  struct cli_config c;
  char *argv[] = { (char *) "sgblkd", (char *) "--config", (char *) "x", NULL };
  (void) state;

  assert_int_equal (load (&c, "[a]\nsize = 8M\nbusy-poll = 3\n", argv, 3), -1);
  assert_int_equal (errno, EINVAL);
  assert_non_null (strstr (errbuf, ":3: 'busy-poll' applies to the whole daemon"));
  assert_int_equal (load (&c, "[a]\nsize = 8M\nsize = 0\n", argv, 3), -1);
  assert_non_null (strstr (errbuf, ":3: export 'a': size must not be zero"));
  assert_int_equal (load (&c, "[a]\ncreate\n", argv, 3), -1);
  assert_non_null (strstr (errbuf, ":2: export 'a': --create needs FILE"));
  assert_int_equal (load (&c, "\n", argv, 3), -1);
  assert_non_null (strstr (errbuf, "no exports"));
  assert_null (c.exports);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (no_arguments_give_a_1g_memory_disk_on_tcp_localhost),
    cmocka_unit_test (unix_socket_alone_opens_no_tcp_port),
    cmocka_unit_test (unix_and_tcp_can_be_given_together),
    cmocka_unit_test (size_suffixes_are_powers_of_1024),
    cmocka_unit_test (zero_size_is_refused),
    cmocka_unit_test (unparsable_size_is_refused),
    cmocka_unit_test (size_not_a_multiple_of_the_block_size_is_refused),
    cmocka_unit_test (block_size_other_than_512_or_4096_is_refused),
    cmocka_unit_test (unknown_options_are_named),
    cmocka_unit_test (missing_option_argument_is_named),
    cmocka_unit_test (bad_port_and_thread_counts_are_refused),
    cmocka_unit_test (size_with_file_needs_create),
    cmocka_unit_test (two_files_are_refused),
    cmocka_unit_test (memory_only_options_with_a_file_are_refused),
    cmocka_unit_test (cache_options_are_checked),
    cmocka_unit_test (fuse_alone_opens_no_tcp_port),
    cmocka_unit_test (conflicting_options_are_refused),
    cmocka_unit_test (unix_socket_paths_must_fit_sockaddr_un),
    cmocka_unit_test (fuse_export_names_must_be_file_names),
    cmocka_unit_test (memory_limits_must_hold_one_largest_request),
    cmocka_unit_test (swap_refuses_limits_above_the_machines_memory),
    cmocka_unit_test (stats_file_options_are_checked),
    cmocka_unit_test (help_and_version_stop_parsing),
    cmocka_unit_test (tls_options_go_together),
    cmocka_unit_test (help_text_lists_every_long_option),
    cmocka_unit_test (config_sections_override_the_command_line_which_overrides_sgblkd),
    cmocka_unit_test (config_specs_are_equal_exactly_when_the_options_are),
    cmocka_unit_test (config_errors_name_the_line),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
