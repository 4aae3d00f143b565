"""eval_ref.py MODEL TICKS.csv REPLAY.csv EVAL.json [--test] [--cost-bps X]

An outside implementation of what `tickcast eval --json` reports, from the predictions that
`tickcast replay` wrote for the same model and ticks (pred_ret of tick t is the prediction for the
return to tick t + 1), with the same selection (all predictions, or with --test those made after
each instrument's training range in the model's tickcast.ranges). Per instrument and pooled it
recomputes n, mse, mae, mse_rw, skill, the Diebold-Mariano statistic of the per-timestamp sums
of loss(model) - loss(random walk) with a Newey-West (Bartlett) variance at lag
floor(4 (n/100)^(2/9)) and its Harvey-Leybourne-Newbold version, the normal p-value, direction
(called pairs, hits, base rate, the binomial tail, Pesaran-Timmermann), the up-class counts, and
the equal-weighted sign-of-prediction strategy (gross, net of half the quoted spread or X bp a
unit of position change, buy and hold, changes); checks that the bootstrap interval holds the
skill and uses blocks of ceil(times^(1/3)). Exits 1 on any difference beyond 1e-7 relative.
Plain Python (no numpy), written from the definitions, not from the C code.
"""
import csv, json, math, struct, sys

args = sys.argv[1:]
test = "--test" in args
cost_bps = 1.0
if "--cost-bps" in args:
    cost_bps = float(args[args.index("--cost-bps") + 1])
model_path, ticks_path, replay_path, eval_path = [a for a in args if not a.startswith("--")][:4]

raw = open(model_path, "rb").read()
meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]]).get("__metadata__", {})
ranges = json.loads(meta.get("tickcast.ranges", "{}"))

# Ticks per instrument, in file order (the files here have only accepted, ordered lines).
ticks = {}
for r in csv.DictReader(open(ticks_path)):
    bid, ask = r.get("bid") or "", r.get("ask") or ""
    quote = None
    if bid and ask and float(bid) <= float(ask):
        quote = (float(ask) - float(bid)) / ((float(ask) + float(bid)) / 2)
    ticks.setdefault(r["sym"], []).append((int(r["ts"]), float(r["px"]), quote))
preds = {}
for r in csv.DictReader(open(replay_path)):
    preds.setdefault(r["sym"], []).append(float(r["pred_ret"]))
syms = list(ticks)

pts = {}  # sym -> [(ts, pred, real, cost)]
for s in syms:
    tk, pr = ticks[s], preds[s]
    assert len(tk) == len(pr), s
    rg = ranges.get(s, {})
    out = []
    for t in range(len(tk) - 1):
        if test and "to" in rg and tk[t][0] <= rg["to"]:
            continue
        real = math.log(tk[t + 1][1] / tk[t][1])
        cost = tk[t][2] / 2 if tk[t][2] is not None else cost_bps * 1e-4
        out.append((tk[t][0], pr[t], real, cost))
    pts[s] = out


def nw_dm(d):
    n = len(d)
    m = sum(d) / n
    L = int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0))) if n >= 2 else 0
    L = min(L, n - 1)
    g = [sum((d[t] - m) * (d[t - j] - m) for t in range(j, n)) / n for j in range(L + 1)]
    S = g[0] + 2 * sum((1 - j / (L + 1)) * g[j] for j in range(1, L + 1))
    se = math.sqrt(S / n)
    stat = m / se if se > 0 else (0.0 if m == 0 else math.copysign(math.inf, m))
    return {"stat": stat, "stat_hln": stat * math.sqrt((n - 1) / n), "lag": L,
            "p": math.erfc(abs(stat) / math.sqrt(2)), "mean": m}


def binom_sf(k, n, p):  # P(X >= k)
    if k <= 0:
        return 1.0
    tot = 0.0
    for i in range(k, n + 1):
        tot += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * math.log(p) + ((n - i) * math.log1p(-p) if p < 1 else 0.0))
    return tot


def figures(ps, ninst_all):
    n = len(ps)
    f = {"n": n}
    se = sum((p - r) ** 2 for _, p, r, _ in ps)
    serw = sum(r * r for _, _, r, _ in ps)
    f["mse"], f["mse_rw"] = se / n, serw / n
    f["mae"] = sum(abs(p - r) for _, p, r, _ in ps) / n
    f["skill"] = 1 - se / serw
    # Losses summed per timestamp, in time order.
    by = {}
    for ts, p, r, _ in ps:
        a = by.setdefault(ts, [0.0, 0.0])
        a[0] += (p - r) ** 2
        a[1] += r * r
    d = [by[t][0] - by[t][1] for t in sorted(by)]
    f["times"] = len(d)
    f["dm"] = nw_dm(d)
    called = [(p, r) for _, p, r, _ in ps if p != 0 and r != 0]
    c = len(called)
    hits = sum((p > 0) == (r > 0) for p, r in called)
    up = sum(r > 0 for _, r in called)
    pup = sum(p > 0 for p, _ in called)
    f["called"], f["hits"] = c, hits
    f["no_call"] = sum(1 for _, p, r, _ in ps if p == 0 and r != 0)
    f["tp"] = sum(p > 0 and r > 0 for p, r in called)
    f["fp"] = sum(p > 0 and r < 0 for p, r in called)
    f["fn"] = sum(p < 0 and r > 0 for p, r in called)
    f["tn"] = sum(p < 0 and r < 0 for p, r in called)
    if c:
        acc, base = hits / c, max(up, c - up) / c
        f["acc"], f["base"], f["p_base"] = acc, base, binom_sf(hits, c, base)
        py, px = up / c, pup / c
        ps_ = py * px + (1 - py) * (1 - px)
        va = ps_ * (1 - ps_) / c
        vp = ((2 * py - 1) ** 2 * px * (1 - px) / c + (2 * px - 1) ** 2 * py * (1 - py) / c
              + 4 * py * px * (1 - py) * (1 - px) / c ** 2)
        f["pt_stat"] = (acc - ps_) / math.sqrt(va - vp) if va - vp > 0 else 0.0
    # The strategy: per instrument, position sign(pred) taken at each prediction.
    insts = sorted({(s) for s in ninst_all})
    g = cst = h = 0.0
    changes = 0
    for s in insts:
        pos = 0
        for ts, p, r, cost in ninst_all[s]:
            new = (p > 0) - (p < 0)
            if new != pos:
                changes += 1
            cst += abs(new - pos) * cost
            g += new * r
            h += r
            pos = new
    k = len(insts)
    f["gross"], f["net"], f["hold"], f["changes"], f["instruments"] = g / k, (g - cst) / k, h / k, changes, k
    return f


def close(a, b, what, bad):
    if a is None or b is None or not (abs(a - b) <= 1e-7 * max(1.0, abs(b)) or
                                      (math.isinf(a) and a == b)):
        bad.append(f"{what}: eval {a}, reference {b}")


ev = json.load(open(eval_path))
bad = []
groups = [(e["sym"], e["metrics"], {e["sym"]: pts[e["sym"]]}) for e in ev["instruments"]]
groups.append(("ALL", ev["overall"], {s: pts[s] for s in syms if pts[s]}))
for name, got, sel in groups:
    allp = [x for s in sel for x in sel[s]]
    if not allp:
        continue
    want = figures(allp, sel)
    for k in ("n", "mse", "mae", "mse_rw", "skill"):
        close(got[k], want[k], f"{name} {k}", bad)
    dm = got["dm"]
    close(dm["times"], want["times"], f"{name} dm times", bad)
    close(dm["lag"], want["dm"]["lag"], f"{name} dm lag", bad)
    close(dm["mean"], want["dm"]["mean"] , f"{name} dm mean", bad)
    close(dm["stat"], want["dm"]["stat"], f"{name} dm stat", bad)
    close(dm["stat_hln"], want["dm"]["stat_hln"], f"{name} dm stat_hln", bad)
    close(dm["p"], want["dm"]["p"], f"{name} dm p", bad)
    ci = got["skill_ci"]
    if not (ci["lo"] <= got["skill"] <= ci["hi"]):
        bad.append(f"{name}: skill {got['skill']} outside [{ci['lo']}, {ci['hi']}]")
    close(ci["block"], math.ceil(want["times"] ** (1 / 3) - 1e-12), f"{name} block", bad)
    di = got["direction"]
    for k in ("called", "no_call", "hits", "tp", "fp", "fn", "tn"):
        close(di[k], want[k], f"{name} direction {k}", bad)
    if want["called"]:
        for k in ("acc", "base", "p_base", "pt_stat"):
            close(di[k], want[k], f"{name} direction {k}", bad)
    st = got["strategy"]
    for k in ("gross", "net", "hold", "changes", "instruments"):
        close(st[k], want[k], f"{name} strategy {k}", bad)
    print(f"{name}: n {want['n']} skill {want['skill']:+.6f} dm {want['dm']['stat_hln']:+.3f} "
          f"dir {want.get('acc', float('nan')):.4f} (base {want.get('base', float('nan')):.4f}) "
          f"net {want['net']:+.4f} gross {want['gross']:+.4f}")
for b in bad:
    print("MISMATCH", b)
sys.exit(1 if bad else 0)
