/* number.h: exact decimal numbers: a JSON-grammar number to the correctly rounded double, and a
 * decimal int64. Used by the tick decoders (tick.h), the formatters' read-back check (fmt.h) and
 * the command line. Not for timestamps (rfc3339.h). */
#ifndef INGEST_NUMBER_H
#define INGEST_NUMBER_H

#include <stddef.h>
#include <stdint.h>

/* Parses a decimal int64 (optional '-', no '+', no leading zeros beyond "0") exactly. 0 or -1. */
int tick_parse_int64(const char *s, size_t len, int64_t *out);

/* Parses a JSON-grammar number to the correctly rounded double. Returns bytes consumed, 0 when
 * there is no valid number at s. */
size_t tick_parse_number(const char *s, size_t len, double *out);

#endif
