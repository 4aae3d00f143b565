/* tcprelay.c: a loopback TCP relay on one poll() thread (see tcprelay.h). Each connection pair
 * has one buffer per direction: a side is read only when the buffer for its direction is empty,
 * and written while the buffer for the other direction holds bytes, so a slow reader holds back
 * its writer instead of growing memory. */
#include "daemon/kafka/tcprelay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

#define RELAY_BUF 16384 /* bytes in flight per direction of a connection */

/* One relayed connection: fd[0] the accepted client, fd[1] our connection to the target.
 * buf[d] holds bytes read from fd[d] that fd[!d] has not taken yet: [off[d], len[d]). */
typedef struct {
  int fd[2];
  size_t off[2], len[2];
  unsigned char buf[2][RELAY_BUF];
} relay_pair;

struct tcprelay {
  int lfd;               /* listening socket, non-blocking */
  int port;              /* the port lfd listens on */
  int wake[2];           /* pipe: a byte on wake[1] stops the thread */
  struct sockaddr_in to; /* 127.0.0.1:to_port */
  pthread_t thread;      /* runs relay_main */
  int running;           /* thread started (so stop joins it) */
  relay_pair *pairs;     /* the connections, npairs of cap */
  size_t npairs, cap;    /* (grown by accept_one) */
  struct pollfd *pfd;    /* 2 + 2 * cap entries: wake, lfd, then both fds of each pair */
};

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr = {.s_addr = htonl(INADDR_LOOPBACK)}};
  return sin;
}

static void pair_close(tcprelay *r, size_t i) {
  close(r->pairs[i].fd[0]);
  close(r->pairs[i].fd[1]);
  r->pairs[i] = r->pairs[--r->npairs];
}

/* Accepts one waiting connection and connects it to the target; a connection that cannot be
 * relayed is closed (its client sees the close) and logged. */
static void accept_one(tcprelay *r) {
  int c = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0)
    return; /* EAGAIN: another wake-up took it; anything else: the client is gone */
  if (r->npairs == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 8;
    relay_pair *p = realloc(r->pairs, cap * sizeof *p);
    struct pollfd *f = p ? realloc(r->pfd, (2 + 2 * cap) * sizeof *f) : NULL;
    if (p)
      r->pairs = p;
    if (!f) {
      log_warn("relay", "out of memory for connection %zu: closing it", r->npairs + 1);
      close(c);
      return;
    }
    r->pfd = f;
    r->cap = cap;
  }
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (t < 0 || connect(t, (struct sockaddr *)&r->to, sizeof r->to) < 0 ||
      fcntl(t, F_SETFL, O_NONBLOCK) < 0) {
    log_warn("relay", "cannot connect to 127.0.0.1:%d: %s", ntohs(r->to.sin_port), strerror(errno));
    if (t >= 0)
      close(t);
    close(c);
    return;
  }
  relay_pair *p = &r->pairs[r->npairs++];
  p->fd[0] = c;
  p->fd[1] = t;
  p->off[0] = p->off[1] = p->len[0] = p->len[1] = 0;
}

/* Moves bytes from fd[d] to fd[!d]: reads when buf[d] is empty, then writes what it holds until
 * the writer would block. Returns -1 when the connection is over (a close or an error). */
static int pump(relay_pair *p, int d) {
  if (p->len[d] == 0) {
    ssize_t n = read(p->fd[d], p->buf[d], RELAY_BUF);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return -1;
    p->off[d] = 0;
    p->len[d] = n > 0 ? (size_t)n : 0;
  }
  while (p->off[d] < p->len[d]) {
    ssize_t w = send(p->fd[!d], p->buf[d] + p->off[d], p->len[d] - p->off[d], MSG_NOSIGNAL);
    if (w < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    p->off[d] += (size_t)w;
  }
  p->off[d] = p->len[d] = 0;
  return 0;
}

/* Fills r->pfd for the next poll; returns the number of entries. */
static nfds_t poll_set(tcprelay *r) {
  r->pfd[0] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
  r->pfd[1] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
  for (size_t i = 0; i < r->npairs; i++)
    for (int d = 0; d < 2; d++) {
      relay_pair *p = &r->pairs[i];
      short ev = (p->len[d] == 0 ? POLLIN : 0) | (p->len[!d] > 0 ? POLLOUT : 0);
      r->pfd[2 + 2 * i + d] = (struct pollfd){.fd = p->fd[d], .events = ev};
    }
  return 2 + 2 * r->npairs;
}

/* Serves the pairs whose sockets poll reported, last first, so that closing one (which moves the
 * last pair into its place) leaves the ones still to serve where poll_set put them. */
static void pairs_serve(tcprelay *r) {
  for (size_t i = r->npairs; i-- > 0;) {
    short ev = r->pfd[2 + 2 * i].revents | r->pfd[3 + 2 * i].revents;
    if (!ev)
      continue;
    /* POLLHUP or POLLERR: a reset or a broken socket, nothing more will get through. */
    if ((ev & (POLLHUP | POLLERR)) || pump(&r->pairs[i], 0) < 0 || pump(&r->pairs[i], 1) < 0)
      pair_close(r, i);
  }
}

static void *relay_main(void *arg) {
  tcprelay *r = arg;
  for (;;) {
    nfds_t nfds = poll_set(r);
    if (poll(r->pfd, nfds, -1) < 0) {
      if (errno == EINTR)
        continue;
      log_error("relay", "poll: %s: relay stopped", strerror(errno));
      break;
    }
    if (r->pfd[0].revents)
      break;
    pairs_serve(r);
    if (r->pfd[1].revents)
      accept_one(r);
  }
  return NULL;
}

/* Opens r->lfd on 127.0.0.1:port; 0 or a TC_E* code with err. */
static int listen_open(tcprelay *r, int port, char *err, size_t errlen) {
  struct sockaddr_in sin = loopback(port);
  socklen_t len = sizeof sin;
  int one = 1;
  r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->lfd < 0 || setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(r->lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(r->lfd, 64) < 0 ||
      getsockname(r->lfd, (struct sockaddr *)&sin, &len) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%d: %s", port, strerror(e));
    return e == EADDRINUSE ? TC_EBUSY : TC_EIO;
  }
  r->port = ntohs(sin.sin_port);
  return 0;
}

int tcprelay_start(tcprelay **out, int port, int to_port, char *err, size_t errlen) {
  *out = NULL;
  tcprelay *r = calloc(1, sizeof *r);
  if (!r || !(r->pfd = malloc(2 * sizeof *r->pfd))) {
    free(r);
    snprintf(err, errlen, "relay: out of memory");
    return TC_ENOMEM;
  }
  r->lfd = r->wake[0] = r->wake[1] = -1;
  r->to = loopback(to_port);
  int rc = listen_open(r, port, err, errlen);
  if (rc < 0)
    goto fail;
  rc = TC_EIO;
  if (pipe2(r->wake, O_CLOEXEC) < 0) {
    snprintf(err, errlen, "relay: pipe: %s", strerror(errno));
    goto fail;
  }
  int e = pthread_create(&r->thread, NULL, relay_main, r);
  if (e) {
    snprintf(err, errlen, "relay: cannot start its thread: %s", strerror(e));
    goto fail;
  }
  r->running = 1;
  *out = r;
  return 0;
fail:
  tcprelay_stop(r);
  return rc;
}

int tcprelay_port(const tcprelay *r) {
  return r->port;
}

void tcprelay_stop(tcprelay *r) {
  if (!r)
    return;
  if (r->running) {
    while (write(r->wake[1], "x", 1) < 0 && errno == EINTR)
      ;
    pthread_join(r->thread, NULL);
  }
  while (r->npairs)
    pair_close(r, r->npairs - 1);
  for (int i = 0; i < 2; i++)
    if (r->wake[i] >= 0)
      close(r->wake[i]);
  if (r->lfd >= 0)
    close(r->lfd);
  free(r->pairs);
  free(r->pfd);
  free(r);
}
