/* svg.c: the eval plot as plain SVG text (see svg.h). Two panels, 1000 x 720 pixels: returns on
 * top (realized in grey, predicted in blue, as per-column min-max bars when there are more ticks
 * than pixels; predictions much smaller than the realized returns get their own right-hand axis,
 * zero aligned, so they stay visible), cumulative log return below (sign-of-prediction strategy
 * in green, buy and hold in grey), time axis with date labels, value axes with round tick values,
 * titles and legends. */
#include "daemon/pipeline/svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/base/tc_err.h"

#define W 1000
#define PL 90  /* plot left */
#define PR 920 /* plot right (room for a right-hand axis) */
#define COLS (PR - PL)

typedef struct panel {
  double top, bot; /* pixel rows */
  double lo, hi;   /* value range */
} panel;

static double py(const panel *p, double v) {
  return p->bot - (v - p->lo) / (p->hi - p->lo) * (p->bot - p->top);
}

/* A round step giving about n intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int n) {
  double raw = (hi - lo) / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void y_axis(FILE *f, const panel *p, const char *label) {
  double step = nice_step(p->lo, p->hi, 5);
  for (double v = ceil(p->lo / step) * step; v <= p->hi + step * 1e-9; v += step) {
    double y = py(p, v);
    if (fabs(v) < step * 1e-9)
      v = 0;
    fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#e5e5e5'/>\n", PL, y, PR, y);
    fprintf(f, "<text x='%d' y='%.1f' text-anchor='end' font-size='11'>%.3g</text>\n", PL - 6,
            y + 4, v);
  }
  fprintf(f, "<rect x='%d' y='%.1f' width='%d' height='%.1f' fill='none' stroke='#444'/>\n", PL,
          p->top, COLS, p->bot - p->top);
  fprintf(f,
          "<text transform='translate(18,%.1f) rotate(-90)' text-anchor='middle' "
          "font-size='12'>%s</text>\n",
          (p->top + p->bot) / 2, label);
}

/* Tick labels of a second value scale on the right edge, in color. */
static void y_axis_right(FILE *f, const panel *p, const char *label, const char *color) {
  double step = nice_step(p->lo, p->hi, 5);
  for (double v = ceil(p->lo / step) * step; v <= p->hi + step * 1e-9; v += step) {
    double y = py(p, v);
    if (fabs(v) < step * 1e-9)
      v = 0;
    fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='%s'/>\n", PR, y, PR + 4, y,
            color);
    fprintf(f, "<text x='%d' y='%.1f' font-size='11' fill='%s'>%.3g</text>\n", PR + 7, y + 4, color,
            v);
  }
  fprintf(f,
          "<text transform='translate(%d,%.1f) rotate(90)' text-anchor='middle' font-size='12' "
          "fill='%s'>%s</text>\n",
          W - 14, (p->top + p->bot) / 2, color, label);
}

static void x_axis(FILE *f, const panel *p, int64_t t0, int64_t t1) {
  double span = (double)(t1 - t0) / 1e9;
  for (int k = 0; k <= 6; k++) {
    double frac = k / 6.0;
    int64_t t = t0 + (int64_t)((double)(t1 - t0) * frac);
    time_t s = (time_t)(t / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[32];
    strftime(buf, sizeof buf,
             span > 3 * 86400 ? "%Y-%m-%d"
             : span > 600     ? "%m-%d %H:%M"
                              : "%H:%M:%S",
             &tm);
    double x = PL + frac * COLS;
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#444'/>\n", x, p->bot, x,
            p->bot + 5);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='%s' font-size='11'>%s</text>\n", x,
            p->bot + 18, k == 6 ? "end" : "middle", buf);
  }
}

static void legend(FILE *f, double x, double y, const char *const *names, const char *const *cols,
                   int n) {
  for (int i = 0; i < n; i++) {
    fprintf(f, "<rect x='%.1f' y='%.1f' width='14' height='4' fill='%s'/>\n", x, y + 16 * i - 4,
            cols[i]);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>%s</text>\n", x + 20, y + 16 * i, names[i]);
  }
}

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '\'')
      fputs("&apos;", f);
    else
      fputc(*s, f);
  }
}

/* The points binned by pixel column: per column the min/max of realized and predicted returns
 * and the cumulative returns at its end, and the value ranges over all points. */
typedef struct columns {
  double rmin[COLS], rmax[COLS]; /* realized returns in the column */
  double pmin[COLS], pmax[COLS]; /* predicted returns in the column */
  double cs[COLS], cb[COLS];     /* cumulative sign-of-prediction and buy-and-hold at its end */
  int used[COLS];                /* the column holds a point */
  int64_t t0, t1;                /* time range (t1 > t0) */
  double rlo, rhi, plo, phi;     /* realized and predicted ranges, including 0 */
  double clo, chi;               /* cumulative range, including 0 */
  double s, b;                   /* final cumulative returns: sign of prediction, buy and hold */
} columns;

/* The scales: realized returns (top), predicted (ptop: top's, or their own right-hand scale when
 * the predictions are much smaller) and cumulative returns (bot). */
typedef struct panels {
  panel top, ptop, bot; /* pixel rows and value ranges */
  int dual;             /* 1: ptop has its own scale */
} panels;

static void columns_fill(columns *c, const svg_point *pts, size_t n) {
  c->t0 = pts[0].ts, c->t1 = pts[n - 1].ts;
  if (c->t1 <= c->t0)
    c->t1 = c->t0 + 1;
  double s = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    int col = (int)((double)(pts[i].ts - c->t0) / (double)(c->t1 - c->t0) * (COLS - 1));
    if (col < 0)
      col = 0;
    if (col >= COLS)
      col = COLS - 1;
    double sig = pts[i].pred > 0 ? 1 : pts[i].pred < 0 ? -1 : 0;
    s += sig * pts[i].real;
    b += pts[i].real;
    if (!c->used[col]) {
      c->rmin[col] = c->rmax[col] = pts[i].real;
      c->pmin[col] = c->pmax[col] = pts[i].pred;
      c->used[col] = 1;
    } else {
      c->rmin[col] = fmin(c->rmin[col], pts[i].real),
      c->rmax[col] = fmax(c->rmax[col], pts[i].real);
      c->pmin[col] = fmin(c->pmin[col], pts[i].pred),
      c->pmax[col] = fmax(c->pmax[col], pts[i].pred);
    }
    c->cs[col] = s, c->cb[col] = b;
    c->rlo = fmin(c->rlo, pts[i].real), c->rhi = fmax(c->rhi, pts[i].real);
    c->plo = fmin(c->plo, pts[i].pred), c->phi = fmax(c->phi, pts[i].pred);
    c->clo = fmin(c->clo, fmin(s, b)), c->chi = fmax(c->chi, fmax(s, b));
  }
  c->s = s, c->b = b;
}

static panels panels_scale(const columns *c) {
  /* One scale for both when the predictions are not much smaller than the realized returns;
   * otherwise a symmetric scale each, so that both zero lines are the middle of the panel. */
  double rlo = c->rlo, rhi = c->rhi, clo = c->clo, chi = c->chi;
  double rabs = fmax(-rlo, rhi), pabs = fmax(-c->plo, c->phi);
  panels p;
  p.dual = pabs > 0 && pabs * 5 < rabs;
  if (!p.dual)
    rlo = fmin(rlo, c->plo), rhi = fmax(rhi, c->phi);
  else
    rlo = -rabs, rhi = rabs;
  if (rhi - rlo < 1e-12)
    rlo -= 1e-6, rhi += 1e-6;
  if (chi - clo < 1e-12)
    clo -= 1e-6, chi += 1e-6;
  double pad = 0.05 * (rhi - rlo);
  p.top = (panel){70, 360, rlo - pad, rhi + pad};
  p.ptop = p.dual ? (panel){70, 360, -pabs * 1.05, pabs * 1.05} : p.top;
  pad = 0.05 * (chi - clo);
  p.bot = (panel){420, 670, clo - pad, chi + pad};
  return p;
}

/* One min-max bar per used column, lo/hi per column, on panel p. */
static void column_bars(FILE *f, const columns *c, const panel *p, const double *lo,
                        const double *hi) {
  for (int k = 0; k < COLS; k++)
    if (c->used[k]) {
      double y0 = py(p, lo[k]), y1 = py(p, hi[k]);
      if (y0 - y1 < 1)
        y0 += 0.5, y1 -= 0.5;
      fprintf(f, "M%d.5 %.1fV%.1f", PL + k, y0, y1);
    }
}

/* The top panel: realized returns as grey bars, predicted as a blue band on top. */
static void plot_returns(FILE *f, const columns *c, const panels *p, size_t n) {
  fprintf(f,
          "<text x='%d' y='58' font-size='13'>Next-tick log return: predicted vs "
          "realized (%zu ticks)</text>\n",
          PL, n);
  y_axis(f, &p->top, "log return");
  x_axis(f, &p->top, c->t0, c->t1);
  fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#888' stroke-dasharray='3,3'/>\n",
          PL, py(&p->top, 0), PR, py(&p->top, 0));
  fputs("<path stroke='#9a9a9a' stroke-width='1' fill='none' d='", f);
  column_bars(f, c, &p->top, c->rmin, c->rmax);
  fputs("'/>\n<path stroke='#1f5fd1' stroke-width='1.2' stroke-opacity='0.75' fill='none' d='", f);
  column_bars(f, c, &p->ptop, c->pmin, c->pmax);
  fputs("'/>\n", f);
  static const char *const n1[] = {"realized", "predicted"}, *const c1[] = {"#9a9a9a", "#1f5fd1"};
  static const char *const n1d[] = {"realized (left axis)", "predicted (right axis)"};
  if (p->dual)
    y_axis_right(f, &p->ptop, "predicted log return", "#1f5fd1");
  legend(f, PR - (p->dual ? 160 : 110), p->top.top + 18, p->dual ? n1d : n1, c1, 2);
}

/* The bottom panel: cumulative returns of trading the sign of the prediction and of holding. */
static void plot_cumulative(FILE *f, const columns *c, const panel *bot) {
  fprintf(f,
          "<text x='%d' y='408' font-size='13'>Cumulative log return: trading the sign of the "
          "prediction (final %.4g) vs buy and hold (final %.4g)</text>\n",
          PL, c->s, c->b);
  y_axis(f, bot, "cumulative log return");
  x_axis(f, bot, c->t0, c->t1);
  fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#888' stroke-dasharray='3,3'/>\n",
          PL, py(bot, 0), PR, py(bot, 0));
  const double *curves[2] = {c->cb, c->cs};
  static const char *const cols2[] = {"#9a9a9a", "#1a9850"};
  for (int k = 0; k < 2; k++) {
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", cols2[k]);
    for (int col = 0; col < COLS; col++)
      if (c->used[col])
        fprintf(f, "%d,%.1f ", PL + col, py(bot, curves[k][col]));
    fputs("'/>\n", f);
  }
  static const char *const n2[] = {"buy and hold", "sign of prediction"};
  legend(f, PL + 12, bot->top + 18, n2, cols2, 2);
}

int svg_eval_plot(const char *path, const char *title, const svg_point *pts, size_t n, char *err,
                  size_t errlen) {
  if (n == 0) {
    snprintf(err, errlen, "%s: nothing to plot (no scored ticks)", path);
    return TC_EINVAL;
  }
  columns *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "%s: out of memory", path);
    return TC_ENOMEM;
  }
  columns_fill(c, pts, n);
  panels p = panels_scale(c);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
    free(c);
    return TC_EIO;
  }
  fprintf(f,
          "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='720' "
          "viewBox='0 0 %d 720' font-family='sans-serif'>\n<rect width='100%%' height='100%%' "
          "fill='white'/>\n<text x='%d' y='24' text-anchor='middle' font-size='16' "
          "font-weight='bold'>",
          W, W, W / 2);
  xml_text(f, title);
  fputs("</text>\n", f);
  plot_returns(f, c, &p, n);
  plot_cumulative(f, c, &p.bot);
  fprintf(f, "<text x='%d' y='712' text-anchor='middle' font-size='12'>time (UTC)</text>\n</svg>\n",
          (PL + PR) / 2);
  free(c);
  if (ferror(f) | fclose(f)) {
    snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
    return TC_EIO;
  }
  return 0;
}
