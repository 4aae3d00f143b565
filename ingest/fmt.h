/* fmt.h: fast number formatting for the prediction encoders (no snprintf on the hot path).
 * (Interface written by the lead so that daemon/encode.c builds; the ingest engineer owns the
 * implementation and may extend this header.) */
#ifndef INGEST_FMT_H
#define INGEST_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Each writes without a terminating NUL and returns the number of bytes written (<= 32). */
size_t fmt_i64(char *out, int64_t v);
size_t fmt_u64(char *out, uint64_t v);
/* Like %.{sig}g, valid JSON and CSV: trailing zeros stripped; NaN/Inf written as null. */
size_t fmt_double_sig(char *out, double v, int sig);
/* The shortest decimal (up to 17 significant digits) that parses back to exactly v. */
size_t fmt_double_short(char *out, double v);

#endif
