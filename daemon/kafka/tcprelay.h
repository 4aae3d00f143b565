/* tcprelay.h: a TCP relay on the loopback interface: every connection to 127.0.0.1:port is
 * forwarded, both ways, to 127.0.0.1:to_port, by one thread of its own. It gives the embedded
 * broker (mockbroker.h) a fixed port; not a proxy for real traffic (no limits, no TLS). */
#ifndef DAEMON_TCPRELAY_H
#define DAEMON_TCPRELAY_H

#include <stddef.h>

typedef struct tcprelay tcprelay; /* opaque */

/* Listens on 127.0.0.1:port (0 = any free port) and starts the relay's thread; each accepted
 * connection gets its own connection to 127.0.0.1:to_port, and when either side closes, both
 * close. Returns 0 and *out (stop it with tcprelay_stop), or TC_EBUSY when the port is taken,
 * TC_EIO for another socket failure or TC_ENOMEM, with err like
 * "cannot listen on 127.0.0.1:9092: Address already in use". */
int tcprelay_start(tcprelay **out, int port, int to_port, char *err, size_t errlen);

/* The port the relay listens on (the free port picked for port 0). */
int tcprelay_port(const tcprelay *r);

/* Stops the thread, closes every connection and frees the relay. Accepts NULL. */
void tcprelay_stop(tcprelay *r);

#endif
