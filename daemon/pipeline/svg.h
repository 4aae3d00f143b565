/* svg.h: the plot of `tickcast eval --plot`: hand-written SVG text with two panels sharing a time
 * axis: predicted vs realized next-tick returns, and the cumulative return of trading the sign of
 * the prediction next to buying and holding. Not a general plotting library. */
#ifndef DAEMON_SVG_H
#define DAEMON_SVG_H

#include <stddef.h>
#include <stdint.h>

/* One scored tick: when the prediction was made, what was predicted and what happened. */
typedef struct svg_point {
  int64_t ts;  /* ns since the epoch */
  double pred; /* predicted next return */
  double real; /* realized next return */
} svg_point;

/* Writes the plot of pts[0..n) (sorted by ts) to path. Long series are drawn per pixel column
 * (min-max bars), so the file stays small. Returns 0 or TC_EIO/TC_EINVAL with err. */
int svg_eval_plot(const char *path, const char *title, const svg_point *pts, size_t n, char *err,
                  size_t errlen);

#endif
