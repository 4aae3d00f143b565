/* http.c: libmicrohttpd driven by the libuv loop (see http.h). MHD is started with MHD_USE_EPOLL
 * and no internal thread; its epoll fd becomes readable whenever any of its sockets needs service,
 * so one uv_poll on that fd plus a timer for MHD's own timeouts is the whole integration. We bind
 * the listening socket ourselves so that "port in use" becomes one clear error line.
 * Slow or idle clients cannot make the probes unreachable: a request must arrive whole within
 * HTTP_REQUEST_MS of its connection (or of the previous response on it), and when more than
 * HTTP_CONN_MAX connections are open a new one evicts the least recently served; both cut a
 * connection by shutting its socket down, which MHD then closes. Once, 64 connections that sent a
 * byte every 5 s (MHD's timeout counts from the last byte) kept /healthz unreachable for good.
 * libmicrohttpd is loaded with dlopen when the daemon starts serving (http_lib_load), not linked:
 * its TLS chain (GnuTLS and 8 more libraries) took about 5 ms of every command's start, and only
 * `run` serves HTTP. */
#include "daemon/loop/http.h"

#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

/* The library's file: its ABI has kept this soname since 0.9.x (2014). */
#define HTTP_MHD_SONAME "libmicrohttpd.so.12"
#define HTTP_CONN_MAX 32     /* connections kept open at once */
#define HTTP_MHD_LIMIT 256   /* MHD's own limit: above ours, so a new connection gets in */
#define HTTP_REQUEST_MS 3000 /* a whole request within this, from connect or the last response */
#define HTTP_REAP_MS 250     /* how often slow connections are looked for */

/* One open connection, in the server's list from least to most recently served. */
typedef struct http_conn {
  struct http_conn *prev, *next;
  struct MHD_Connection *c;
  uint64_t since; /* uv_now() at connect or at its last response */
  int cut;        /* its socket was shut down; MHD closes it */
} http_conn;

struct http_srv {
  struct MHD_Daemon *d; /* the MHD daemon, external event loop mode */
  uv_loop_t *loop;      /* for uv_now() */
  uv_poll_t poll;       /* watches MHD's epoll fd */
  uv_timer_t timer;     /* fires at MHD's next timeout */
  uv_timer_t reaper;    /* cuts connections past HTTP_REQUEST_MS */
  int closing;          /* handles still to close */
  int port;             /* bound port */
  http_conn *head;      /* least recently served */
  http_conn *tail;      /* most recently served */
  int nconn;            /* connections open */
  http_handler h;
  void *ud;
};

/* The functions of libmicrohttpd this file calls, from http_lib_load. */
static struct {
  void *lib;
  __typeof__(MHD_start_daemon) *start_daemon;
  __typeof__(MHD_stop_daemon) *stop_daemon;
  __typeof__(MHD_run) *run;
  __typeof__(MHD_get_timeout) *get_timeout;
  __typeof__(MHD_get_daemon_info) *get_daemon_info;
  __typeof__(MHD_get_connection_info) *get_connection_info;
  __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
  __typeof__(MHD_add_response_header) *add_response_header;
  __typeof__(MHD_queue_response) *queue_response;
  __typeof__(MHD_destroy_response) *destroy_response;
} mhd;

int http_lib_load(char *err, size_t errlen) {
  if (mhd.lib)
    return 0;
  void *lib = dlopen(HTTP_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(err, errlen,
             "--http: cannot load libmicrohttpd (%s; install Debian's libmicrohttpd12, "
             "or --http off): %s",
             HTTP_MHD_SONAME, dlerror());
    return TC_EIO;
  }
  struct {
    void **fn;
    const char *name;
  } want[] = {{(void **)&mhd.start_daemon, "MHD_start_daemon"},
              {(void **)&mhd.stop_daemon, "MHD_stop_daemon"},
              {(void **)&mhd.run, "MHD_run"},
              {(void **)&mhd.get_timeout, "MHD_get_timeout"},
              {(void **)&mhd.get_daemon_info, "MHD_get_daemon_info"},
              {(void **)&mhd.get_connection_info, "MHD_get_connection_info"},
              {(void **)&mhd.create_response_from_buffer, "MHD_create_response_from_buffer"},
              {(void **)&mhd.add_response_header, "MHD_add_response_header"},
              {(void **)&mhd.queue_response, "MHD_queue_response"},
              {(void **)&mhd.destroy_response, "MHD_destroy_response"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!(*want[i].fn = dlsym(lib, want[i].name))) {
      snprintf(err, errlen, "--http: %s has no %s: %s", HTTP_MHD_SONAME, want[i].name, dlerror());
      dlclose(lib);
      return TC_EIO;
    }
  mhd.lib = lib;
  return 0;
}

static void conn_unlink(http_srv *s, http_conn *k) {
  *(k->prev ? &k->prev->next : &s->head) = k->next;
  *(k->next ? &k->next->prev : &s->tail) = k->prev;
  k->prev = k->next = NULL;
}

static void conn_append(http_srv *s, http_conn *k) {
  k->prev = s->tail;
  k->next = NULL;
  *(s->tail ? &s->tail->next : &s->head) = k;
  s->tail = k;
}

/* Shuts the connection's socket down: MHD sees the end of it and closes the connection. */
static void conn_cut(http_conn *k) {
  if (k->cut)
    return;
  k->cut = 1;
  const union MHD_ConnectionInfo *ci =
      mhd.get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci)
    shutdown(ci->connect_fd, SHUT_RDWR);
}

/* MHD's connection notifications: track every connection; a new one beyond HTTP_CONN_MAX evicts
 * the least recently served one. */
static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode code) {
  http_srv *s = cls;
  http_conn *k = *ctx;
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    if (k) {
      conn_unlink(s, k);
      s->nconn--;
      free(k);
      *ctx = NULL;
    }
    return;
  }
  if (!(k = calloc(1, sizeof *k))) {
    const union MHD_ConnectionInfo *ci =
        mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
      shutdown(ci->connect_fd, SHUT_RDWR);
    return;
  }
  k->c = c;
  k->since = uv_now(s->loop);
  conn_append(s, k);
  s->nconn++;
  *ctx = k;
  int open = s->nconn;
  for (http_conn *o = s->head; o && open > HTTP_CONN_MAX; o = o->next)
    if (!o->cut && o != k) {
      conn_cut(o);
      open--;
    }
}

/* Every HTTP_REAP_MS: cuts the connections whose request has not arrived in time (the list is in
 * serving order, so the first one in time ends the walk). */
static void on_reap(uv_timer_t *t) {
  http_srv *s = t->data;
  uint64_t now = uv_now(s->loop);
  for (http_conn *k = s->head; k && now - k->since > HTTP_REQUEST_MS; k = k->next)
    conn_cut(k);
}

static void http_service(http_srv *s);

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  http_service(p->data);
}

static void on_timer(uv_timer_t *t) {
  http_service(t->data);
}

/* Runs MHD once, then re-arms the timer from MHD's next timeout (if any). */
static void http_service(http_srv *s) {
  mhd.run(s->d);
  MHD_UNSIGNED_LONG_LONG to;
  if (mhd.get_timeout(s->d, &to) == MHD_YES)
    uv_timer_start(&s->timer, on_timer, to, 0);
  else
    uv_timer_stop(&s->timer);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  http_srv *s = cls;
  const union MHD_ConnectionInfo *ci =
      mhd.get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  http_conn *k = ci ? ci->socket_context : NULL;
  if (k) { /* served: its next request has HTTP_REQUEST_MS from now */
    k->since = uv_now(s->loop);
    conn_unlink(s, k);
    conn_append(s, k);
  }
  char *body = NULL;
  size_t len = 0;
  const char *ctype = "text/plain; charset=utf-8";
  int status;
  if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    body = strdup("method not allowed\n");
    len = body ? strlen(body) : 0;
  } else {
    status = s->h(s->ud, url, &body, &len, &ctype);
  }
  struct MHD_Response *r =
      mhd.create_response_from_buffer(len, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  mhd.add_response_header(r, "Content-Type", ctype);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    mhd.add_response_header(r, "Allow", "GET, HEAD");
  enum MHD_Result ret = mhd.queue_response(c, (unsigned)status, r);
  mhd.destroy_response(r);
  return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  log_warn("http", "%s", line);
}

int http_addr_parse(const char *addr_port, char host[HTTP_HOST_MAX], int *port, char *err,
                    size_t errlen) {
  const char *colon = strrchr(addr_port, ':');
  if (!colon || colon == addr_port || !colon[1]) {
    snprintf(err, errlen, "--http %s: expected ADDR:PORT (e.g. 127.0.0.1:9464) or off", addr_port);
    return TC_EUSAGE;
  }
  size_t hl = (size_t)(colon - addr_port);
  if (hl >= HTTP_HOST_MAX) {
    snprintf(err, errlen, "--http %.40s...: address too long", addr_port);
    return TC_EUSAGE;
  }
  memcpy(host, addr_port, hl);
  host[hl] = 0;
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [::1]:9464 */
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = 0;
  }
  const char *d = colon + 1;
  long pn = 0;
  while (*d >= '0' && *d <= '9' && pn <= 65535)
    pn = pn * 10 + (*d++ - '0');
  if (*d || pn > 65535) {
    snprintf(err, errlen, "--http %s: port '%s' is not a number in 0..65535", addr_port, colon + 1);
    return TC_EUSAGE;
  }
  *port = (int)pn;
  return 0;
}

/* Opens, binds and listens on ADDR:PORT; returns the fd or -1 with err. */
static int http_listen(const char *addr_port, int *port, char *err, size_t errlen) {
  char host[HTTP_HOST_MAX];
  int pn;
  if (http_addr_parse(addr_port, host, &pn, err, errlen) != 0)
    return -1;
  const char *colon = strrchr(addr_port, ':');
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
  if (rc) {
    snprintf(err, errlen, "--http %s: cannot resolve '%s': %s", addr_port, host, gai_strerror(rc));
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "--http %s: socket: %s", addr_port, strerror(errno));
    freeaddrinfo(ai);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
    snprintf(err, errlen, "--http %s: cannot listen: %s", addr_port, strerror(errno));
    freeaddrinfo(ai);
    close(fd);
    return -1;
  }
  freeaddrinfo(ai);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  *port = pn;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return fd;
}

int http_start(http_srv **out, uv_loop_t *loop, const char *addr_port, http_handler h, void *ud,
               char *err, size_t errlen) {
  *out = NULL;
  http_srv *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "--http %s: out of memory", addr_port);
    return TC_ENOMEM;
  }
  s->h = h;
  s->ud = ud;
  s->loop = loop;
  if (http_lib_load(err, errlen) != 0) {
    free(s);
    return TC_EIO;
  }
  int fd = http_listen(addr_port, &s->port, err, errlen);
  if (fd < 0) {
    free(s);
    return TC_EIO;
  }
  s->d = mhd.start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
                          (MHD_socket)fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MHD_LIMIT,
                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
  if (!s->d) {
    snprintf(err, errlen, "--http %s: libmicrohttpd failed to start", addr_port);
    close(fd);
    free(s);
    return TC_EIO;
  }
  const union MHD_DaemonInfo *info = mhd.get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info || uv_poll_init(loop, &s->poll, info->epoll_fd) != 0) {
    snprintf(err, errlen, "--http %s: cannot watch libmicrohttpd's epoll fd", addr_port);
    mhd.stop_daemon(s->d);
    free(s);
    return TC_EIO;
  }
  uv_timer_init(loop, &s->timer);
  uv_timer_init(loop, &s->reaper);
  s->poll.data = s->timer.data = s->reaper.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  uv_timer_start(&s->reaper, on_reap, HTTP_REAP_MS, HTTP_REAP_MS);
  http_service(s);
  *out = s;
  return 0;
}

int http_port(const http_srv *s) {
  return s ? s->port : -1;
}

static void on_closed(uv_handle_t *h) {
  http_srv *s = h->data;
  if (--s->closing)
    return;
  mhd.stop_daemon(s->d); /* closes the epoll fd, the listening socket and every connection */
  while (s->head) {      /* in case MHD did not report some closed */
    http_conn *k = s->head;
    conn_unlink(s, k);
    free(k);
  }
  free(s);
}

void http_stop(http_srv *s) {
  if (!s)
    return;
  s->closing = 3;
  uv_close((uv_handle_t *)&s->poll, on_closed);
  uv_close((uv_handle_t *)&s->timer, on_closed);
  uv_close((uv_handle_t *)&s->reaper, on_closed);
}
