#!/usr/bin/python3
"""gen_ar1.py: a tick file of AR(1) log returns, r[t+1] = 0.5 r[t] + noise (std 0.001), whose
optimal one-step skill is 0.5^2 = 0.25.

  gen_ar1.py N SEED K FILE [--skew S]

K instruments take turns (tick i is instrument i % K, one second apart, every one starting at
price 100); with --skew S instrument k's first S * k turns are skipped, so the instruments have
different lengths. FILE is sym,ts,px.
"""
import argparse
import math
import random

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("seed", type=int)
ap.add_argument("k", type=int)
ap.add_argument("path")
ap.add_argument("--skew", type=int, default=0)
a = ap.parse_args()
rnd = random.Random(a.seed)
st = [(0.0, 100.0)] * a.k
with open(a.path, "w") as f:
    f.write("sym,ts,px\n")
    for i in range(a.n):
        k = i % a.k
        if i < k * a.skew:
            continue
        r, px = st[k]
        r = 0.5 * r + rnd.gauss(0, 0.001)
        px *= math.exp(r)
        st[k] = (r, px)
        f.write(f"S{k},{1700000000000000000 + i * 1000000000},{px:.12g}\n")
