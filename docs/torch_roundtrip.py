#!/usr/bin/python3
"""torch_roundtrip.py: tickcast model files and PyTorch, both ways (docs/TRAINING.md).

  python3 torch_roundtrip.py export MODEL [--cell lstm|gru|rnn_tanh|rnn_relu] [--hidden H]
                                          [--layers L] [--seed S]
      builds a torch.nn.LSTM, GRU or RNN with a torch.nn.Linear head (initialized here; in
      practice the modules you trained) and writes them as a tickcast model file.
  python3 torch_roundtrip.py predict MODEL TICKS.csv
      loads a model file (from `tickcast train` or from export) into the PyTorch module it
      names and prints, for a clean sym,ts,px[,qty,bid,ask] CSV, the columns `tickcast replay`
      prints: sym,ts,px,pred_ret,pred_px,n, each instrument run from zero state; a model with
      the scale head (train --head gauss) also pred_std,lo_px,hi_px. Those are what replay
      prints but for lo_px and hi_px, which are the 90% interval with the static z (the model's
      calibrated quantile when it has one: interval_z), so they match only
      `tickcast replay --interval-adapt 0`: replay's default online interval moves each
      instrument's z with its misses (daemon/pipeline/ivtrack.h, docs/TRAINING.md "The online
      interval"), which this script does not implement.

The file is safetensors: an 8-byte little-endian header length, a JSON header, raw little-endian
float32 data. load_file and save_file below do by hand what safetensors.torch.load_file and
save_file do where that package is installed (Debian has none). Tensor names are the module's
state_dict names under its module name (lstm., gru., rnn.), then head.*, the scale head's
scale_head.* when there is one (another torch.nn.Linear(H, 1): the log-variance of the next
standardized return), features.* and target.*; an RNN's nonlinearity is the metadata key
tickcast.nonlinearity.
"""
import csv
import json
import math
import statistics
import struct
import sys

import torch


def load_file(path):
    """(tensors, metadata) of a safetensors file."""
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(buf[8 + n + a:8 + n + b]), dtype=torch.float32)
        tensors[name] = t.reshape(e["shape"]).clone()
    return tensors, meta


def save_file(tensors, path, metadata):
    """Writes float32 tensors and string metadata as safetensors.torch.save_file does."""
    header, off, names = {"__metadata__": metadata}, 0, sorted(tensors)
    for name in names:
        nbytes = tensors[name].numel() * 4
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in names:
            f.write(tensors[name].detach().float().contiguous().numpy().astype("<f4").tobytes())


def from_torch(rnn, head, path, feat_mean, feat_std, target_std):
    """rnn: torch.nn.LSTM, GRU or RNN with input_size 4; head: torch.nn.Linear(hidden, 1)."""
    prefix = type(rnn).__name__.lower()  # "lstm", "gru", "rnn": the file's module name
    sd = {f"{prefix}.{k}": v for k, v in rnn.state_dict().items()}
    sd.update({f"head.{k}": v for k, v in head.state_dict().items()})
    # CONTRACT §2: x = (raw - mean) / std; pred_ret = y * target.std + target.mean
    sd.update({"features.mean": torch.tensor(feat_mean), "features.std": torch.tensor(feat_std),
               "target.mean": torch.zeros(1), "target.std": torch.tensor([target_std])})
    meta = {"tickcast.format": "1", "tickcast.features": "ret,log_qty,log_dt,spread"}
    if prefix == "rnn":
        meta["tickcast.nonlinearity"] = rnn.nonlinearity
    save_file(sd, path, meta)


def interval_z(meta, c):
    """z of the central interval at coverage c (tickcast's ivcal_z): the model's calibrated
    quantiles of |z| (metadata tickcast.interval_absz, written by train --head gauss), linear
    between their coverages; without them the normal quantile, and outside them the normal
    quantile bounded by the table's end (below: at most the first q; above: at least the last)."""
    pts = json.loads(meta["tickcast.interval_absz"])["absz"] if "tickcast.interval_absz" in meta else []
    zn = statistics.NormalDist().inv_cdf(0.5 + 0.5 * c)
    if not pts:
        return zn
    if c < pts[0][0]:
        return min(zn, pts[0][1])
    if c > pts[-1][0]:
        return max(zn, pts[-1][1])
    i = max(j for j, (cj, _) in enumerate(pts) if cj <= c)
    if i + 1 == len(pts) or c == pts[i][0]:
        return pts[i][1]
    (c0, q0), (c1, q1) = pts[i], pts[i + 1]
    return q0 + (c - c0) / (c1 - c0) * (q1 - q0)


def to_torch(path):
    """(rnn, head, tensors, metadata) from a tickcast model file."""
    sd, meta = load_file(path)
    prefix = next(p for p in ("lstm", "gru", "rnn") if f"{p}.weight_hh_l0" in sd)
    L = sum(k.startswith(f"{prefix}.weight_hh_l") for k in sd)
    H = sd[f"{prefix}.weight_hh_l0"].shape[1]
    if prefix == "rnn":
        rnn = torch.nn.RNN(4, H, L, nonlinearity=meta.get("tickcast.nonlinearity", "tanh"))
    else:
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[prefix](4, H, L)
    # Strict: every tensor of the module must be in the file and no other (an LSTM with
    # peepholes is not nn.LSTM and fails here; CONTRACT §3 writes its cell out).
    rnn.load_state_dict({k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")})
    head = torch.nn.Linear(H, 1)
    head.load_state_dict({"weight": sd["head.weight"], "bias": sd["head.bias"]})
    return rnn, head, sd, meta


def scale_head(sd):
    """The scale head of a model file as a torch.nn.Linear(H, 1), or None without one."""
    if "scale_head.weight" not in sd:
        return None
    scale = torch.nn.Linear(sd["scale_head.weight"].shape[1], 1)
    scale.load_state_dict({"weight": sd["scale_head.weight"], "bias": sd["scale_head.bias"]})
    return scale


def features(rows):
    """CONTRACT §2 raw features of one instrument's rows, in float64: (T, 4)."""
    out, prev = [], None
    for r in rows:
        px, ts = float(r["px"]), int(r["ts"])
        bid, ask = float(r.get("bid") or 0), float(r.get("ask") or 0)
        spread = (ask - bid) / ((ask + bid) / 2) if 0 < bid <= ask else 0.0
        ret = math.log(px / prev[0]) if prev else 0.0
        ldt = math.log1p((ts - prev[1]) / 1e9) if prev else 0.0
        out.append([ret, math.log1p(float(r.get("qty") or 0)), ldt, spread])
        prev = (px, ts)
    return torch.tensor(out, dtype=torch.float64)


def predict(model, ticks):
    rnn, head, sd, meta = to_torch(model)
    scale = scale_head(sd)
    rows = list(csv.DictReader(open(ticks)))
    by_sym = {}
    for i, r in enumerate(rows):
        by_sym.setdefault(r["sym"], []).append(i)
    pred, std = [0.0] * len(rows), [0.0] * len(rows)
    tstd = float(sd["target.std"][0])
    for sym, idx in by_sym.items():
        x = (features([rows[i] for i in idx]) - sd["features.mean"].double()) / sd["features.std"].double()
        with torch.no_grad():
            out, _ = rnn(x.float().unsqueeze(1))  # (T, 1, H), from zero state
            y = head(out[:, 0]).squeeze(-1)
            s = scale(out[:, 0]).squeeze(-1) if scale else y
        for i, yy, ss in zip(idx, y.tolist(), s.tolist()):
            pred[i] = yy * tstd + float(sd["target.mean"][0])
            std[i] = math.exp(ss / 2) * tstd  # the variance is exp(s) target.std^2
    n, w = {}, csv.writer(sys.stdout, lineterminator="\n")
    z = interval_z(meta, 0.9)  # the central 90% interval, static: replay --interval-adapt 0
    w.writerow(["sym", "ts", "px", "pred_ret", "pred_px", "n"] +
               (["pred_std", "lo_px", "hi_px"] if scale else []))
    for r, p, sd_ in zip(rows, pred, std):
        n[r["sym"]] = n.get(r["sym"], 0) + 1
        px = float(r["px"])
        w.writerow([r["sym"], r["ts"], r["px"], f"{p:.10g}", f"{px * math.exp(p):.10g}", n[r["sym"]]] +
                   ([f"{sd_:.10g}", f"{px * math.exp(p - z * sd_):.10g}",
                     f"{px * math.exp(p + z * sd_):.10g}"] if scale else []))


def export(path, cell="gru", hidden=32, layers=1, seed=1):
    torch.manual_seed(seed)
    if cell.startswith("rnn"):
        rnn = torch.nn.RNN(4, hidden, layers, nonlinearity=cell[4:] or "tanh")
    else:
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, hidden, layers)
    head = torch.nn.Linear(hidden, 1)
    # Feature statistics and the target scale are the training data's; these suit ticks a
    # second apart with returns of about 1e-3.
    from_torch(rnn, head, path, [0.0, 1.0, 0.7, 1e-3], [1e-3, 1.0, 0.3, 1e-3], 1e-3)


def main(argv):
    if len(argv) >= 3 and argv[1] == "export":
        opts = dict(zip(argv[3::2], argv[4::2]))
        export(argv[2], opts.get("--cell", "gru"), int(opts.get("--hidden", 32)),
               int(opts.get("--layers", 1)), int(opts.get("--seed", 1)))
    elif len(argv) == 4 and argv[1] == "predict":
        predict(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
