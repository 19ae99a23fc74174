/* Connections the server will not serve: answered in the protocol, then
 * closed.
 *
 * A client over the connection limit (or arriving while the server stops)
 * gets the greeting, and then an NBD_REP_ERR_POLICY reply to each option
 * it sends, with a message that says why; NBD_OPT_ABORT gets its ACK and
 * NBD_OPT_EXPORT_NAME, which has no error reply, a close.  So nbdinfo,
 * qemu and nbd-client print the reason instead of a reset connection.
 * The acceptor thread answers them itself, polling their sockets beside
 * the listeners, without a thread or a blocking call for any of them:
 * each socket has NBD_REFUSE_TIMEOUT seconds, and at most NBD_REFUSE_MAX
 * are answered at once.  Beyond that, and when the process is out of
 * descriptors (the acceptor gives up its spare descriptor to accept, and
 * takes it back at once), a client gets the greeting and a close.
 *
 * State of a refused socket, read in order: the client's 4 flag bytes,
 * then per option a 16-byte header and its payload (skipped).  Refusals
 * are counted, and logged at most once per NBD_REFUSE_LOG_S seconds with
 * the number since the last line.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sync.h"

#define NBD_REFUSE_LOG_S 10
#define OPT_SKIP_MAX (1u << 20)         /* a larger option is not read */

static void
note (struct nbd_server *s, const char *why)
{
  uint64_t now = sync_now_ns ();

  NSTAT_INC (s, refused);
  s->refused_unlogged++;
  if (s->refused_logged_ns == 0 ||
      now - s->refused_logged_ns >= NBD_REFUSE_LOG_S * UINT64_C (1000000000)) {
    log_warn ("refusing new connections: %s (%" PRIu64 " refused since the last "
              "such line)", why, s->refused_unlogged);
    s->refused_logged_ns = now;
    s->refused_unlogged = 0;
  }
}

static void
drop (struct nbd_server *s, unsigned i)
{
  close (s->refused[i].fd);
  s->refused[i] = s->refused[--s->nrefused];
}

void
nbd_refuse (struct nbd_server *s, int fd, const char *why, bool answer_options)
{
  uint8_t g[NBD_GREETING_SIZE];

  note (s, why);
  nbd_encode_greeting (g);
  /* A new socket's send buffer always takes 18 bytes. */
  if (send (fd, g, sizeof g, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t) sizeof g ||
      !answer_options || s->nrefused == NBD_REFUSE_MAX) {
    close (fd);
    return;
  }
  struct nbd_refused *r = &s->refused[s->nrefused++];
  *r = (struct nbd_refused) {
    .fd = fd,
    .deadline_ns = sync_now_ns () + NBD_REFUSE_TIMEOUT * UINT64_C (1000000000),
  };
  snprintf (r->why, sizeof r->why, "%s", why);
}

/* The option in r->hdr is read: answer it.  False to close. */
static bool
answer (struct nbd_refused *r)
{
  uint8_t h[NBD_OPT_REPLY_SIZE];
  size_t n = strlen (r->why);

  if (r->opt == NBD_OPT_EXPORT_NAME)
    return false;
  nbd_encode_opt_reply (h, r->opt, r->opt == NBD_OPT_ABORT ? NBD_REP_ACK : NBD_REP_ERR_POLICY,
                        r->opt == NBD_OPT_ABORT ? 0 : (uint32_t) n);
  struct iovec iov[2] = { { h, sizeof h }, { r->why, n } };
  struct msghdr m = { .msg_iov = iov, .msg_iovlen = r->opt == NBD_OPT_ABORT ? 1 : 2 };
  ssize_t want = (ssize_t) (sizeof h + (r->opt == NBD_OPT_ABORT ? 0 : n));
  if (sendmsg (r->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) != want)
    return false;
  return r->opt != NBD_OPT_ABORT;
}

/* Read what the socket holds.  False to close. */
static bool
readable (struct nbd_refused *r)
{
  for (;;) {
    uint8_t buf[512];
    size_t want = r->skip ? (r->skip < sizeof buf ? r->skip : sizeof buf)
                          : (r->flags_read ? 16 : 4) - r->have;
    ssize_t got = recv (r->fd, r->skip ? buf : r->hdr + r->have, want, MSG_DONTWAIT);
    if (got == -1 && (errno == EAGAIN || errno == EINTR))
      return true;
    if (got <= 0)
      return false;                     /* the client went away */
    if (r->skip) {
      r->skip -= (uint32_t) got;
      if (r->skip == 0 && !answer (r))
        return false;
      continue;
    }
    r->have += (unsigned) got;
    if (!r->flags_read) {
      if (r->have == 4) {
        r->flags_read = true;
        r->have = 0;
      }
      continue;
    }
    if (r->have < 16)
      continue;
    r->have = 0;
    if (be_get64 (r->hdr) != NBD_IHAVEOPT)
      return false;
    r->opt = be_get32 (r->hdr + 8);
    r->skip = be_get32 (r->hdr + 12);
    if (r->skip > OPT_SKIP_MAX)
      return false;
    if (r->skip == 0 && !answer (r))
      return false;
  }
}

unsigned
nbd_refuse_poll (struct nbd_server *s, struct pollfd *pfd, int *timeout_ms)
{
  uint64_t now = sync_now_ns ();

  *timeout_ms = -1;
  for (unsigned i = 0; i < s->nrefused; ) {
    if (s->refused[i].deadline_ns <= now) {
      drop (s, i);
      continue;
    }
    int ms = (int) ((s->refused[i].deadline_ns - now) / 1000000u) + 1;
    if (*timeout_ms == -1 || ms < *timeout_ms)
      *timeout_ms = ms;
    pfd[i] = (struct pollfd) { .fd = s->refused[i].fd, .events = POLLIN };
    i++;
  }
  return s->nrefused;
}

void
nbd_refuse_events (struct nbd_server *s, const struct pollfd *pfd)
{
  /* Sockets close from the end, so indexes below stay in step with pfd. */
  for (unsigned i = s->nrefused; i-- > 0; )
    if (pfd[i].revents && !readable (&s->refused[i]))
      drop (s, i);
}

void
nbd_refuse_close_all (struct nbd_server *s)
{
  while (s->nrefused > 0)
    drop (s, s->nrefused - 1);
}
