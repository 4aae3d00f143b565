/* fmt.h: fast number formatting for the prediction encoders (no snprintf on the hot path).
 * Outputs are always valid JSON numbers (or `null`) and need no CSV quoting.
 * Not for parsing (number.h has tick_parse_number, which fmt_double_short uses to verify). */
#ifndef INGEST_FMT_H
#define INGEST_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Each writes without a terminating NUL and returns the number of bytes written (<= 32). */
size_t fmt_i64(char *out, int64_t v);
size_t fmt_u64(char *out, uint64_t v);

/* v rounded to sig (1..17, clamped) significant digits exactly as printf's %.{sig-1}e rounds
 * it, trailing zeros stripped, written as a plain decimal when 1e-5 <= |rounded v| < 1e15
 * ("24.9", "0.000048153075", "123000") and as d.ddde[+-]XX otherwise ("9.99999e-06",
 * "1.797693135e+308"). 0 and -0 give "0"; NaN and +-Inf give "null" (JSON has no such numbers;
 * in CSV it reads as a non-number). */
size_t fmt_double_sig(char *out, double v, int sig);

/* The first of the 15, 16 and 17 significant digit forms above that parses back to exactly v
 * (so a value typed with up to 15 digits comes back as typed: 24.9 -> "24.9"); -0 gives "0". */
size_t fmt_double_short(char *out, double v);

#endif
