/* rfc3339.h: an RFC 3339 timestamp string to nanoseconds since the Unix epoch, exactly. Used by
 * the tick decoders (tick.h) and the command line. Not for integer timestamps (number.h). */
#ifndef INGEST_RFC3339_H
#define INGEST_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* Parses a timestamp string: RFC 3339 (fraction up to 9 digits, Z or +hh:mm/-hh:mm) to ns since
 * the epoch. Returns 0 or -1. */
int tick_parse_rfc3339(const char *s, size_t len, int64_t *ns);

#endif
