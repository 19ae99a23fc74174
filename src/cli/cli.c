/* cli: parse sgblkd's command line into struct cli_options.
 *
 * Parsing only checks what can be checked without touching the system
 * (syntax, ranges, combinations, and memory limits too small for one
 * request of the largest size served); whether FILE exists or a socket is
 * free is found out by main at start-up and reported as a runtime error.
 * Every usage error is one line on 'err' and a return of -1: the caller
 * exits 2.  cli_check_memory weighs the options against one fact of the
 * machine, its memory, which main passes in, so that it stays pure too.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cli.h"
#include "internal.h"
#include "nbd.h"

/* Long-only options get values above the char range. */
enum {
  OPT_CREATE = 0x100,
  OPT_DIRECT,
  OPT_MEM_LIMIT,
  OPT_CACHE_SIZE,
  OPT_CACHE_MODE,
  OPT_CACHE_BLOCK,
  OPT_FUSE,
  OPT_FUSE_OPT,
  OPT_SWAP,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_BUSY_POLL,
  OPT_RECOMPRESS_IDLE,
  OPT_SPILL,
  OPT_MAX_CONNECTIONS,
  OPT_IDLE_TIMEOUT,
  OPT_DESCRIPTION,
  OPT_CONFIG,
  OPT_STATS_FILE,
  OPT_STATS_INTERVAL,
  OPT_TLS,
  OPT_TLS_CERTIFICATES,
  OPT_TLS_PSK,
  OPT_TLS_VERIFY_PEER,
  OPT_STORE_TIMEOUT,
};

const char cli_short_opts[] = "s:U:p:b:e:rB:t:fP:vVh";
const struct option cli_long_opts[] = {
  { "size",        required_argument, NULL, 's' },
  { "create",      no_argument,       NULL, OPT_CREATE },
  { "unix",        required_argument, NULL, 'U' },
  { "port",        required_argument, NULL, 'p' },
  { "bind",        required_argument, NULL, 'b' },
  { "export-name", required_argument, NULL, 'e' },
  { "read-only",   no_argument,       NULL, 'r' },
  { "block-size",  required_argument, NULL, 'B' },
  { "threads",     required_argument, NULL, 't' },
  { "direct",      no_argument,       NULL, OPT_DIRECT },
  { "mem-limit",   required_argument, NULL, OPT_MEM_LIMIT },
  { "cache-size",  required_argument, NULL, OPT_CACHE_SIZE },
  { "cache-mode",  required_argument, NULL, OPT_CACHE_MODE },
  { "cache-block", required_argument, NULL, OPT_CACHE_BLOCK },
  { "fuse",        required_argument, NULL, OPT_FUSE },
  { "fuse-opt",    required_argument, NULL, OPT_FUSE_OPT },
  { "swap",        no_argument,       NULL, OPT_SWAP },
  { "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
  { "busy-poll",   required_argument, NULL, OPT_BUSY_POLL },
  { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
  { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
  { "recompress-idle", required_argument, NULL, OPT_RECOMPRESS_IDLE },
  { "spill",       required_argument, NULL, OPT_SPILL },
  { "description", required_argument, NULL, OPT_DESCRIPTION },
  { "config",      required_argument, NULL, OPT_CONFIG },
  { "stats-file",  required_argument, NULL, OPT_STATS_FILE },
  { "stats-interval", required_argument, NULL, OPT_STATS_INTERVAL },
  { "tls",         required_argument, NULL, OPT_TLS },
  { "tls-certificates", required_argument, NULL, OPT_TLS_CERTIFICATES },
  { "tls-psk",     required_argument, NULL, OPT_TLS_PSK },
  { "tls-verify-peer", no_argument,   NULL, OPT_TLS_VERIFY_PEER },
  { "store-timeout", required_argument, NULL, OPT_STORE_TIMEOUT },
  { "foreground",  no_argument,       NULL, 'f' },
  { "pidfile",     required_argument, NULL, 'P' },
  { "verbose",     no_argument,       NULL, 'v' },
  { "version",     no_argument,       NULL, 'V' },
  { "help",        no_argument,       NULL, 'h' },
  { NULL, 0, NULL, 0 }
};

#define DEFAULT_MEMORY_SIZE (UINT64_C (1) << 30)

void
cli_usage (FILE *f)
{
  fputs (
"Usage: sgblkd [OPTIONS] [FILE]\n"
"Serve FILE (a regular file or block device), or an in-memory disk, over NBD.\n"
"FILE may be a Ceph RBD image, rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME]\n"
"[:keyring=PATH] (qemu's syntax; a snapshot needs --read-only).\n"
"\n"
"Disk:\n"
"  -s, --size SIZE         in-memory disk size, or the size for --create\n"
"                          (K/M/G/T suffixes; default 1G without FILE)\n"
"      --create            create FILE with --size if it does not exist\n"
"      --direct            open FILE with O_DIRECT\n"
"      --mem-limit SIZE    cap the memory an in-memory disk may use\n"
"                          (at least 33M, 3M with --swap: one largest request)\n"
"      --cache-size SIZE   memory for FILE's compressed cache (default 256M;\n"
"                          the same minimum)\n"
"      --cache-mode MODE   writeback, writethrough or off (default writeback)\n"
"      --cache-block SIZE  cache block, 4K to 64K, a power of two (default 4K)\n"
"      --store-timeout SECONDS\n"
"                          rbd: FILE: fail a request the cluster has not\n"
"                          answered for this long with EIO (default 60);\n"
"                          bounds opening (twice) and closing the image\n"
"      --recompress-idle SECONDS\n"
"                          recompress blocks not written for this long with\n"
"                          LZ4HC in the background; 0 never (default 60)\n"
"      --spill FILE        in-memory disk: move cold blocks to the scratch\n"
"                          file FILE when memory passes 90% of --mem-limit\n"
"  -r, --read-only         refuse writes (NBD EPERM, SCSI write protect);\n"
"                          not with --create\n"
"  -B, --block-size N      logical block size, 512 or 4096 (default 512)\n"
"      --description TEXT  the export's description, told to NBD clients\n"
"                          (default: FILE, or \"sgblk in-memory disk\")\n"
"\n"
"Listening (default: TCP 127.0.0.1:10809, unless only --fuse is given):\n"
"  -U, --unix PATH         listen on a Unix socket (may be repeated)\n"
"  -p, --port PORT         listen on TCP port PORT (default 10809)\n"
"  -b, --bind ADDR         TCP address to bind (default 127.0.0.1)\n"
"  -e, --export-name NAME  export name (default \"\")\n"
"      --fuse MOUNTPOINT   also serve the disk as the file MOUNTPOINT/disk\n"
"                          (MOUNTPOINT/NAME with -e NAME, which must then be\n"
"                          a file name) on a FUSE mount\n"
"      --fuse-opt OPTS     extra FUSE mount options, e.g. allow_other\n"
"\n"
"TLS for NBD (STARTTLS):\n"
"      --tls MODE          off, on (offered) or require (default off)\n"
"      --tls-certificates DIR\n"
"                          X.509: DIR/server-cert.pem, DIR/server-key.pem and\n"
"                          DIR/ca-cert.pem (for --tls-verify-peer)\n"
"      --tls-psk FILE      pre-shared keys in psktool's format (USER:HEXKEY);\n"
"                          not with --tls-certificates\n"
"      --tls-verify-peer   require client certificates signed by the CA\n"
"\n"
"Daemon:\n"
"      --config FILE       serve the exports of the INI file FILE, one [NAME]\n"
"                          section each (keys: these long option names);\n"
"                          options given here apply to every export unless\n"
"                          its section sets them; SIGHUP reloads FILE\n"
"  -t, --threads N         I/O worker threads (default: number of CPUs)\n"
"      --handshake-timeout SECONDS\n"
"                          drop a client whose handshake is not done this\n"
"                          long after it connected (default 30)\n"
"      --max-connections N NBD connections served at once; more are refused\n"
"                          (default: what the descriptor limit allows)\n"
"      --idle-timeout SECONDS\n"
"                          close an NBD connection with nothing in flight\n"
"                          that sent nothing for this long; 0 never (default)\n"
"      --busy-poll MICROSECONDS\n"
"                          how long a busy NBD connection polls for its next\n"
"                          request before sleeping; 0 never (default 50)\n"
"      --swap              safe to swap onto: lock memory, mark I/O threads\n"
"                          as I/O flushers, never OOM-kill, preallocate pools,\n"
"                          take cache memory from a locked reserve (--mem-limit\n"
"                          caps it, by default at half of RAM or the disk\n"
"                          size); no allocation on the I/O path\n"
"  -f, --foreground        stay in the foreground, log to stderr\n"
"  -P, --pidfile PATH      write the daemon's PID to PATH\n"
"      --stats-file PATH   keep counters in PATH in Prometheus text format\n"
"                          (for node_exporter's textfile collector: name it\n"
"                          *.prom); removed at exit\n"
"      --stats-interval SECONDS\n"
"                          rewrite --stats-file this often (default 5)\n"
"  -v, --verbose           log per-connection detail\n"
"  -V, --version           print the version and exit\n"
"  -h, --help              print this help and exit\n"
"\n"
"Signals: SIGTERM/SIGINT finish in-flight I/O, flush and exit 0;\n"
"SIGUSR1 logs pool and I/O counters (and rewrites --stats-file);\n"
"SIGHUP reloads --config FILE.\n", f);
}

int
cli_parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (s == NULL || *s < '0' || *s > '9')
    goto bad;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno != 0)
    goto bad;
  switch (*end) {
  case '\0':               break;
  case 'k': case 'K':      shift = 10; end++; break;
  case 'm': case 'M':      shift = 20; end++; break;
  case 'g': case 'G':      shift = 30; end++; break;
  case 't': case 'T':      shift = 40; end++; break;
  default:                 goto bad;
  }
  /* Accept "4G", "4GiB" and "4GB" alike; anything else is a typo. */
  if (shift && (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0))
    end += strlen (end);
  if (*end != '\0')
    goto bad;
  if (shift && v > (UINT64_MAX >> shift)) {
    errno = ERANGE;
    return -1;
  }
  *out = (uint64_t) v << shift;
  return 0;
 bad:
  errno = EINVAL;
  return -1;
}

static int
parse_uint (const char *s, unsigned long min, unsigned long max,
            unsigned long *out)
{
  char *end;
  unsigned long v;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoul (s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

#define USAGE(...) do {                                         \
    fprintf (err, "%s: ", prog);                                \
    fprintf (err, __VA_ARGS__);                                 \
    fputc ('\n', err);                                          \
    return -1;                                                  \
  } while (0)

/* The largest request a client may send: the NBD export's limit (FUSE's
 * 1 MiB is below both), never more than the disk when its size is known
 * here (the in-memory disk, or FILE made by --create). */
static uint64_t
largest_request (const struct cli_options *o)
{
  uint64_t r = o->swap ? CLI_SWAP_MAX_PAYLOAD : NBD_MAX_PAYLOAD;
  if ((o->file == NULL || o->create) && o->size < r)
    r = o->size;
  return r;
}

/* The memory limit that applies, and the option that set it: the cache
 * size with FILE (none with --cache-mode off), --mem-limit without. */
static uint64_t
memory_limit (const struct cli_options *o, const char **name)
{
  if (o->file) {
    *name = "--cache-size";
    return strcmp (o->cache_mode, "off") == 0 ? 0 : o->cache_size;
  }
  *name = "--mem-limit";
  return o->mem_limit;
}

/* An export name that names the FUSE file: the file MOUNTPOINT/NAME. */
static const char *
fuse_name_problem (const char *name)
{
  if (strchr (name, '/'))
    return "contains '/'";
  if (strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return "is '.' or '..'";
  if (strlen (name) > CLI_MAX_FUSE_NAME)
    return "is longer than " CLI_STR (CLI_MAX_FUSE_NAME) " bytes";
  return NULL;
}

/* The TLS options together: --tls on or require with one kind of
 * credentials, and credentials only with it (unlike nbdkit, which
 * ignores them with TLS off: a key given for nothing is a mistake). */
static int
cli_check_tls (const struct cli_options *o, FILE *err)
{
  const char *prog = "sgblkd";

  if (o->tls_certificates && o->tls_psk)
    USAGE ("--tls-certificates and --tls-psk cannot be used together: give one");
  if (o->tls == CLI_TLS_OFF) {
    if (o->tls_certificates || o->tls_psk || o->tls_verify_peer)
      USAGE ("%s needs --tls=on or --tls=require",
             o->tls_certificates ? "--tls-certificates" :
             o->tls_psk ? "--tls-psk" : "--tls-verify-peer");
    return 0;
  }
  if (!o->tls_certificates && !o->tls_psk)
    USAGE ("--tls=%s needs --tls-certificates DIR or --tls-psk FILE",
           o->tls == CLI_TLS_ON ? "on" : "require");
  if (o->tls_verify_peer && !o->tls_certificates)
    USAGE ("--tls-verify-peer needs --tls-certificates (client certificates are "
           "checked against its ca-cert.pem)");
  return 0;
}

int
cli_parse (int argc, char **argv, struct cli_options *o, FILE *err)
{
  const char *prog = "sgblkd";
  const char *size_arg = NULL;
  unsigned long v;
  bool bind_given = false, export_given = false;
  bool cache_size_given = false, cache_mode_given = false;
  bool cache_block_given = false, recompress_given = false;
  const char *limit_arg = NULL;
  int c;

  memset (o, 0, sizeof *o);
  o->port = -1;
  o->bind = "127.0.0.1";
  o->export_name = "";
  o->block_size = 512;
  o->cache_size = UINT64_C (256) << 20;
  o->cache_mode = "writeback";
  o->cache_block = 4096;
  o->busy_poll_us = CLI_BUSY_POLL_US;
  o->recompress_idle = CLI_RECOMPRESS_IDLE;
  o->stats_interval = CLI_STATS_INTERVAL;
  bool stats_interval_given = false;

  optind = 0;           /* 0 resets GNU getopt fully, so tests may call twice */
  opterr = 0;           /* we word the errors ourselves */
  while ((c = getopt_long (argc, argv, cli_short_opts, cli_long_opts, NULL)) != -1) {
    switch (c) {
    case 's':
      size_arg = optarg;
      if (cli_parse_size (optarg, &o->size) == -1)
        USAGE ("invalid size '%s' (use a number with an optional K, M, G or T suffix)", optarg);
      if (o->size == 0)
        USAGE ("size must not be zero");
      break;
    case OPT_CREATE: o->create = true; break;
    case 'U':
      if (o->nunix == CLI_MAX_UNIX)
        USAGE ("at most %d Unix sockets", CLI_MAX_UNIX);
      if (*optarg == '\0')
        USAGE ("empty Unix socket path");
      if (strlen (optarg) > CLI_MAX_UNIX_PATH)
        USAGE ("Unix socket path '%s' is longer than %d bytes", optarg, CLI_MAX_UNIX_PATH);
      for (unsigned i = 0; i < o->nunix; i++)
        if (strcmp (o->unix_paths[i], optarg) == 0)
          USAGE ("Unix socket '%s' given twice", optarg);
      o->unix_paths[o->nunix++] = optarg;
      break;
    case 'p':
      if (parse_uint (optarg, 1, 65535, &v) == -1)
        USAGE ("invalid port '%s' (1-65535)", optarg);
      o->port = (int) v;
      o->port_given = true;
      break;
    case 'b':
      if (*optarg == '\0')
        USAGE ("empty bind address");
      o->bind = optarg;
      bind_given = true;
      break;
    case 'e':
      if (strlen (optarg) > 4096)
        USAGE ("export name longer than 4096 bytes");
      o->export_name = optarg;
      export_given = true;
      break;
    case 'r': o->read_only = true; break;
    case 'B':
      if (parse_uint (optarg, 1, 65536, &v) == -1 || (v != 512 && v != 4096))
        USAGE ("invalid block size '%s' (512 or 4096)", optarg);
      o->block_size = (uint32_t) v;
      break;
    case 't':
      if (parse_uint (optarg, 1, 1024, &v) == -1)
        USAGE ("invalid thread count '%s' (1-1024)", optarg);
      o->threads = (unsigned) v;
      break;
    case OPT_DIRECT: o->direct = true; break;
    case OPT_MEM_LIMIT:
      if (cli_parse_size (optarg, &o->mem_limit) == -1 || o->mem_limit == 0)
        USAGE ("invalid memory limit '%s'", optarg);
      limit_arg = optarg;
      break;
    case OPT_CACHE_SIZE:
      if (cli_parse_size (optarg, &o->cache_size) == -1 || o->cache_size == 0)
        USAGE ("invalid cache size '%s'", optarg);
      cache_size_given = true;
      limit_arg = optarg;
      break;
    case OPT_CACHE_MODE:
      if (strcmp (optarg, "writeback") && strcmp (optarg, "writethrough") &&
          strcmp (optarg, "off"))
        USAGE ("invalid cache mode '%s' (writeback, writethrough or off)", optarg);
      o->cache_mode = optarg;
      cache_mode_given = true;
      break;
    case OPT_CACHE_BLOCK: {
      uint64_t b;
      if (cli_parse_size (optarg, &b) == -1 || b < 4096 || b > 65536 ||
          (b & (b - 1)) != 0)
        USAGE ("invalid cache block '%s' (4K, 8K, 16K, 32K or 64K)", optarg);
      o->cache_block = (uint32_t) b;
      cache_block_given = true;
      break;
    }
    case OPT_FUSE:
      if (*optarg == '\0')
        USAGE ("empty FUSE mount point");
      o->fuse_mount = optarg;
      break;
    case OPT_FUSE_OPT:
      if (*optarg == '\0')
        USAGE ("empty FUSE mount options");
      o->fuse_opts = optarg;
      break;
    case OPT_SWAP: o->swap = true; break;
    case OPT_HANDSHAKE_TIMEOUT:
      if (parse_uint (optarg, 1, 86400, &v) == -1)
        USAGE ("invalid handshake timeout '%s' (1-86400 seconds)", optarg);
      o->handshake_timeout = (unsigned) v;
      break;
    case OPT_MAX_CONNECTIONS:
      if (parse_uint (optarg, 1, 1000000, &v) == -1)
        USAGE ("invalid connection limit '%s' (1-1000000)", optarg);
      o->max_connections = (unsigned) v;
      break;
    case OPT_IDLE_TIMEOUT:
      if (parse_uint (optarg, 0, 86400, &v) == -1)
        USAGE ("invalid idle timeout '%s' (0-86400 seconds)", optarg);
      o->idle_timeout = (unsigned) v;
      break;
    case OPT_BUSY_POLL:
      if (parse_uint (optarg, 0, 1000000, &v) == -1)
        USAGE ("invalid busy-poll time '%s' (0-1000000 microseconds)", optarg);
      o->busy_poll_us = (unsigned) v;
      break;
    case OPT_RECOMPRESS_IDLE:
      if (parse_uint (optarg, 0, 32767, &v) == -1)
        USAGE ("invalid idle time '%s' (0-32767 seconds)", optarg);
      o->recompress_idle = (unsigned) v;
      recompress_given = true;
      break;
    case OPT_SPILL:
      if (*optarg == '\0')
        USAGE ("empty spill file name");
      o->spill = optarg;
      break;
    case OPT_DESCRIPTION:
      if (strlen (optarg) > 4096)
        USAGE ("description longer than 4096 bytes");
      o->description = optarg;
      break;
    case OPT_CONFIG:
      if (*optarg == '\0')
        USAGE ("empty configuration file name");
      o->config = optarg;
      break;
    case OPT_STATS_FILE:
      if (*optarg == '\0')
        USAGE ("empty stats file name");
      o->stats_file = optarg;
      break;
    case OPT_STATS_INTERVAL:
      if (parse_uint (optarg, 1, 3600, &v) == -1)
        USAGE ("invalid stats interval '%s' (1-3600 seconds)", optarg);
      o->stats_interval = (unsigned) v;
      stats_interval_given = true;
      break;
    case OPT_TLS:
      if (strcmp (optarg, "off") == 0) o->tls = CLI_TLS_OFF;
      else if (strcmp (optarg, "on") == 0) o->tls = CLI_TLS_ON;
      else if (strcmp (optarg, "require") == 0) o->tls = CLI_TLS_REQUIRE;
      else
        USAGE ("invalid --tls '%s' (off, on or require)", optarg);
      break;
    case OPT_TLS_CERTIFICATES:
      if (*optarg == '\0')
        USAGE ("empty TLS certificates directory");
      o->tls_certificates = optarg;
      break;
    case OPT_TLS_PSK:
      if (*optarg == '\0')
        USAGE ("empty TLS PSK file name");
      o->tls_psk = optarg;
      break;
    case OPT_TLS_VERIFY_PEER: o->tls_verify_peer = true; break;
    case OPT_STORE_TIMEOUT:
      if (parse_uint (optarg, 1, 86400, &v) == -1)
        USAGE ("invalid store timeout '%s' (1-86400 seconds)", optarg);
      o->store_timeout = (unsigned) v;
      break;
    case 'f': o->foreground = true; break;
    case 'P':
      if (*optarg == '\0')
        USAGE ("empty pidfile name");
      o->pidfile = optarg;
      break;
    case 'v': o->verbose++; break;
    case 'V': o->version = true; break;
    case 'h': o->help = true; break;
    case '?':
      /* optopt is 0 for an unknown long option, the option's value when
       * an argument is missing, and the character for an unknown short. */
      if (optopt == 0)
        USAGE ("unknown option '%s'", argv[optind - 1]);
      if (optopt >= 0x100 || strchr (cli_short_opts, optopt))
        USAGE ("option '%s' needs an argument", argv[optind - 1]);
      USAGE ("unknown option '-%c'", optopt);
    default:
      USAGE ("unexpected option");
    }
  }
  if (o->help || o->version)
    return 0;

  if (optind < argc)
    o->file = argv[optind++];
  if (optind < argc)
    USAGE ("unexpected argument '%s' (only one FILE)", argv[optind]);
  /* With --config the exports come from the file; each one's options,
   * these merged in, are checked as a whole there (config.c). */
  if (o->config) {
    if (o->file)
      USAGE ("FILE with --config: give each export's file in its section");
    if (export_given)
      USAGE ("--export-name with --config: each section of the file is an export, named by its [NAME]");
    return 0;
  }

  if (o->store_timeout && !store_rbd_is_spec (o->file))
    USAGE ("--store-timeout applies to an rbd: FILE");
  if (store_rbd_is_spec (o->file) && (o->create || o->direct))
    USAGE ("%s with an rbd: FILE: %s", o->create ? "--create" : "--direct",
           o->create ? "create the image with rbd create" : "it applies to local files");
  if (o->file) {
    if (size_arg && !o->create)
      USAGE ("--size with FILE only sets the size for --create");
    if (o->create && !size_arg)
      USAGE ("--create needs --size");
    if (o->create && o->read_only)
      USAGE ("--read-only and --create conflict: a new disk that refuses writes can never hold data");
    if (o->mem_limit)
      USAGE ("--mem-limit applies to the in-memory disk, not to FILE (use --cache-size)");
    if (o->spill)
      USAGE ("--spill applies to the in-memory disk; with FILE, cold blocks are already in FILE");
    if (strcmp (o->cache_mode, "off") == 0) {
      if (cache_size_given)
        USAGE ("--cache-size with --cache-mode off: there is no cache to size");
      if (cache_block_given)
        USAGE ("--cache-block with --cache-mode off: there is no cache");
      if (recompress_given)
        USAGE ("--recompress-idle with --cache-mode off: there is no cache to recompress");
    }
  }
  else {
    if (o->create)
      USAGE ("--create needs FILE");
    if (o->direct)
      USAGE ("--direct needs FILE");
    if (cache_size_given || cache_mode_given)
      USAGE ("--cache-size and --cache-mode need FILE (the in-memory disk is the cache)");
    if (!size_arg)
      o->size = DEFAULT_MEMORY_SIZE;
  }
  if ((o->file == NULL || o->create) && o->size % o->block_size != 0)
    USAGE ("size %" PRIu64 " is not a multiple of the block size %" PRIu32,
           o->size, o->block_size);

  if (o->fuse_opts && !o->fuse_mount)
    USAGE ("--fuse-opt needs --fuse");
  if (stats_interval_given && !o->stats_file)
    USAGE ("--stats-interval needs --stats-file");
  const char *why;
  if (o->fuse_mount && (why = fuse_name_problem (o->export_name)) != NULL)
    USAGE ("export name '%s' %s: with --fuse it is the file's name in the mount point",
           o->export_name, why);

  if (cli_check_tls (o, err) == -1)
    return -1;

  const char *limit_opt;
  uint64_t limit = memory_limit (o, &limit_opt), request = largest_request (o);
  uint64_t min = cache_min_mem_limit (o->cache_block, request);
  if (limit && limit < min)
    USAGE ("%s %s is too small: one %" PRIu64 "-byte request of incompressible data "
           "takes %" PRIu64 " bytes in %" PRIu32 "-byte cache blocks (give at least %" PRIu64 "M)",
           limit_opt, limit_arg ? limit_arg : "", request, min, o->cache_block,
           (min + (UINT64_C (1) << 20) - 1) >> 20);
  /* TCP unless only Unix sockets or only FUSE were asked for. */
  if (!o->port_given && ((o->nunix == 0 && !o->fuse_mount) || bind_given))
    o->port = 10809;
  return 0;
}

int
cli_check_memory (const struct cli_options *o, uint64_t phys_bytes, FILE *err)
{
  const char *prog = "sgblkd", *name;
  uint64_t limit = memory_limit (o, &name);

  /* --swap locks what the disk or cache holds, up to the limit: more
   * than the machine has can only end with the OOM killer. */
  if (o->swap && phys_bytes && limit > phys_bytes) {
    fprintf (err, "%s: %s of %" PRIu64 " MiB with --swap is more than this machine's %" PRIu64
             " MiB of memory, and --swap locks it\n", prog, name, limit >> 20, phys_bytes >> 20);
    return -1;
  }
  return 0;
}
