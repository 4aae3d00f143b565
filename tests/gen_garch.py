#!/usr/bin/python3
"""gen_garch.py: tick files of simulated GARCH(1,1) log returns, with the true variances.

  gen_garch.py N SEED K TICKS.csv TRUTH.csv [--alpha A] [--beta B] [--var V] [--df NU]

K instruments take turns (tick i is instrument i % K, one second apart). Each has returns
r_t = sqrt(h_t) z_t, z_t ~ N(0, 1) i.i.d., h_{t+1} = omega + alpha r_t^2 + beta h_t with omega =
V (1 - alpha - beta), so the unconditional variance is V (default 1e-6: a daily-FX-like 0.1%
std), h_0 = V. alpha = beta = 0 gives i.i.d. normal returns of variance V. TICKS.csv is
sym,ts,px (the first tick of an instrument at price 100); TRUTH.csv is sym,n,h: the true
conditional variance of the return that follows tick n of sym (known at tick n), which is what
a model's pred_std^2 at that tick forecasts. --df NU (> 2) draws z_t from a Student t with NU
degrees of freedom scaled to unit variance (fat tails, as real returns have) instead.
"""
import argparse
import math
import random

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("seed", type=int)
ap.add_argument("k", type=int)
ap.add_argument("ticks")
ap.add_argument("truth")
ap.add_argument("--alpha", type=float, default=0.1)
ap.add_argument("--beta", type=float, default=0.85)
ap.add_argument("--var", type=float, default=1e-6)
ap.add_argument("--df", type=float, default=0)
a = ap.parse_args()
rnd = random.Random(a.seed)


def innovation():
    """z_t: N(0, 1), or t(df) / sqrt(df / (df - 2)) (a normal over the root of a chi-square / df)."""
    if not a.df:
        return rnd.gauss(0, 1)
    chi2 = rnd.gammavariate(a.df / 2, 2)
    return rnd.gauss(0, 1) / math.sqrt(chi2 / a.df) / math.sqrt(a.df / (a.df - 2))


omega = a.var * (1 - a.alpha - a.beta)
# Per instrument: price, the variance of its next return, ticks so far.
st = [[100.0 + i, a.var, 0] for i in range(a.k)]
with open(a.ticks, "w") as ft, open(a.truth, "w") as fh:
    ft.write("sym,ts,px\n")
    fh.write("sym,n,h\n")
    for i in range(a.n):
        s = st[i % a.k]
        if s[2] > 0:  # a return from the previous tick of this instrument
            r = math.sqrt(s[1]) * innovation()
            s[0] *= math.exp(r)
            s[1] = omega + a.alpha * r * r + a.beta * s[1]
        s[2] += 1
        ft.write(f"S{i % a.k},{1700000000000000000 + i * 1000000000},{s[0]:.15g}\n")
        fh.write(f"S{i % a.k},{s[2]},{s[1]:.17g}\n")
