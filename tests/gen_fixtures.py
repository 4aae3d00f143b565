#!/usr/bin/python3
"""gen_fixtures.py: regenerates the PyTorch fixtures that tests/test_nn_lstm.c,
tests/test_nn_cells.c and tests/test_nn_model.c check the C network against (CONTRACT §3-§4,
and the GRU and RNN cells).

Run with Debian's python3 (torch 1.13, numpy):  /usr/bin/python3 tests/gen_fixtures.py
For each case it writes, under tests/fixtures/:
  nn_<case>.safetensors  the model, written by hand in the format safetensors.torch.save_file
                         produces (there is no safetensors package here); metadata also holds
                         test.instruments (N) and test.steps (T)
  nn_<case>.x.f32        standardized inputs x, little-endian float32, shape (T, N, 4)
  nn_<case>.y.f32        expected standardized outputs y, little-endian float32, shape (T, N)
The expected y is computed in float64 from the float32 weights, so it is the contract's exact
answer; the C code (float32, approximate gates) must match within 1e-5. Without peepholes the
reference is torch.nn.LSTM itself (cross-checked against the hand-written contract equations);
with peepholes it is the contract equations written out in torch. The GRU and RNN cases
(nn_gru_*, nn_rnn_tanh_*, nn_rnn_relu_*) are torch.nn.GRU and torch.nn.RNN themselves, cross-checked
against their equations written out here, with the instrument count N varying by case.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
N, T = 4, 220  # instruments, steps

CASES = [  # name, layers, hidden, peephole, seed
    ("l1_h8", 1, 8, False, 1),
    ("l2_h16", 2, 16, False, 2),
    ("l1_h8_peep", 1, 8, True, 3),
    ("l2_h16_peep", 2, 16, True, 4),
    ("l3_h5_peep", 3, 5, True, 5),
]


def save_safetensors(path, tensors, metadata):
    """Writes tensors (name -> float32 numpy array) as safetensors.torch.save_file would:
    8-byte LE header length, compact JSON header padded with spaces to a multiple of 8,
    then the raw little-endian data in header order."""
    header = {"__metadata__": metadata}
    off = 0
    names = sorted(tensors)
    for n in names:
        a = np.ascontiguousarray(tensors[n], dtype="<f4")
        header[n] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            f.write(np.ascontiguousarray(tensors[n], dtype="<f4").tobytes())


def contract_step(sd, L, H, peep, x, h, c):
    """One step of CONTRACT §3 in float64 for a batch: x (N, 4), h, c lists of (N, H)."""
    inp = x
    for k in range(L):
        z = (inp @ sd[f"lstm.weight_ih_l{k}"].T + sd[f"lstm.bias_ih_l{k}"]
             + h[k] @ sd[f"lstm.weight_hh_l{k}"].T + sd[f"lstm.bias_hh_l{k}"])
        zi, zf, zg, zo = z.split(H, dim=1)
        ci = sd[f"lstm.weight_ci_l{k}"] * c[k] if peep else 0
        cf = sd[f"lstm.weight_cf_l{k}"] * c[k] if peep else 0
        i = torch.sigmoid(zi + ci)
        f = torch.sigmoid(zf + cf)
        g = torch.tanh(zg)
        c[k] = f * c[k] + i * g
        co = sd[f"lstm.weight_co_l{k}"] * c[k] if peep else 0
        o = torch.sigmoid(zo + co)
        h[k] = o * torch.tanh(c[k])
        inp = h[k]
    return inp @ sd["head.weight"].T + sd["head.bias"]  # (N, 1)


def add_head(sd, g, H):
    sd["head.weight"] = torch.randn(1, H, generator=g) * 0.5
    sd["head.bias"] = torch.randn(1, generator=g) * 0.1


def scaled_and_inputs(sd, g, n):
    """sd with the scaling tensors every case has, all float32; and the inputs x (T, n, 4): mostly
    N(0, 1), with spikes of +-6 and an instrument with long quiet stretches."""
    sd["features.mean"] = torch.tensor([1e-5, 2.3, 0.4, 3e-4])
    sd["features.std"] = torch.tensor([2e-3, 1.1, 0.7, 1e-4])
    sd["target.mean"] = torch.tensor([-2e-6])
    sd["target.std"] = torch.tensor([1.7e-3])
    sd = {k: v.float() for k, v in sd.items()}
    x = torch.randn(T, n, 4, generator=g)
    spikes = torch.rand(T, n, 4, generator=g) < 0.03
    x[spikes] = 6.0 * torch.sign(torch.randn(int(spikes.sum()), generator=g))
    x[40:90, n - 1, :] = 0.0
    return sd, x.float()


def save_case(name, sd, x, y, n, meta=None):
    """nn_<name>.safetensors (with the test.* metadata), .x.f32 and .y.f32."""
    meta = dict({"tickcast.format": "1", "tickcast.features": "ret,log_qty,log_dt,spread",
                 "test.case": name, "test.instruments": str(n), "test.steps": str(T)}, **(meta or {}))
    save_safetensors(os.path.join(OUT, f"nn_{name}.safetensors"),
                     {k: v.numpy() for k, v in sd.items()}, meta)
    x.numpy().astype("<f4").tofile(os.path.join(OUT, f"nn_{name}.x.f32"))
    y.float().numpy().astype("<f4").tofile(os.path.join(OUT, f"nn_{name}.y.f32"))


def make_case(name, L, H, peep, seed):
    g = torch.Generator().manual_seed(seed)
    lstm = torch.nn.LSTM(4, H, num_layers=L)
    head = torch.nn.Linear(H, 1)
    sd = {}
    # Weights twice PyTorch's default init scale, so that gates leave their linear region.
    for n, p in lstm.state_dict().items():
        sd["lstm." + n] = (torch.rand(p.shape, generator=g) * 2 - 1) * 2 / H ** 0.5
    add_head(sd, g, H)
    if peep:
        for k in range(L):
            for w in ("ci", "cf", "co"):
                sd[f"lstm.weight_{w}_l{k}"] = torch.rand(H, generator=g) - 0.5
    sd, x = scaled_and_inputs(sd, g, N)

    sd64 = {k: v.double() for k, v in sd.items()}
    h = [torch.zeros(N, H, dtype=torch.float64) for _ in range(L)]
    c = [torch.zeros(N, H, dtype=torch.float64) for _ in range(L)]
    y = torch.stack([contract_step(sd64, L, H, peep, x[t].double(), h, c)[:, 0] for t in range(T)])

    if not peep:  # the same answer from torch.nn.LSTM itself
        ref = torch.nn.LSTM(4, H, num_layers=L).double()
        ref.load_state_dict({k[5:]: v for k, v in sd64.items() if k.startswith("lstm.")})
        with torch.no_grad():
            out, _ = ref(x.double())  # (T, N, H)
            y2 = out @ sd64["head.weight"].T[:, 0] + sd64["head.bias"]
        err = (y2 - y).abs().max().item()
        assert err < 1e-12, f"{name}: contract equations vs nn.LSTM differ by {err}"

    save_case(name, sd, x, y, N)
    print(f"{name}: L={L} H={H} peephole={int(peep)} N={N} T={T} "
          f"y range [{y.min().item():.3f}, {y.max().item():.3f}] std {y.std().item():.3f}")


CELL_CASES = [  # name, cell, layers, hidden, instruments, scale, seed
    ("gru_l1_h8", "gru", 1, 8, 4, 2.0, 21),
    ("gru_l2_h16", "gru", 2, 16, 7, 2.0, 22),
    ("gru_l3_h5", "gru", 3, 5, 3, 2.0, 23),
    ("gru_l1_h64", "gru", 1, 64, 16, 1.5, 24),
    ("rnn_tanh_l1_h8", "rnn_tanh", 1, 8, 4, 2.0, 25),
    ("rnn_tanh_l2_h16", "rnn_tanh", 2, 16, 9, 2.0, 26),
    ("rnn_tanh_l1_h64", "rnn_tanh", 1, 64, 16, 1.5, 27),
    ("rnn_relu_l1_h8", "rnn_relu", 1, 8, 5, 1.0, 28),
    ("rnn_relu_l2_h12", "rnn_relu", 2, 12, 6, 1.0, 29),
]


def cell_module(cell, H, L):
    """The PyTorch module of a cell and its prefix in the model file."""
    if cell == "gru":
        return torch.nn.GRU(4, H, num_layers=L), "gru"
    return torch.nn.RNN(4, H, num_layers=L, nonlinearity=cell[4:]), "rnn"


def cell_step(sd, cell, L, H, x, h):
    """One step of a GRU or RNN in float64 written out from PyTorch's documented equations:
    x (N, 4), h a list of (N, H). Returns the top layer's h."""
    inp = x
    for k in range(L):
        p = "gru" if cell == "gru" else "rnn"
        gi = inp @ sd[f"{p}.weight_ih_l{k}"].T + sd[f"{p}.bias_ih_l{k}"]
        gh = h[k] @ sd[f"{p}.weight_hh_l{k}"].T + sd[f"{p}.bias_hh_l{k}"]
        if cell == "gru":
            ir, iz, i_n = gi.split(H, dim=1)
            hr, hz, hn = gh.split(H, dim=1)
            r = torch.sigmoid(ir + hr)
            z = torch.sigmoid(iz + hz)
            n = torch.tanh(i_n + r * hn)
            h[k] = (1 - z) * n + z * h[k]
        elif cell == "rnn_tanh":
            h[k] = torch.tanh(gi + gh)
        else:
            h[k] = torch.relu(gi + gh)
        inp = h[k]
    return inp


def make_cell_case(name, cell, L, H, N, scale, seed):
    g = torch.Generator().manual_seed(seed)
    mod, pre = cell_module(cell, H, L)
    sd = {}
    for n, p in mod.state_dict().items():
        sd[f"{pre}." + n] = (torch.rand(p.shape, generator=g) * 2 - 1) * scale / H ** 0.5
    add_head(sd, g, H)
    sd, x = scaled_and_inputs(sd, g, N)

    sd64 = {k: v.double() for k, v in sd.items()}
    ref = mod.double()
    ref.load_state_dict({k[len(pre) + 1:]: v for k, v in sd64.items() if k.startswith(pre + ".")})
    with torch.no_grad():
        out, _ = ref(x.double())  # (T, N, H)
        y = out @ sd64["head.weight"].T[:, 0] + sd64["head.bias"]
    h = [torch.zeros(N, H, dtype=torch.float64) for _ in range(L)]
    top = torch.stack([cell_step(sd64, cell, L, H, x[t].double(), h) for t in range(T)])
    y2 = top @ sd64["head.weight"].T[:, 0] + sd64["head.bias"]
    err = (y2 - y).abs().max().item()
    assert err < 1e-12, f"{name}: written-out equations vs torch.nn module differ by {err}"

    # tanh, PyTorch's default, is left implicit
    save_case(name, sd, x, y, N, {"tickcast.nonlinearity": "relu"} if cell == "rnn_relu" else {})
    print(f"{name}: cell={cell} L={L} H={H} N={N} T={T} "
          f"y range [{y.min().item():.3f}, {y.max().item():.3f}] std {y.std().item():.3f}")


def tiny_tensors(L, H, peep, rng, pre="lstm"):
    t = {}
    G = {"lstm": 4, "gru": 3, "rnn": 1}[pre] * H
    for k in range(L):
        t[f"{pre}.weight_ih_l{k}"] = rng.uniform(-1, 1, (G, 4 if k == 0 else H))
        t[f"{pre}.weight_hh_l{k}"] = rng.uniform(-1, 1, (G, H))
        t[f"{pre}.bias_ih_l{k}"] = rng.uniform(-1, 1, (G,))
        t[f"{pre}.bias_hh_l{k}"] = rng.uniform(-1, 1, (G,))
        if peep:
            for w in ("ci", "cf", "co"):
                t[f"lstm.weight_{w}_l{k}"] = rng.uniform(-1, 1, (H,))
    t["head.weight"] = rng.uniform(-1, 1, (1, H))
    t["head.bias"] = rng.uniform(-1, 1, (1,))
    t["features.mean"] = rng.uniform(-1, 1, (4,))
    t["features.std"] = rng.uniform(0.5, 2, (4,))
    t["target.mean"] = rng.uniform(-1, 1, (1,))
    t["target.std"] = rng.uniform(0.5, 2, (1,))
    return {k: v.astype("<f4") for k, v in t.items()}


def raw_file(tensors, metadata, mutate=None):
    """Bytes of a safetensors file; mutate(header_dict) may damage the header first."""
    header = {"__metadata__": metadata} if metadata is not None else {}
    off = 0
    for n in sorted(tensors):
        header[n] = {"dtype": "F32", "shape": list(tensors[n].shape),
                     "data_offsets": [off, off + tensors[n].nbytes]}
        off += tensors[n].nbytes
    if mutate:
        mutate(header)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(tensors[n].tobytes() for n in sorted(tensors))


def make_corpus():
    """The seed corpus of tests/fuzz/fuzz_model.c: small valid models and damaged variants."""
    out = os.path.join(os.path.dirname(OUT), "corpus", "model")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    meta = {"tickcast.format": "1", "tickcast.features": "ret,log_qty,log_dt,spread", "note": "x"}
    files = {}
    for L, H, peep in ((1, 1, False), (1, 2, True), (2, 2, False), (2, 1, True), (3, 2, False)):
        files[f"valid_l{L}_h{H}{'_peep' if peep else ''}"] = raw_file(tiny_tensors(L, H, peep, rng), meta)
    t = tiny_tensors(1, 2, False, rng)

    def setf(name, field, val):
        def f(h):
            h[name][field] = val
        return f

    def delk(name):
        return lambda h: h.pop(name)

    def swap_offsets(h):
        b = h["head.weight"]["data_offsets"][0]
        h["head.bias"]["data_offsets"] = [b, b + 4]
    mut = {
        "dtype_f16": setf("head.weight", "dtype", "F16"),
        "shape_wrong": setf("lstm.weight_ih_l0", "shape", [8, 3]),
        "shape_string": setf("head.weight", "shape", "1x2"),
        "shape_huge": setf("head.weight", "shape", [1, 4611686018427387904]),
        "shape_3d": setf("head.weight", "shape", [1, 1, 2]),
        "offsets_out": setf("target.std", "data_offsets", [0, 99999]),
        "offsets_reversed": setf("head.bias", "data_offsets", [8, 4]),
        "offsets_negative": setf("head.bias", "data_offsets", [-4, 0]),
        "offsets_overlap": swap_offsets,
        "missing_tensor": delk("head.bias"),
        "missing_hh0": delk("lstm.weight_hh_l0"),
        "meta_not_object": lambda h: h.__setitem__("__metadata__", [1]),
        "meta_format_2": lambda h: h["__metadata__"].__setitem__("tickcast.format", "2"),
        "meta_int": lambda h: h["__metadata__"].__setitem__("n", 3),
        "entry_null": lambda h: h.__setitem__("head.bias", None),
        "unknown_tensor": lambda h: h.__setitem__("lstm.weight_ih_l1", h["head.bias"]),
        "layer_gap": lambda h: h.__setitem__("lstm.weight_hh_l2", h["lstm.weight_hh_l0"]),
        "partial_peep": lambda h: h.__setitem__("lstm.weight_ci_l0", h["head.bias"]),
    }
    for name, f in mut.items():
        files["bad_" + name] = raw_file(t, meta, f)
    files["bad_no_metadata"] = raw_file(t, None)
    good = raw_file(t, meta)
    hl = struct.unpack("<Q", good[:8])[0]
    files["bad_truncated"] = good[: len(good) - 7]
    files["bad_header_len_big"] = struct.pack("<Q", 1 << 40) + good[8:]
    files["bad_header_len_1"] = struct.pack("<Q", 1) + good[8:]
    files["bad_short"] = good[:6]
    files["bad_json"] = good[:8] + b"{" + good[10:]
    files["bad_header_array"] = good[:8] + b"[" + b" " * (hl - 2) + b"]" + good[8 + hl:]
    nan = bytearray(good)
    nan[8 + hl + 4:8 + hl + 8] = struct.pack("<f", float("nan"))
    files["bad_nan"] = bytes(nan)
    zero_std = tiny_tensors(1, 2, False, np.random.default_rng(1))
    zero_std["features.std"][2] = 0
    files["bad_std_zero"] = raw_file(zero_std, meta)
    crng = np.random.default_rng(11)  # the cells' files, after the LSTM ones
    files["valid_gru_l2_h2"] = raw_file(tiny_tensors(2, 2, False, crng, "gru"), meta)
    files["valid_rnn_l1_h3"] = raw_file(tiny_tensors(1, 3, False, crng, "rnn"), meta)
    files["valid_rnn_relu_l2_h2"] = raw_file(tiny_tensors(2, 2, False, crng, "rnn"),
                                             dict(meta, **{"tickcast.nonlinearity": "relu"}))
    mixed = tiny_tensors(1, 2, False, crng, "gru")
    mixed["rnn.weight_hh_l0"] = crng.uniform(-1, 1, (2, 2)).astype("<f4")
    files["bad_two_cells"] = raw_file(mixed, meta)
    files["bad_nonlinearity_gru"] = raw_file(tiny_tensors(1, 2, False, crng, "gru"),
                                             dict(meta, **{"tickcast.nonlinearity": "relu"}))
    files["bad_nonlinearity_sigmoid"] = raw_file(tiny_tensors(1, 2, False, crng, "rnn"),
                                                 dict(meta, **{"tickcast.nonlinearity": "sigmoid"}))
    files["bad_gru_shape"] = raw_file(tiny_tensors(1, 2, False, crng, "gru"), meta,
                                      lambda h: h["gru.weight_hh_l0"].__setitem__("shape", [8, 2]))
    for name, b in files.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(b)
    print(f"corpus: {len(files)} files in {out}")


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for case in CASES:
        make_case(*case)
    for case in CELL_CASES:
        make_cell_case(*case)
    make_corpus()
    return 0


if __name__ == "__main__":
    sys.exit(main())
