/* cli: sgblkd's command line, parsed into a plain struct so that tests can
 * check every error path without starting a daemon. */
#ifndef SGBLK_CLI_H
#define SGBLK_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_UNIX 4
/* A Unix socket path fits sockaddr_un's 108 bytes with its NUL. */
#define CLI_MAX_UNIX_PATH 107
/* With --fuse the export name is a file name (NAME_MAX). */
#define CLI_MAX_FUSE_NAME 255
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)
/* The largest READ or WRITE payload under --swap (told to NBD clients):
 * what its fixed, preallocated vectors hold. */
#define CLI_SWAP_MAX_PAYLOAD (2u << 20)
/* Default --busy-poll: requests of a busy queue-depth-16 client come
 * tens of microseconds apart; an idle connection polls in vain about
 * twice this long (the window halves on each miss), then sleeps. */
#define CLI_BUSY_POLL_US 50
/* Default --recompress-idle: a block not written for a minute (a page
 * swapped out and not back in, a file at rest) is rarely written again
 * soon, and recompressing it costs about 30 us of a background core;
 * data being written keeps the fast compressor. */
#define CLI_RECOMPRESS_IDLE 60
/* Default --stats-interval: monitoring scrapes every 15 s or more; a
 * file rewritten every 5 s is at most a third of that old when read,
 * and writing a few kilobytes that often costs nothing. */
#define CLI_STATS_INTERVAL 5

/* --tls: NBD over TLS not offered, offered, or required (the values of
 * enum nbd_tls_mode). */
enum cli_tls { CLI_TLS_OFF, CLI_TLS_ON, CLI_TLS_REQUIRE };

struct cli_options {
  const char *file;            /* NULL: in-memory disk */
  uint64_t size;               /* -s: memory disk size, or --create size */
  bool create;
  const char *unix_paths[CLI_MAX_UNIX];
  unsigned nunix;
  int port;                    /* -1: no TCP listener */
  bool port_given;
  const char *bind;            /* default 127.0.0.1 */
  const char *export_name;     /* default "" */
  bool read_only;
  uint32_t block_size;         /* 512 or 4096 */
  unsigned threads;            /* 0 = number of CPUs */
  unsigned handshake_timeout;  /* seconds; 0 = NBD's default */
  unsigned busy_poll_us;       /* NBD sessions poll this long before sleeping; 0 = never */
  unsigned max_connections;    /* NBD connections at once; 0 = from the descriptor limit */
  unsigned idle_timeout;       /* seconds an idle NBD connection is kept; 0 = forever */
  bool foreground;
  const char *pidfile;
  int verbose;
  bool direct;                 /* O_DIRECT on the file store */
  uint64_t mem_limit;          /* 0 = none */
  uint64_t cache_size;         /* file store cache memory; default 256M */
  const char *cache_mode;      /* "writeback", "writethrough", "off" */
  uint32_t cache_block;        /* cache block bytes, 4K..64K, power of two */
  const char *fuse_mount;      /* --fuse: serve the export as a file here */
  const char *fuse_opts;       /* --fuse-opt: extra mount options */
  bool swap;                   /* --swap: safe to swap onto */
  unsigned recompress_idle;    /* seconds without a write before LZ4HC; 0 = never */
  const char *spill;           /* --spill: scratch file for cold blocks of the memory disk */
  const char *description;     /* --description: told to NBD clients (NBD_INFO_DESCRIPTION) */
  const char *config;          /* --config: exports from an INI file (config.c) */
  const char *stats_file;      /* --stats-file: Prometheus metrics rewritten here */
  unsigned stats_interval;     /* seconds between its rewrites */
  enum cli_tls tls;            /* --tls */
  const char *tls_certificates;  /* DIR of ca-cert.pem, server-cert.pem, server-key.pem */
  const char *tls_psk;         /* psktool key file */
  bool tls_verify_peer;        /* client certificates checked against the CA */
  unsigned store_timeout;      /* rbd: FILE request timeout, seconds; 0 = default */
  bool help, version;
};

/* Exit statuses. */
#define CLI_EXIT_OK      0
#define CLI_EXIT_RUNTIME 1
#define CLI_EXIT_USAGE   2

/* Parse argv.  Returns 0, or -1 after writing one line to err (the usage
 * error, prefixed with the program name). */
int cli_parse (int argc, char **argv, struct cli_options *o, FILE *err);
/* Options that cannot work on a machine with phys_bytes of memory (0:
 * unknown): a limit --swap would lock beyond it.  0, or -1 after one line
 * on err; the caller exits CLI_EXIT_RUNTIME. */
int cli_check_memory (const struct cli_options *o, uint64_t phys_bytes, FILE *err);
/* "4G", "512M", "1048576" ... (K/M/G/T, powers of 1024).  -1/EINVAL. */
int cli_parse_size (const char *s, uint64_t *out);
void cli_usage (FILE *f);

/* config.c: the exports of a configuration file (--config FILE).  An
 * export's options are the file's [sgblkd] section, then the command
 * line, then its own [NAME] section, a later one overriding an earlier
 * one key by key, checked by cli_parse as one command line. */
struct cli_export {
  struct cli_options opt;      /* points into argv_own's strings */
  char *name;                  /* its [NAME] */
  unsigned line;               /* where [NAME] is in the file */
  char *spec;                  /* its options, canonical: equal specs mean
                                * the export is served the same way */
  int argc;
  char **argv, **argv_own;
};
struct cli_config {
  struct cli_export **exports; /* in the file's order; a NULL entry was
                                * taken over by the caller */
  unsigned n;
  struct cli_export *daemon;   /* the daemon-wide options alone */
  char *daemon_spec;           /* ... canonical */
};
/* Read path with the command line argc/argv (which has --config).
 * 0, or -1 after one line on err naming the file and the line; errno is
 * EINVAL for what the file says (a usage error), or why it could not be
 * read. */
int cli_config_load (const char *path, int argc, char **argv,
                     struct cli_config *c, FILE *err);
void cli_config_free (struct cli_config *c);
void cli_export_free (struct cli_export *e);

#endif
