/* rfc3339.h: an RFC 3339 timestamp string to nanoseconds since the Unix epoch, exactly, and back.
 * Used by the tick decoders (tick.h), the command line and reports. Not for integer timestamps
 * (number.h). */
#ifndef INGEST_RFC3339_H
#define INGEST_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* Parses a timestamp string: RFC 3339 (fraction up to 9 digits, Z or +hh:mm/-hh:mm) to ns since
 * the epoch. Returns 0 or -1. */
int tick_parse_rfc3339(const char *s, size_t len, int64_t *ns);

/* Parses a date alone, YYYY-MM-DD (RFC 3339 full-date), as midnight UTC of that day, to ns since
 * the epoch. Tick files accept it (daily data); Kafka messages do not (CONTRACT §1). 0 or -1. */
int tick_parse_date(const char *s, size_t len, int64_t *ns);

/* Writes ns since the epoch as RFC 3339 in UTC, "2024-01-02T09:00:00Z", with a fraction of 3, 6
 * or 9 digits only when it is not zero ("...:00.5Z" is written ".500Z"); what
 * tick_parse_rfc3339 reads back to the same ns. TICK_RFC3339_MAX bytes always suffice. Returns
 * the length it needed, as snprintf (out is always NUL-terminated when len > 0). */
#define TICK_RFC3339_MAX 40
size_t tick_format_rfc3339(char *out, size_t len, int64_t ns);

#endif
