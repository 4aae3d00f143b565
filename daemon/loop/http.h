/* http.h: a tiny HTTP server for /metrics, /healthz and /readyz, run by libmicrohttpd inside the
 * daemon's libuv loop (no thread of its own: MHD's epoll fd is watched by uv_poll and MHD_run is
 * called on readiness and on MHD's timeout). Not for anything that needs request bodies. */
#ifndef DAEMON_HTTP_H
#define DAEMON_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct http_srv http_srv;

/* Answers one GET/HEAD request for `path`: returns the HTTP status and sets *body to a malloc'd
 * buffer of *len bytes (freed by the server) and *ctype to a static content type. Runs on the loop
 * thread. */
typedef int (*http_handler)(void *ud, const char *path, char **body, size_t *len,
                            const char **ctype);

#define HTTP_HOST_MAX 256 /* longest ADDR in ADDR:PORT, with its NUL */

/* Checks the syntax of ADDR:PORT ("127.0.0.1:9464", "[::1]:9464", "localhost:0"): a non-empty
 * address and a port of 0..65535. Returns 0 with the address (without brackets) in host and the
 * port, or TC_EUSAGE with err like "--http x:99999: port '99999' is not a number in 0..65535".
 * Resolves nothing: run's flag check calls it before anything starts. */
int http_addr_parse(const char *addr_port, char host[HTTP_HOST_MAX], int *port, char *err,
                    size_t errlen);

/* Loads libmicrohttpd (dlopen; once, on the loop's thread or before it runs): 0, or TC_EIO with
 * err like "--http: cannot load libmicrohttpd (libmicrohttpd.so.12; install Debian's
 * libmicrohttpd12, or --http off): ...". http_start calls it; run's flag check calls it first, so
 * that a missing library stops the daemon before anything starts. */
int http_lib_load(char *err, size_t errlen);

/* Binds ADDR:PORT ("127.0.0.1:9464", "[::1]:9464", "localhost:0" for any free port) and serves on
 * `loop`. Returns 0 and *out, or a negative TC_E* code with err like "--http 127.0.0.1:9464: cannot
 * bind: Address already in use". */
int http_start(http_srv **out, uv_loop_t *loop, const char *addr_port, http_handler h, void *ud,
               char *err, size_t errlen);

/* The bound port (useful with port 0). */
int http_port(const http_srv *s);

/* Stops serving and frees the server once its handles have closed (the loop must run on for
 * that). Accepts NULL. */
void http_stop(http_srv *s);

#endif
