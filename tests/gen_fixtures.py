#!/usr/bin/python3
"""gen_fixtures.py: regenerates the PyTorch fixtures that tests/test_nn_lstm.c and
tests/test_nn_model.c check the C network against (CONTRACT §3-§4).

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
with peepholes it is the contract equations written out in torch.
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


def make_case(name, L, H, peep, seed):
    g = torch.Generator().manual_seed(seed)
    lstm = torch.nn.LSTM(4, H, num_layers=L)
    head = torch.nn.Linear(H, 1)
    sd = {}
    # Weights twice PyTorch's default init scale, so that gates leave their linear region.
    for n, p in lstm.state_dict().items():
        sd["lstm." + n] = (torch.rand(p.shape, generator=g) * 2 - 1) * 2 / H ** 0.5
    sd["head.weight"] = torch.randn(1, H, generator=g) * 0.5
    sd["head.bias"] = torch.randn(1, generator=g) * 0.1
    if peep:
        for k in range(L):
            for w in ("ci", "cf", "co"):
                sd[f"lstm.weight_{w}_l{k}"] = torch.rand(H, generator=g) - 0.5
    sd["features.mean"] = torch.tensor([1e-5, 2.3, 0.4, 3e-4])
    sd["features.std"] = torch.tensor([2e-3, 1.1, 0.7, 1e-4])
    sd["target.mean"] = torch.tensor([-2e-6])
    sd["target.std"] = torch.tensor([1.7e-3])
    sd = {k: v.float() for k, v in sd.items()}

    # Inputs: mostly N(0, 1), with spikes of +-6 and an instrument with long quiet stretches.
    x = torch.randn(T, N, 4, generator=g)
    spikes = torch.rand(T, N, 4, generator=g) < 0.03
    x[spikes] = 6.0 * torch.sign(torch.randn(int(spikes.sum()), generator=g))
    x[40:90, N - 1, :] = 0.0
    x = x.float()

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

    meta = {"tickcast.format": "1", "tickcast.features": "ret,log_qty,log_dt,spread",
            "test.case": name, "test.instruments": str(N), "test.steps": str(T)}
    save_safetensors(os.path.join(OUT, f"nn_{name}.safetensors"),
                     {k: v.numpy() for k, v in sd.items()}, meta)
    x.numpy().astype("<f4").tofile(os.path.join(OUT, f"nn_{name}.x.f32"))
    y.float().numpy().astype("<f4").tofile(os.path.join(OUT, f"nn_{name}.y.f32"))
    print(f"{name}: L={L} H={H} peephole={int(peep)} N={N} T={T} "
          f"y range [{y.min().item():.3f}, {y.max().item():.3f}] std {y.std().item():.3f}")


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for case in CASES:
        make_case(*case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
