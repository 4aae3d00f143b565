/* test_tcprelay.c: the loopback TCP relay (daemon/kafka/tcprelay.h): bytes arrive intact and in
 * order both ways, 4 MiB through one connection (more than its buffers and the sockets' hold, so
 * the writer has to wait for the reader), two connections at once, a close on one side closes
 * the other, a target that refuses closes the client, and a taken port is refused. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "daemon/kafka/tcprelay.h"
#include "nn/base/tc_err.h"

#define BIG (4 << 20)

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr = {.s_addr = htonl(INADDR_LOOPBACK)}};
  return sin;
}

/* A listening socket on a free loopback port; its port in *port. */
static int listener(int *port) {
  struct sockaddr_in sin = loopback(0);
  socklen_t len = sizeof sin;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
    return -1;
  *port = ntohs(sin.sin_port);
  return fd;
}

static int dial(int port) {
  struct sockaddr_in sin = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads exactly n bytes; returns how many arrived before EOF or an error. */
static size_t read_full(int fd, unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

static unsigned char pattern(size_t i) {
  return (unsigned char)(i * 131 + (i >> 13));
}

static void *write_big(void *arg) {
  int fd = *(int *)arg;
  unsigned char *buf = malloc(BIG);
  for (size_t i = 0; i < BIG; i++)
    buf[i] = pattern(i);
  for (size_t off = 0; off < BIG;) {
    ssize_t w = write(fd, buf + off, BIG - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  free(buf);
  return NULL;
}

int main(void) {
  char err[256];
  int tport = 0, lfd = listener(&tport);
  CHECK(lfd >= 0);
  tcprelay *r;
  CHECK_INT(tcprelay_start(&r, 0, tport, err, sizeof err), 0);
  int port = tcprelay_port(r);
  CHECK(port > 0 && port != tport);

  /* Both ways, in order. */
  int c = dial(port);
  CHECK(c >= 0);
  int s = accept(lfd, NULL, NULL);
  CHECK(s >= 0);
  unsigned char buf[64];
  CHECK_INT(write(c, "ping", 4), 4);
  CHECK_INT(read_full(s, buf, 4), 4);
  CHECK(memcmp(buf, "ping", 4) == 0);
  CHECK_INT(write(s, "pong!", 5), 5);
  CHECK_INT(read_full(c, buf, 5), 5);
  CHECK(memcmp(buf, "pong!", 5) == 0);

  /* A second connection at the same time is its own pair. */
  int c2 = dial(port);
  CHECK(c2 >= 0);
  int s2 = accept(lfd, NULL, NULL);
  CHECK(s2 >= 0);
  CHECK_INT(write(c2, "two", 3), 3);
  CHECK_INT(write(c, "one", 3), 3);
  CHECK_INT(read_full(s2, buf, 3), 3);
  CHECK(memcmp(buf, "two", 3) == 0);
  CHECK_INT(read_full(s, buf, 3), 3);
  CHECK(memcmp(buf, "one", 3) == 0);

  /* 4 MiB from the client while the target reads: every byte, in order. */
  pthread_t w;
  pthread_create(&w, NULL, write_big, &c);
  unsigned char *big = malloc(BIG);
  CHECK_INT(read_full(s, big, BIG), BIG);
  pthread_join(w, NULL);
  size_t bad = 0;
  for (size_t i = 0; i < BIG; i++)
    bad += big[i] != pattern(i);
  CHECK_INT(bad, 0);
  free(big);

  /* The client closes: the target sees EOF; the other pair still works. */
  close(c);
  CHECK_INT(read_full(s, buf, 1), 0);
  CHECK_INT(write(s2, "still", 5), 5);
  CHECK_INT(read_full(c2, buf, 5), 5);
  CHECK(memcmp(buf, "still", 5) == 0);
  /* The target closes: the client sees EOF. */
  close(s2);
  CHECK_INT(read_full(c2, buf, 1), 0);
  close(c2);
  close(s);

  /* A taken port is refused, and says so. */
  tcprelay *r2 = NULL;
  CHECK_INT(tcprelay_start(&r2, port, tport, err, sizeof err), TC_EBUSY);
  CHECK(r2 == NULL);
  char want[64];
  snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: Address already in use", port);
  CHECK_STR(err, want);
  tcprelay_stop(r);

  /* Nothing listens at the target: the relay closes the client. */
  close(lfd);
  CHECK_INT(tcprelay_start(&r, 0, tport, err, sizeof err), 0);
  c = dial(tcprelay_port(r));
  CHECK(c >= 0);
  CHECK_INT(read_full(c, buf, 1), 0);
  close(c);
  tcprelay_stop(r);
  tcprelay_stop(NULL);
  return check_done();
}
