#!/usr/bin/python3
"""torch_eval_check.py MODEL TICKS.csv REPLAY.csv EVAL.json

Independent check of a model trained by `tickcast train`: reads the safetensors file by hand,
loads it into torch.nn.LSTM (+ a Linear head; the CONTRACT §3 cell in torch ops when the file
has peepholes), torch.nn.GRU (gru.*) or torch.nn.RNN (rnn.*, tickcast.nonlinearity), computes the CONTRACT §2 features of a sym,ts,px[,qty,bid,ask] CSV in float64,
and compares
  - the standardized output y of every tick with `tickcast replay` (|dy| <= 1e-4), and
  - n, mse, mae, mse_rw and skill of `tickcast eval --json` with its own scoring (rel 1e-4).
Exits non-zero on any mismatch. Needs Debian's python3 with torch.
"""
import csv
import json
import math
import struct
import sys

import torch

F = 4


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hlen])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", (name, e["dtype"])
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(buf[8 + hlen + a:8 + hlen + b]), dtype=torch.float32)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def features(rows):
    """rows of one instrument (in order) -> (n, 4) float64 raw features, per CONTRACT §2."""
    out, prev = [], None
    for r in rows:
        px, ts = float(r["px"]), int(r["ts"])
        qty = float(r.get("qty") or 0)
        bid, ask = r.get("bid"), r.get("ask")
        spread = 0.0
        if bid and ask and 0 < float(bid) <= float(ask):
            b, a = float(bid), float(ask)
            spread = (a - b) / ((a + b) / 2)
        if prev is None:
            ret, ldt = 0.0, 0.0
        else:
            ret, ldt = math.log(px / prev[0]), math.log1p((ts - prev[1]) / 1e9)
        out.append([ret, math.log1p(qty), ldt, spread])
        prev = (px, ts)
    return torch.tensor(out, dtype=torch.float64)


def run(p, x, meta):
    """x (T, 4) standardized float32 -> y (T,) float64, one instrument from zero state."""
    cell = next(c for c in ("lstm", "gru", "rnn") if f"{c}.weight_hh_l0" in p)
    L = sum(1 for k in p if k.startswith(f"{cell}.weight_hh_l"))
    H = p[f"{cell}.weight_hh_l0"].shape[1]
    peep = "lstm.weight_ci_l0" in p
    xd = x.double().unsqueeze(1)  # (T, 1, 4)
    with torch.no_grad():
        if cell != "lstm":
            if cell == "gru":
                net = torch.nn.GRU(F, H, num_layers=L).double()
            else:
                nl = meta.get("tickcast.nonlinearity", "tanh")
                net = torch.nn.RNN(F, H, num_layers=L, nonlinearity=nl).double()
            n = len(cell) + 1
            net.load_state_dict({k[n:]: v.double() for k, v in p.items() if k.startswith(cell + ".")})
            top, _ = net(xd)
        elif not peep:
            lstm = torch.nn.LSTM(F, H, num_layers=L).double()
            lstm.load_state_dict({k[5:]: v.double() for k, v in p.items() if k.startswith("lstm.")})
            top, _ = lstm(xd)
        else:
            h = [torch.zeros(1, H, dtype=torch.float64) for _ in range(L)]
            c = [torch.zeros(1, H, dtype=torch.float64) for _ in range(L)]
            q = {k: v.double() for k, v in p.items()}
            outs = []
            for t in range(xd.shape[0]):
                inp = xd[t]
                for k in range(L):
                    z = inp @ q[f"lstm.weight_ih_l{k}"].T + q[f"lstm.bias_ih_l{k}"] \
                        + h[k] @ q[f"lstm.weight_hh_l{k}"].T + q[f"lstm.bias_hh_l{k}"]
                    zi, zf, zg, zo = z.split(H, dim=1)
                    i = torch.sigmoid(zi + q[f"lstm.weight_ci_l{k}"] * c[k])
                    f = torch.sigmoid(zf + q[f"lstm.weight_cf_l{k}"] * c[k])
                    c[k] = f * c[k] + i * torch.tanh(zg)
                    o = torch.sigmoid(zo + q[f"lstm.weight_co_l{k}"] * c[k])
                    h[k] = o * torch.tanh(c[k])
                    inp = h[k]
                outs.append(inp)
            top = torch.stack(outs)
        y = top.squeeze(1) @ p["head.weight"].double().T + p["head.bias"].double()
    return y.squeeze(-1)


def main():
    model, ticks, replay, evalj = sys.argv[1:5]
    p, meta = load_safetensors(model)
    assert meta.get("tickcast.format") == "1", meta
    mean, std = p["features.mean"].double(), p["features.std"].double()
    tmean, tstd = float(p["target.mean"][0]), float(p["target.std"][0])
    by_sym, order = {}, []
    with open(ticks) as f:
        for r in csv.DictReader(f):
            by_sym.setdefault(r["sym"], []).append(r)
            order.append(r["sym"])
    ys, preds, reals = {}, [], []
    for sym, rows in by_sym.items():
        raw = features(rows)
        x = ((raw - mean) / std).float()  # CONTRACT §2: standardized in double, then float32
        y = run(p, x, meta)
        ys[sym] = y.tolist()
        pr = y * tstd + tmean
        preds += pr[:-1].tolist()
        reals += raw[1:, 0].tolist()
    # Per-tick comparison with tickcast replay (rows in input order).
    seen, worst, n = {}, 0.0, 0
    with open(replay) as f:
        for r in csv.DictReader(f):
            k = seen.get(r["sym"], 0)
            seen[r["sym"]] = k + 1
            y_c = (float(r["pred_ret"]) - tmean) / tstd
            worst = max(worst, abs(y_c - ys[r["sym"]][k]))
            n += 1
    assert n == len(order), f"replay has {n} rows, expected {len(order)}"
    print(f"replay vs torch: {n} ticks, max |dy| = {worst:.3g}")
    ok = worst <= 1e-4
    # Aggregate comparison with tickcast eval --json.
    pr, re = torch.tensor(preds, dtype=torch.float64), torch.tensor(reals, dtype=torch.float64)
    mine = {"n": len(preds), "mse": float(((pr - re) ** 2).mean()),
            "mae": float((pr - re).abs().mean()), "mse_rw": float((re ** 2).mean())}
    mine["skill"] = 1 - mine["mse"] / mine["mse_rw"]
    with open(evalj) as f:
        theirs = json.load(f)["overall"]
    for k, v in mine.items():
        tol = 1e-4 * abs(v) + (1e-4 if k == "skill" else 0)
        good = abs(theirs[k] - v) <= tol
        print(f"eval {k}: tickcast {theirs[k]:.9g}, torch {v:.9g}{'' if good else '  MISMATCH'}")
        ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
