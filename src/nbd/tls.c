/* TLS for NBD (STARTTLS), and the connection's I/O layer.
 *
 * Credentials are loaded once, when the server is made: either X.509
 * from a directory holding server-cert.pem and server-key.pem, with
 * ca-cert.pem (needed to check client certificates, --tls-verify-peer)
 * and ca-crl.pem optional, or a PSK file in psktool's USER:HEXKEY
 * format.  Each file is opened and parsed here first, so that one that
 * cannot be used stops the daemon at start with its name, not a client
 * at its handshake.  Credentials and the priority cache are read-only
 * afterwards and shared by every session.
 *
 * A connection's session (c->tls) exists from a STARTTLS to the
 * connection's end.  GnuTLS lets one thread send and another receive on
 * it at once, which is the connection's shape: the session thread is
 * the only receiver, and whoever holds the connection's send_lock
 * (send.c) the only sender.  (A TLS 1.3 KeyUpdate that asks for an
 * answer would make the receiver send too; NBD clients do not ask.)
 * The transport functions below are plain
 * recv/sendmsg on the socket with per-direction flags, so that the
 * socket's timeouts (SO_RCVTIMEO: handshake and idle timeouts;
 * SO_SNDTIMEO: the send timeout) bound TLS exactly as they bound plain
 * I/O, and the busy poll's non-blocking receive works through TLS too:
 * a record that has arrived in part is kept by GnuTLS until the rest
 * comes.  Decrypted bytes GnuTLS holds are not visible to the socket:
 * nbd_io_pending says whether a receive can be served without it.
 *
 * A record cannot be taken back in part, so a TLS send never stops
 * half-way for a full socket: the non-blocking sends of workers and of
 * the session go ahead only when the socket's send buffer has room for
 * all of it, twice over (SIOCOUTQ against SO_SNDBUF); otherwise they fail
 * at once with EAGAIN, and send.c queues the reply for the connection's
 * sender thread, as it does when a plain socket is full.  So a client
 * that reads nothing still stalls only its own sender.  A reply's header
 * is corked into one record with the start of its data; the data goes
 * out in full records from the vector itself.  A send that times out
 * ends the session (the record stream cannot resume mid-record), which
 * the plain path does too.
 *
 * Without GnuTLS (configure --without-gnutls) the I/O layer is plain
 * and asking for TLS fails with ENOTSUP and a line naming the build
 * option.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_GNUTLS
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#endif

#include "internal.h"
#include "log.h"

#ifdef HAVE_GNUTLS

/* A full record's plaintext, and the most one send call encrypts (the
 * rest of a larger reply goes in the next call). */
#define TLS_RECORD 16384u
#define TLS_BATCH (1024u << 10)

/* The PSK ciphers are off in GnuTLS's NORMAL priority. */
#define PRIORITY_X509 "NORMAL"
#define PRIORITY_PSK "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK"

struct tls_creds {
  gnutls_certificate_credentials_t x509;   /* NULL with PSK */
  gnutls_psk_server_credentials_t psk;     /* NULL with X.509 */
  gnutls_priority_t priority;
  bool verify_peer;
};

#define WHY(...) (snprintf (why, whylen, __VA_ARGS__), -1)

/* path readable as a file: 0, or -1 with a line naming it. */
static int
check_file (const char *path, char *why, size_t whylen)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;

  if (fd == -1)
    return WHY ("%s: %s", path, strerror (errno));
  int r = fstat (fd, &st);
  close (fd);
  if (r == -1 || !S_ISREG (st.st_mode)) {
    errno = EINVAL;
    return WHY ("%s: not a regular file", path);
  }
  return 0;
}

/* A psktool key file: lines USER:HEXKEY, at least one. */
static int
check_psk_file (const char *path, char *why, size_t whylen)
{
  if (check_file (path, why, whylen) == -1)
    return -1;
  FILE *f = fopen (path, "re");
  if (f == NULL)
    return WHY ("%s: %s", path, strerror (errno));
  char line[1024];
  unsigned keys = 0, lineno = 0;
  bool bad = false;
  while (!bad && fgets (line, sizeof line, f)) {
    lineno++;
    line[strcspn (line, "\r\n")] = '\0';
    if (line[0] == '\0')
      continue;
    char *colon = strchr (line, ':');
    const char *hex = colon ? colon + 1 : "";
    size_t n = strlen (hex);
    bad = colon == NULL || colon == line || n == 0 || n % 2 ||
          strspn (hex, "0123456789abcdefABCDEF") != n;
    keys++;
  }
  fclose (f);
  errno = EINVAL;
  if (bad)
    return WHY ("%s: line %u is not USER:HEXKEY (make keys with psktool)", path, lineno);
  if (keys == 0)
    return WHY ("%s: holds no key (make keys with psktool)", path);
  return 0;
}

static void
creds_free (struct tls_creds *t)
{
  if (t == NULL)
    return;
  if (t->x509)
    gnutls_certificate_free_credentials (t->x509);
  if (t->psk)
    gnutls_psk_free_server_credentials (t->psk);
  if (t->priority)
    gnutls_priority_deinit (t->priority);
  free (t);
}

/* GnuTLS's errors become EINVAL for the caller: a file that cannot be used. */
#define GNUTLS_WHY(...) (errno = EINVAL, WHY (__VA_ARGS__))

/* The server certificate and key, parsed apart first so that an error
 * names the file it is in, then together (do they match?). */
static int
load_key_pair (struct tls_creds *t, const char *cert, const char *key,
               char *why, size_t whylen)
{
  gnutls_datum_t d = { NULL, 0 };
  int r;

  if (check_file (cert, why, whylen) == -1 || check_file (key, why, whylen) == -1)
    return -1;
  if ((r = gnutls_load_file (cert, &d)) < 0)
    return GNUTLS_WHY ("%s: %s", cert, gnutls_strerror (r));
  gnutls_x509_crt_t *crts = NULL;
  unsigned ncrts = 0;
  r = gnutls_x509_crt_list_import2 (&crts, &ncrts, &d, GNUTLS_X509_FMT_PEM, 0);
  gnutls_free (d.data);
  if (r < 0)
    return GNUTLS_WHY ("%s: not a PEM certificate: %s", cert, gnutls_strerror (r));
  for (unsigned i = 0; i < ncrts; i++)
    gnutls_x509_crt_deinit (crts[i]);
  gnutls_free (crts);

  if ((r = gnutls_load_file (key, &d)) < 0)
    return GNUTLS_WHY ("%s: %s", key, gnutls_strerror (r));
  gnutls_x509_privkey_t pk;
  if ((r = gnutls_x509_privkey_init (&pk)) == 0) {
    r = gnutls_x509_privkey_import2 (pk, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit (pk);
  }
  gnutls_free (d.data);
  if (r < 0)
    return GNUTLS_WHY ("%s: not a PEM private key: %s", key, gnutls_strerror (r));

  r = gnutls_certificate_set_x509_key_file (t->x509, cert, key, GNUTLS_X509_FMT_PEM);
  if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
    return GNUTLS_WHY ("%s: not the key of the certificate %s", key, cert);
  if (r < 0)
    return GNUTLS_WHY ("%s with %s: %s", cert, key, gnutls_strerror (r));
  return 0;
}

static int
load_x509 (struct tls_creds *t, const char *dir, bool verify_peer, char *why, size_t whylen)
{
  char ca[4096], crl[4096], cert[4096], key[4096];
  struct stat st;
  int r;

  if (stat (dir, &st) == -1)
    return WHY ("%s: %s", dir, strerror (errno));
  if (!S_ISDIR (st.st_mode)) {
    errno = ENOTDIR;
    return WHY ("%s: not a directory (of ca-cert.pem, server-cert.pem, server-key.pem)", dir);
  }
  if ((size_t) snprintf (ca, sizeof ca, "%s/ca-cert.pem", dir) >= sizeof ca) {
    errno = ENAMETOOLONG;
    return WHY ("%s: %s", dir, strerror (errno));
  }
  snprintf (crl, sizeof crl, "%s/ca-crl.pem", dir);
  snprintf (cert, sizeof cert, "%s/server-cert.pem", dir);
  snprintf (key, sizeof key, "%s/server-key.pem", dir);

  if ((r = gnutls_certificate_allocate_credentials (&t->x509)) < 0)
    return GNUTLS_WHY ("TLS: %s", gnutls_strerror (r));
  /* The CA checks client certificates: needed for that alone. */
  if (verify_peer || access (ca, F_OK) == 0) {
    if (check_file (ca, why, whylen) == -1)
      return -1;
    r = gnutls_certificate_set_x509_trust_file (t->x509, ca, GNUTLS_X509_FMT_PEM);
    if (r < 0)
      return GNUTLS_WHY ("%s: %s", ca, gnutls_strerror (r));
    if (r == 0)
      return GNUTLS_WHY ("%s: holds no certificate", ca);
  }
  if (access (crl, F_OK) == 0) {
    if (check_file (crl, why, whylen) == -1)
      return -1;
    r = gnutls_certificate_set_x509_crl_file (t->x509, crl, GNUTLS_X509_FMT_PEM);
    if (r < 0)
      return GNUTLS_WHY ("%s: %s", crl, gnutls_strerror (r));
  }
  return load_key_pair (t, cert, key, why, whylen);
}

int
nbd_tls_load (struct nbd_server *s, char *why, size_t whylen)
{
  const struct nbd_server_config *cfg = &s->cfg;
  struct tls_creds *t;
  const char *err_pos;
  int r;

  if (cfg->tls == NBD_TLS_OFF)
    return 0;
  if ((cfg->tls_certificates == NULL) == (cfg->tls_psk == NULL) ||
      (cfg->tls_verify_peer && cfg->tls_certificates == NULL)) {
    errno = EINVAL;
    return WHY ("TLS needs either certificates or a PSK file (and client "
                "certificates are verified only with certificates)");
  }
  if ((t = calloc (1, sizeof *t)) == NULL)
    return WHY ("TLS: %s", strerror (errno));
  t->verify_peer = cfg->tls_verify_peer;
  if (cfg->tls_psk) {
    if (check_psk_file (cfg->tls_psk, why, whylen) == -1)
      goto fail;
    if ((r = gnutls_psk_allocate_server_credentials (&t->psk)) < 0 ||
        (r = gnutls_psk_set_server_credentials_file (t->psk, cfg->tls_psk)) < 0) {
      (void) GNUTLS_WHY ("%s: %s", cfg->tls_psk, gnutls_strerror (r));
      goto fail;
    }
  }
  else if (load_x509 (t, cfg->tls_certificates, cfg->tls_verify_peer, why, whylen) == -1)
    goto fail;
  r = gnutls_priority_init (&t->priority, t->psk ? PRIORITY_PSK : PRIORITY_X509, &err_pos);
  if (r < 0) {
    (void) GNUTLS_WHY ("TLS priorities: %s", gnutls_strerror (r));
    goto fail;
  }
  s->tls_creds = t;
  return 0;
 fail: {
    int e = errno;
    creds_free (t);
    errno = e;
    return -1;
  }
}

void
nbd_tls_free (struct nbd_server *s)
{
  creds_free (s->tls_creds);
  s->tls_creds = NULL;
}

/* Transport: the socket, with each direction's flags. */
static ssize_t
pull (gnutls_transport_ptr_t p, void *buf, size_t n)
{
  struct nbd_conn *c = p;
  return recv (c->fd, buf, n, c->tls_rx_flags);
}

/* GnuTLS waits for data here while a handshake timeout is set. */
static int
pull_timeout (gnutls_transport_ptr_t p, unsigned ms)
{
  struct nbd_conn *c = p;
  struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
  int r;

  do
    r = poll (&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int) ms);
  while (r == -1 && errno == EINTR);
  return r;
}

static ssize_t
vec_push (gnutls_transport_ptr_t p, const giovec_t *iov, int cnt)
{
  struct nbd_conn *c = p;
  /* giovec_t is struct iovec's layout (GnuTLS documents it so). */
  struct msghdr m = { .msg_iov = (struct iovec *) (uintptr_t) iov, .msg_iovlen = (size_t) cnt };
  ssize_t r = sendmsg (c->fd, &m, MSG_NOSIGNAL | c->tls_tx_flags);

  if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
      !(c->tls_tx_flags & MSG_DONTWAIT)) {
    /* SO_SNDTIMEO passed: fatal for GnuTLS, which would retry EAGAIN. */
    c->tls_tx_timeout = true;
    errno = ETIMEDOUT;
  }
  return r;
}

static ssize_t
push (gnutls_transport_ptr_t p, const void *buf, size_t n)
{
  giovec_t v = { (void *) (uintptr_t) buf, n };
  return vec_push (p, &v, 1);
}

/* Why a handshake failed, for the one log line. */
static void
handshake_why (struct nbd_conn *c, gnutls_session_t s, int r, char *why, size_t whylen)
{
  switch (r) {
  case GNUTLS_E_AGAIN:
  case GNUTLS_E_TIMEDOUT:
    snprintf (why, whylen, "TLS handshake: the client stalled for %u s",
              c->srv->cfg.handshake_timeout);
    return;
  case GNUTLS_E_PREMATURE_TERMINATION:
  case GNUTLS_E_PULL_ERROR:
  case GNUTLS_E_PUSH_ERROR:
    snprintf (why, whylen, "TLS handshake: the client closed the connection");
    return;
  case GNUTLS_E_FATAL_ALERT_RECEIVED:
    snprintf (why, whylen, "TLS handshake: the client refused it (alert: %s)",
              gnutls_alert_get_name (gnutls_alert_get (s)));
    return;
  case GNUTLS_E_NO_CERTIFICATE_FOUND:
#ifdef GNUTLS_E_CERTIFICATE_REQUIRED
  case GNUTLS_E_CERTIFICATE_REQUIRED:
#endif
    /* Clients send only a certificate of a CA the server names: one
     * signed by another CA ends here too. */
    snprintf (why, whylen, "TLS handshake: the client sent no certificate signed by "
              "the trusted CA, and client certificates are required");
    return;
  case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR: {
    gnutls_datum_t out = { NULL, 0 };
    unsigned st = gnutls_session_get_verify_cert_status (s);
    if (gnutls_certificate_verification_status_print (st, GNUTLS_CRT_X509, &out, 0) < 0)
      out.data = NULL;
    snprintf (why, whylen, "TLS handshake: the client's certificate is refused: %s",
              out.data ? (const char *) out.data : "not trusted");
    gnutls_free (out.data);
    return;
  }
  case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
  case GNUTLS_E_DECRYPTION_FAILED:
  case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
    if (((struct tls_creds *) c->srv->tls_creds)->psk) {
      /* A wrong key shows only as a binder or record that fails. */
      snprintf (why, whylen, "TLS handshake: the client's pre-shared key is wrong "
                "or its user unknown (%s)", gnutls_strerror (r));
      return;
    }
    /* fall through */
  default:
    snprintf (why, whylen, "TLS handshake: %s", gnutls_strerror (r));
  }
}

int
nbd_tls_handshake (struct nbd_conn *c, char *why, size_t whylen)
{
  struct tls_creds *t = c->srv->tls_creds;
  gnutls_session_t s;
  int r;

  if ((r = gnutls_init (&s, GNUTLS_SERVER)) < 0)
    return WHY ("cannot start TLS: %s", gnutls_strerror (r));
  c->tls = s;                           /* freed with the connection */
  if ((r = gnutls_priority_set (s, t->priority)) < 0 ||
      (r = t->psk ? gnutls_credentials_set (s, GNUTLS_CRD_PSK, t->psk)
                  : gnutls_credentials_set (s, GNUTLS_CRD_CERTIFICATE, t->x509)) < 0)
    return WHY ("cannot start TLS: %s", gnutls_strerror (r));
  if (t->verify_peer) {
    gnutls_certificate_server_set_request (s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert (s, NULL, 0);
  }
  gnutls_transport_set_ptr (s, c);
  gnutls_transport_set_pull_function (s, pull);
  gnutls_transport_set_pull_timeout_function (s, pull_timeout);
  gnutls_transport_set_push_function (s, push);
  gnutls_transport_set_vec_push_function (s, vec_push);
  /* The whole handshake, not just each silence (SO_RCVTIMEO), is
   * bounded: a client that trickles cannot hold the session. */
  gnutls_handshake_set_timeout (s, c->srv->cfg.handshake_timeout * 1000u);
  c->tls_rx_flags = c->tls_tx_flags = 0;
  do
    r = gnutls_handshake (s);
  while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal (r));
  if (r < 0) {
    handshake_why (c, s, r, why, whylen);
    errno = EPROTO;
    return -1;
  }
  char *desc = gnutls_session_get_desc (s);
  const char *user = t->psk ? gnutls_psk_server_get_username (s) : NULL;
  log_debug ("%s: TLS %s%s%s", c->peer, desc ? desc : "",
             user ? " for PSK user " : "", user ? user : "");
  gnutls_free (desc);
  return 0;
}

void
nbd_tls_end (struct nbd_conn *c)
{
  if (c->tls) {
    gnutls_deinit (c->tls);
    c->tls = NULL;
  }
}

/* A GnuTLS receive's result as recv's. */
static ssize_t
rx_result (ssize_t r)
{
  if (r >= 0)
    return r;
  switch (r) {
  case GNUTLS_E_AGAIN:
    errno = EAGAIN;
    break;
  case GNUTLS_E_INTERRUPTED:
    errno = EINTR;
    break;
  case GNUTLS_E_PREMATURE_TERMINATION:
    return 0;                           /* closed without close_notify: an end */
  default:
    errno = ECONNRESET;                 /* a broken or forged record */
  }
  return -1;
}

ssize_t
nbd_io_recv (struct nbd_conn *c, void *buf, size_t n, bool nowait)
{
  if (c->tls == NULL)
    return recv (c->fd, buf, n, nowait ? MSG_DONTWAIT : 0);
  c->tls_rx_flags = nowait ? MSG_DONTWAIT : 0;
  return rx_result (gnutls_record_recv (c->tls, buf, n));
}

ssize_t
nbd_io_readv (struct nbd_conn *c, const struct iovec *iov, int cnt)
{
  if (c->tls == NULL)
    return readv (c->fd, iov, cnt);
  /* The first segment waits; the next ones take only what is decrypted. */
  c->tls_rx_flags = 0;
  ssize_t total = 0;
  for (int i = 0; i < cnt; i++) {
    ssize_t r = gnutls_record_recv (c->tls, iov[i].iov_base, iov[i].iov_len);
    if (r <= 0)
      return total ? total : rx_result (r);
    total += r;
    if ((size_t) r < iov[i].iov_len || gnutls_record_check_pending (c->tls) == 0)
      break;
  }
  return total;
}

/* Does the socket have room for n bytes of records now?  Records add
 * 22 to 29 bytes each, and the kernel counts its buffers' overhead in
 * the send buffer too: ask for twice the room. */
static bool
room_for (struct nbd_conn *c, size_t n)
{
  int queued;

  if (c->tls_sndbuf == 0) {
    socklen_t l = sizeof c->tls_sndbuf;
    if (getsockopt (c->fd, SOL_SOCKET, SO_SNDBUF, &c->tls_sndbuf, &l) == -1)
      c->tls_sndbuf = -1;
  }
  if (c->tls_sndbuf <= 0 || ioctl (c->fd, SIOCOUTQ, &queued) == -1)
    return false;
  size_t records = n / TLS_RECORD + 1;
  return (size_t) c->tls_sndbuf > (size_t) queued + 2 * (n + 64 * records);
}

/* Send all of p's n bytes as records; 0, or -1 (see sendv_error). */
static int
send_all (gnutls_session_t s, const uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t r = gnutls_record_send (s, p, n);
    if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN)
      r = gnutls_record_send (s, NULL, 0);    /* the same record, again */
    if (r < 0)
      return -1;
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

ssize_t
nbd_io_sendv (struct nbd_conn *c, const struct iovec *iov, int cnt, bool nowait)
{
  if (c->tls == NULL) {
    struct msghdr m = { .msg_iov = (struct iovec *) (uintptr_t) iov, .msg_iovlen = (size_t) cnt };
    return sendmsg (c->fd, &m, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
  }
  size_t want = 0;
  for (int i = 0; i < cnt && want < TLS_BATCH; i++)
    want += iov[i].iov_len;
  if (want > TLS_BATCH)
    want = TLS_BATCH;
  /* Without waiting only when the socket surely takes it all (top of
   * file); else the sender thread's job. */
  if (nowait && !room_for (c, want)) {
    errno = EAGAIN;
    return -1;
  }
  gnutls_session_t s = c->tls;
  size_t total = 0, in_cork = 0;
  bool corked = false;
  int r = 0;
  c->tls_tx_flags = 0;
  c->tls_tx_timeout = false;
  /* Small pieces (a reply's header) are corked into one record with what
   * follows; data goes out in full records straight from the vector. */
  for (int i = 0; i < cnt && total < want && r == 0; i++) {
    const uint8_t *p = iov[i].iov_base;
    size_t n = iov[i].iov_len < want - total ? iov[i].iov_len : want - total;
    total += n;
    if (in_cork + n < TLS_RECORD) {
      if (!corked)
        gnutls_record_cork (s);
      corked = true;
      in_cork += n;
      r = send_all (s, p, n);
      continue;
    }
    if (corked) {                       /* complete the record, send it */
      size_t fill = TLS_RECORD - in_cork;
      r = send_all (s, p, fill);
      p += fill;
      n -= fill;
      corked = false;
      in_cork = 0;
      if (r == 0 && gnutls_record_uncork (s, GNUTLS_RECORD_WAIT) < 0)
        r = -1;
    }
    if (r == 0)
      r = send_all (s, p, n);
  }
  if (corked && gnutls_record_uncork (s, GNUTLS_RECORD_WAIT) < 0)
    r = -1;
  if (r < 0) {
    errno = c->tls_tx_timeout ? EAGAIN : EPIPE;
    return -1;
  }
  return (ssize_t) total;
}

size_t
nbd_io_pending (struct nbd_conn *c)
{
  return c->tls ? gnutls_record_check_pending (c->tls) : 0;
}

#else /* !HAVE_GNUTLS */

int
nbd_tls_load (struct nbd_server *s, char *why, size_t whylen)
{
  if (s->cfg.tls == NBD_TLS_OFF)
    return 0;
  snprintf (why, whylen, "TLS: this sgblkd was built without GnuTLS "
            "(install GnuTLS and configure --with-gnutls)");
  errno = ENOTSUP;
  return -1;
}

void
nbd_tls_free (struct nbd_server *s)
{
}

int
nbd_tls_handshake (struct nbd_conn *c, char *why, size_t whylen)
{
  snprintf (why, whylen, "TLS is not built in");
  errno = ENOTSUP;
  return -1;
}

void
nbd_tls_end (struct nbd_conn *c)
{
}

ssize_t
nbd_io_recv (struct nbd_conn *c, void *buf, size_t n, bool nowait)
{
  return recv (c->fd, buf, n, nowait ? MSG_DONTWAIT : 0);
}

ssize_t
nbd_io_readv (struct nbd_conn *c, const struct iovec *iov, int cnt)
{
  return readv (c->fd, iov, cnt);
}

ssize_t
nbd_io_sendv (struct nbd_conn *c, const struct iovec *iov, int cnt, bool nowait)
{
  struct msghdr m = { .msg_iov = (struct iovec *) (uintptr_t) iov, .msg_iovlen = (size_t) cnt };
  return sendmsg (c->fd, &m, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
}

size_t
nbd_io_pending (struct nbd_conn *c)
{
  return 0;
}

#endif /* HAVE_GNUTLS */
