#!/usr/bin/python3
"""garch_qlike.py: a variance forecast against the truth of tests/gen_garch.py.

  garch_qlike.py TICKS.csv TRUTH.csv PREDS.csv

PREDS.csv is `tickcast replay` output of a model with the scale head (pred_std per tick). For
every tick with a next return r of the same instrument, the forecasts h = pred_std^2 and the true
h* (TRUTH.csv) are scored by Patton's QLIKE in its normalized form r^2/h - ln(r^2/h) - 1 (>= 0,
0 only for h = r^2; for the true variance its mean is -E ln z^2 = 1.27 for normal z). Prints
n, the mean QLIKE of the model and of the truth and their ratio, as JSON.
"""
import csv
import json
import math
import sys
from collections import defaultdict

ticks, truth, preds = sys.argv[1:4]
px = defaultdict(list)
for r in csv.DictReader(open(ticks)):
    px[r["sym"]].append(float(r["px"]))
h_true = {(r["sym"], int(r["n"])): float(r["h"]) for r in csv.DictReader(open(truth))}
h_model = {(r["sym"], int(r["n"])): float(r["pred_std"]) ** 2 for r in csv.DictReader(open(preds))}


def qlike(e2, h):
    x = e2 / h
    return x - math.log(x) - 1


qm = qt = 0.0
n = 0
for sym, p in px.items():
    for t in range(1, len(p)):  # the return after tick t (n = t) of sym
        e2 = math.log(p[t] / p[t - 1]) ** 2
        if e2 == 0:
            continue
        qm += qlike(e2, h_model[(sym, t)])
        qt += qlike(e2, h_true[(sym, t)])
        n += 1
print(json.dumps({"n": n, "qlike_model": qm / n, "qlike_true": qt / n, "ratio": qm / qt}))
