/* nbd: the NBD front-end (fixed newstyle handshake, transmission phase).
 *
 * A server owns listening sockets, the connections accepted on them and a
 * pool of worker threads shared by every connection (of which one
 * export's requests hold all but one at most, if there are several
 * exports).  Each request becomes
 * a SCSI command taken from its export's command pool, with its payload in
 * an sgv vector, executed by scsi_exec in a worker; the reply is sent from
 * the same vector with writev.  Replies go out in completion order.
 *
 * Disconnect cleanup of a connection (clean NBD_CMD_DISC, lost socket, or
 * server stop), in this order and bounded: stop reading; complete or abort
 * every command in flight; flush the export's store and its sgv pool; check
 * that every command and vector the connection took is back; free it.
 */
#ifndef SGBLK_NBD_H
#define SGBLK_NBD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blkio.h"
#include "scsi.h"
#include "sgv.h"

#define NBD_DEFAULT_PORT 10809
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)

struct nbd_export {
  const char *name;          /* "" for the default export */
  const char *description;   /* may be NULL */
  struct scsi_lu *lu;
  struct scsi_cmd_pool *cmds;
  struct sgv_pool *sgv;
  struct blkio *io;          /* the unit's block-I/O seam, shared with FUSE */
  bool read_only;
  /* Largest READ or WRITE payload, told to clients in NBD_INFO_BLOCK_SIZE;
   * 0 means NBD_MAX_PAYLOAD.  Swap mode lowers it to what its fixed
   * vectors hold. */
  uint32_t max_payload;
  /* The server's (server.c), under its export lock: */
  unsigned users;            /* connections on it, and handshakes that
                              * are answering about it */
  bool listed;               /* in the server's table: clients may pick it */
  /* The server's (workq.c), under its queue lock: how many workers run
   * one of its requests now.  At most all but one when the server has
   * more than one export, so that a store that stalls leaves a worker
   * to the others.  Zero it with the rest of the struct. */
  unsigned busy;
  /* Connections that reached transmission on this export: the server's
   * to count (relaxed atomics), anyone's to read (nbd_export_get_stats).
   * Zero it with the rest of the struct. */
  struct {
    atomic_uint_fast64_t total, open;
  } conns;
};

struct nbd_export_stats {
  uint64_t connections_total, connections_open;
};
void nbd_export_get_stats (const struct nbd_export *e, struct nbd_export_stats *st);

/* The export's largest payload. */
static inline uint32_t
nbd_export_max_payload (const struct nbd_export *e)
{
  return e->max_payload ? e->max_payload : NBD_MAX_PAYLOAD;
}

/* TLS (src/nbd/tls.c): not offered, offered (STARTTLS), or required
 * before anything but STARTTLS and ABORT. */
enum nbd_tls_mode { NBD_TLS_OFF, NBD_TLS_ON, NBD_TLS_REQUIRE };

struct nbd_server_config {
  unsigned threads;          /* workers shared by all connections; 0 = CPUs */
  unsigned handshake_timeout;  /* seconds a client may be silent before
                                * transmission; 0 = NBD_HANDSHAKE_TIMEOUT */
  unsigned busy_poll_us;       /* microseconds a session polls for its next
                                * request before it sleeps; 0 = never */
  unsigned max_connections;    /* served at once; 0 = from RLIMIT_NOFILE
                                * (server.c) */
  unsigned idle_timeout;       /* seconds a connection with nothing in flight
                                * may send nothing; 0 = forever */
  bool ready_sessions;         /* sessions ready their thread for I/O before
                                * transmission (swap mode) */
  struct nbd_export *exports;  /* the exports at start (more may come:
                               * nbd_server_add_export) */
  unsigned nexports;
  /* TLS: with tls on or require, exactly one of certificates (a directory
   * holding ca-cert.pem, server-cert.pem, server-key.pem and optionally
   * ca-crl.pem) and psk (a psktool key file).  Loaded once, by
   * nbd_server_create. */
  enum nbd_tls_mode tls;
  const char *tls_certificates;
  const char *tls_psk;
  bool tls_verify_peer;        /* require client certificates signed by the CA */
};

struct nbd_server_stats {
  uint64_t connections_total, connections_open;
  uint64_t requests, errors, bytes_read, bytes_written;
  uint64_t handshake_failures;
  uint64_t cleanup_stuck;    /* cleanups that ended on lack of progress */
  uint64_t refused;          /* connections refused (limit, descriptors) */
  uint64_t idle_closed;      /* connections closed by the idle timeout */
  uint64_t max_connections;  /* the limit in force */
};

struct nbd_server;
struct nbd_server *nbd_server_create (const struct nbd_server_config *cfg);
/* Why the last nbd_server_create of this thread failed, when errno does
 * not say it all (a TLS file that cannot be used, named); else NULL. */
const char *nbd_server_error (void);
/* Listen on a Unix socket.  A path held by a live listener fails with
 * EADDRINUSE (never stolen); a stale socket file is removed first. */
int nbd_server_listen_unix (struct nbd_server *s, const char *path);
/* Listen on TCP; EADDRINUSE if the port is taken. */
int nbd_server_listen_tcp (struct nbd_server *s, const char *addr, int port);
/* Listen on an inherited socket (socket activation), which the server
 * then owns and closes; ENOTSOCK, EPROTOTYPE (not a Unix or TCP stream
 * socket) or EINVAL (not listening) otherwise, and fd stays the
 * caller's.  A Unix socket's path is not unlinked at exit: its maker's. */
int nbd_server_listen_fd (struct nbd_server *s, int fd);
/* Serve an already connected socket (tests use a socketpair). */
int nbd_server_add_connection (struct nbd_server *s, int fd);
/* The export table can change while serving.  Add an export: clients
 * may pick it from now on.  EEXIST if one of that name is listed;
 * EINVAL if the server has started and e's largest payload is above
 * what the server was started for. */
int nbd_server_add_export (struct nbd_server *s, struct nbd_export *e);
/* Take e off the list: new clients no longer find it (NBD_OPT_LIST,
 * INFO, GO, EXPORT_NAME); its connections carry on. */
void nbd_server_remove_export (struct nbd_server *s, struct nbd_export *e);
/* Forget a removed export once nothing uses it: 0, and the server holds
 * no pointer to e any more (e may be freed); -1/EBUSY while connections
 * are still on it, or for a moment after the last one, while a worker
 * finishes with its last request.  The connections' number in *users,
 * if not NULL. */
int nbd_server_release_export (struct nbd_server *s, struct nbd_export *e,
                               unsigned *users);
/* Start workers and acceptors; returns at once. */
int nbd_server_start (struct nbd_server *s);
/* Stop accepting, stop reading, finish in-flight commands, run each
 * connection's cleanup, flush.  Blocks until done.  Idempotent. */
int nbd_server_stop (struct nbd_server *s);
void nbd_server_get_stats (struct nbd_server *s, struct nbd_server_stats *st);
/* Its listening sockets: bound, or passed by systemd. */
unsigned nbd_server_listeners (const struct nbd_server *s);
/* After stop: close listeners (unlinking Unix sockets) and free. */
void nbd_server_destroy (struct nbd_server *s);

#endif
