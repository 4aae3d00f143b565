/* svg.c: the eval plot as plain SVG text (see svg.h). Two panels, 1000 x 740 pixels: returns on
 * top, per pixel column: the realized returns' min-max (light grey) and 10-90% range (grey), the
 * predictions' 10-90% range (a translucent blue band) and their mean (a blue line), so that neither
 * hides the other at 100,000 ticks; predictions much smaller than the realized returns get their
 * own right-hand axis, zero aligned, so they stay visible. Below, the cumulative log return of
 * the sign-of-prediction strategy, equal-weighted over instruments, net of costs (green) and
 * gross (dashed), and buy and hold (grey). Time axis with date labels, value axes with round tick
 * values, titles and legends. */
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
  size_t w = 0; /* a white box behind it, about as wide as its longest name */
  for (int i = 0; i < n; i++)
    w = strlen(names[i]) > w ? strlen(names[i]) : w;
  fprintf(f,
          "<rect x='%.1f' y='%.1f' width='%.1f' height='%d' fill='white' fill-opacity='0.85'/>\n",
          x - 6, y - 13, 32 + 6.2 * (double)w, 16 * n + 4);
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

/* The points binned by pixel column: per column the realized returns' min, max and 10-90%
 * range, the predictions' min, max, 10-90% range and mean, and the cumulative curves at its end;
 * the value ranges over all points. */
typedef struct columns {
  double rmin[COLS], rmax[COLS]; /* realized returns in the column */
  double rq10[COLS], rq90[COLS]; /* their 10% and 90% quantiles */
  double pmin[COLS], pmax[COLS]; /* predicted returns in the column */
  double pq10[COLS], pq90[COLS]; /* their 10% and 90% quantiles */
  double pmean[COLS];            /* their mean */
  double blo[COLS], bhi[COLS];   /* the interval's bounds pred -+ band, averaged */
  double cg[COLS], cn[COLS];     /* cumulative strategy gross and net at its end */
  double ch[COLS];               /* cumulative buy and hold at its end */
  int cnt[COLS];                 /* points in the column (0: unused) */
  int64_t t0, t1;                /* time range (t1 > t0) */
  double rlo, rhi, plo, phi;     /* realized and predicted ranges, including 0 */
  double clo, chi;               /* cumulative range, including 0 */
} columns;

/* The scales: realized returns (top), predicted (ptop: top's, or their own right-hand scale when
 * the predictions are much smaller) and cumulative returns (bot). */
typedef struct panels {
  panel top, ptop, bot; /* pixel rows and value ranges */
  int dual;             /* 1: ptop has its own scale */
} panels;

static int dbl_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v (n >= 1), interpolated between order statistics (R's type 7). */
static double quantile(const double *v, int n, double q) {
  double h = (n - 1) * q;
  int i = (int)floor(h);
  return i + 1 < n ? v[i] + (h - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static int column_of(const columns *c, int64_t ts) {
  int col = (int)((double)(ts - c->t0) / (double)(c->t1 - c->t0) * (COLS - 1));
  return col < 0 ? 0 : col >= COLS ? COLS - 1 : col;
}

/* Bins e's points into columns. Points are sorted by ts, so each column's are contiguous. */
static int columns_fill(columns *c, const svg_eval *e) {
  const score_pt *pts = e->pts;
  size_t n = e->n;
  double *buf = malloc(2 * n * sizeof *buf), *pbuf = buf + n;
  if (!buf)
    return TC_ENOMEM;
  c->t0 = pts[0].ts, c->t1 = pts[n - 1].ts;
  if (c->t1 <= c->t0)
    c->t1 = c->t0 + 1;
  for (size_t a = 0; a < n;) {
    int col = column_of(c, pts[a].ts);
    size_t b = a;
    double psum = 0, bsum = 0;
    c->rmin[col] = c->rmax[col] = pts[a].real;
    c->pmin[col] = c->pmax[col] = pts[a].pred;
    for (; b < n && column_of(c, pts[b].ts) == col; b++) {
      const score_pt *p = &pts[b];
      c->rmin[col] = fmin(c->rmin[col], p->real), c->rmax[col] = fmax(c->rmax[col], p->real);
      c->pmin[col] = fmin(c->pmin[col], p->pred), c->pmax[col] = fmax(c->pmax[col], p->pred);
      psum += p->pred;
      bsum += e->band ? e->band[b] : 0;
      buf[b - a] = p->real;
      pbuf[b - a] = p->pred;
      c->clo = fmin(c->clo, fmin(fmin(e->gross[b], e->net[b]), e->hold[b]));
      c->chi = fmax(c->chi, fmax(fmax(e->gross[b], e->net[b]), e->hold[b]));
    }
    int k = (int)(b - a);
    qsort(buf, (size_t)k, sizeof *buf, dbl_cmp);
    c->rq10[col] = quantile(buf, k, 0.1), c->rq90[col] = quantile(buf, k, 0.9);
    qsort(pbuf, (size_t)k, sizeof *pbuf, dbl_cmp);
    c->pq10[col] = quantile(pbuf, k, 0.1), c->pq90[col] = quantile(pbuf, k, 0.9);
    c->pmean[col] = psum / k;
    c->blo[col] = (psum - bsum) / k, c->bhi[col] = (psum + bsum) / k;
    if (e->band) /* the band is drawn on the realized returns' scale */
      c->rlo = fmin(c->rlo, c->blo[col]), c->rhi = fmax(c->rhi, c->bhi[col]);
    c->cnt[col] = k;
    c->cg[col] = e->gross[b - 1], c->cn[col] = e->net[b - 1], c->ch[col] = e->hold[b - 1];
    c->rlo = fmin(c->rlo, c->rmin[col]), c->rhi = fmax(c->rhi, c->rmax[col]);
    c->plo = fmin(c->plo, c->pmin[col]), c->phi = fmax(c->phi, c->pmax[col]);
    a = b;
  }
  free(buf);
  return 0;
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
  p.bot = (panel){440, 690, clo - pad, chi + pad};
  return p;
}

/* One vertical bar per used column from lo to hi, on panel p (at least a pixel tall). */
static void column_bars(FILE *f, const columns *c, const panel *p, const double *lo,
                        const double *hi) {
  for (int k = 0; k < COLS; k++)
    if (c->cnt[k]) {
      double y0 = py(p, lo[k]), y1 = py(p, hi[k]);
      if (y0 - y1 < 1)
        y0 += 0.5, y1 -= 0.5;
      fprintf(f, "M%d.5 %.1fV%.1f", PL + k, y0, y1);
    }
}

/* A line through v of the used columns on panel p. */
static void column_line(FILE *f, const columns *c, const panel *p, const double *v) {
  for (int k = 0; k < COLS; k++)
    if (c->cnt[k])
      fprintf(f, "%d,%.1f ", PL + k, py(p, v[k]));
}

/* The top panel: realized returns as grey bars (min-max light, 10-90% darker), predicted as a
 * translucent blue band (10-90%) and a blue line (mean) on top. */
static void plot_returns(FILE *f, const columns *c, const panels *p, size_t n, double level) {
  int many = 0;
  for (int k = 0; k < COLS && !many; k++)
    many = c->cnt[k] > 1;
  fprintf(f,
          "<text x='%d' y='58' font-size='13'>Next-tick log return: predicted vs realized "
          "(%zu predictions%s)</text>\n",
          PL, n, many ? ", per pixel column" : "");
  y_axis(f, &p->top, "log return");
  x_axis(f, &p->top, c->t0, c->t1);
  fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#888' stroke-dasharray='3,3'/>\n",
          PL, py(&p->top, 0), PR, py(&p->top, 0));
  fputs("<path stroke='#d4d4d4' stroke-width='1' fill='none' d='", f);
  column_bars(f, c, &p->top, c->rmin, c->rmax);
  fputs("'/>\n<path stroke='#8a8a8a' stroke-width='1' fill='none' d='", f);
  column_bars(f, c, &p->top, c->rq10, c->rq90);
  fputs("'/>\n<path stroke='#1f5fd1' stroke-width='1' stroke-opacity='0.3' fill='none' d='", f);
  column_bars(f, c, &p->ptop, c->pq10, c->pq90);
  fputs("'/>\n<polyline fill='none' stroke='#1f5fd1' stroke-width='1.2' points='", f);
  column_line(f, c, &p->ptop, c->pmean);
  fputs("'/>\n", f);
  if (level > 0) /* the scale head's interval, on the realized returns' scale */
    for (int k = 0; k < 2; k++) {
      fputs("<polyline fill='none' stroke='#e08214' stroke-width='1.2' points='", f);
      column_line(f, c, &p->top, k ? c->bhi : c->blo);
      fputs("'/>\n", f);
    }
  char band[64];
  snprintf(band, sizeof band, "predicted %g%% interval%s", 100 * level,
           many ? " (column mean)" : "");
  if (level > 0) {
    const char *const nb[] = {band}, *const cb[] = {"#e08214"};
    legend(f, PL + 12, p->top.top + 18, nb, cb, 1);
  }
  static const char *const c1[] = {"#8a8a8a", "#d4d4d4", "#1f5fd1", "#8fb0e8"};
  const char *n1[4] = {"realized", "", "predicted", ""};
  if (many) {
    n1[0] = "realized: 10-90% of a column";
    n1[1] = "realized: min-max";
    n1[2] = p->dual ? "predicted: mean (right axis)" : "predicted: mean";
    n1[3] = "predicted: 10-90% of a column";
  } else if (p->dual) {
    n1[0] = "realized (left axis)";
    n1[2] = "predicted (right axis)";
  }
  if (p->dual)
    y_axis_right(f, &p->ptop, "predicted log return", "#1f5fd1");
  if (many) {
    legend(f, PR - 200, p->top.top + 18, n1, c1, 4);
  } else {
    const char *const n2[] = {n1[0], n1[2]}, *const c2[] = {c1[0], c1[2]};
    legend(f, PR - (p->dual ? 160 : 110), p->top.top + 18, n2, c2, 2);
  }
}

/* The bottom panel: the cumulative returns of trading the sign of the prediction, equal-weighted,
 * net of costs and gross, and of holding. */
static void plot_cumulative(FILE *f, const columns *c, const panel *bot, const svg_eval *e) {
  size_t last = e->n - 1;
  fprintf(f,
          "<text x='%d' y='408' font-size='13'>Cumulative log return, equal-weighted over %d "
          "instrument%s: sign of the prediction, net %.4g (gross %.4g), vs buy and hold "
          "%.4g</text>\n",
          PL, e->ninst, e->ninst == 1 ? "" : "s", e->net[last], e->gross[last], e->hold[last]);
  fputs("<text x='", f);
  fprintf(f,
          "%d' y='424' font-size='11' fill='#444'>The mean over instruments of each one's "
          "cumulative log return; costs: ",
          PL);
  xml_text(f, e->costs);
  fputs("</text>\n", f);
  y_axis(f, bot, "cumulative log return");
  x_axis(f, bot, c->t0, c->t1);
  fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#888' stroke-dasharray='3,3'/>\n",
          PL, py(bot, 0), PR, py(bot, 0));
  const double *curves[3] = {c->ch, c->cg, c->cn};
  static const char *const cols2[] = {"#9a9a9a", "#66bd63", "#1a7837"};
  static const char *const dash[] = {"", " stroke-dasharray='5,3'", ""};
  for (int k = 0; k < 3; k++) {
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5'%s points='", cols2[k],
            dash[k]);
    column_line(f, c, bot, curves[k]);
    fputs("'/>\n", f);
  }
  static const char *const n2[] = {"buy and hold", "sign of prediction, gross",
                                   "sign of prediction, net of costs"};
  legend(f, PL + 12, bot->top + 18, n2, cols2, 3);
}

int svg_eval_plot(const char *path, const svg_eval *e, char *err, size_t errlen) {
  if (e->n == 0) {
    snprintf(err, errlen, "%s: nothing to plot (no scored predictions)", path);
    return TC_EINVAL;
  }
  columns *c = calloc(1, sizeof *c);
  if (!c || columns_fill(c, e) != 0) {
    snprintf(err, errlen, "%s: out of memory", path);
    free(c);
    return TC_ENOMEM;
  }
  panels p = panels_scale(c);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
    free(c);
    return TC_EIO;
  }
  fprintf(f,
          "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='740' "
          "viewBox='0 0 %d 740' font-family='sans-serif'>\n<rect width='100%%' height='100%%' "
          "fill='white'/>\n<text x='%d' y='24' text-anchor='middle' font-size='16' "
          "font-weight='bold'>",
          W, W, W / 2);
  xml_text(f, e->title);
  fputs("</text>\n", f);
  plot_returns(f, c, &p, e->n, e->band ? e->band_level : 0);
  plot_cumulative(f, c, &p.bot, e);
  fprintf(f, "<text x='%d' y='732' text-anchor='middle' font-size='12'>time (UTC)</text>\n</svg>\n",
          (PL + PR) / 2);
  free(c);
  if (ferror(f) | fclose(f)) {
    snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
    return TC_EIO;
  }
  return 0;
}
