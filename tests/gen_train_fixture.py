#!/usr/bin/python3
"""gen_train_fixture.py: PyTorch reference for the trainer's forward and backward passes.

Writes tests/fixtures/train_grad_*.txt: a random model, a batch x (T, B, 4), targets, loss weights,
and what PyTorch autograd computes for the loss sum(w * (y - tgt)^2): the loss, the outputs y, the
final state (B, L, 2, H) for the LSTM, (B, L, H) for the GRU and RNN, and the gradient of every
parameter. Without peepholes the network is torch.nn.LSTM itself; with them it is the CONTRACT §3
cell written out in torch ops; the GRU and RNN files (train_grad_gru_*, train_grad_rnn_*) are
torch.nn.GRU and torch.nn.RNN themselves. The config line is L, H, peephole, B, T and, for the
GRU and RNN, the cell code of nn/base/cell.h (1 GRU, 2 RNN tanh, 3 RNN relu).
The train_grad_gauss_* files are models with the scale head (scale_head = nn.Linear(H, 1), s its
output, the log-variance): the loss is sum(w * GaussianNLLLoss(full=False, eps=1e-6,
reduction="none")(y, tgt, exp(s))), which with w = 1/n is the reduction "mean" over the n
positions that count; they add the outputs s, and 1 (gauss) as the config's seventh number.
Format: one line per entry, "name n v0 v1 ...". Run with Debian's python3 (has torch):
    /usr/bin/python3 tests/gen_train_fixture.py
"""
import os
import torch

F = 4


def lstm_peephole(x, p, L, H):
    """CONTRACT §3 with peepholes, zero initial state. x (T, B, F) -> h_top (T, B, H), state."""
    T, B, _ = x.shape
    h = [torch.zeros(B, H, dtype=x.dtype) for _ in range(L)]
    c = [torch.zeros(B, H, dtype=x.dtype) for _ in range(L)]
    out = []
    for t in range(T):
        inp = x[t]
        for k in range(L):
            z = inp @ p[f"lstm.weight_ih_l{k}"].T + p[f"lstm.bias_ih_l{k}"] \
                + h[k] @ p[f"lstm.weight_hh_l{k}"].T + p[f"lstm.bias_hh_l{k}"]
            zi, zf, zg, zo = z.split(H, dim=1)
            i = torch.sigmoid(zi + p[f"lstm.weight_ci_l{k}"] * c[k])
            f = torch.sigmoid(zf + p[f"lstm.weight_cf_l{k}"] * c[k])
            g = torch.tanh(zg)
            c[k] = f * c[k] + i * g
            o = torch.sigmoid(zo + p[f"lstm.weight_co_l{k}"] * c[k])
            h[k] = o * torch.tanh(c[k])
            inp = h[k]
        out.append(inp)
    return torch.stack(out), h, c


def batch(T, B):
    """Inputs x (T, B, F), targets (T, B) and loss weights (T, B) with two padded positions."""
    x = torch.randn(T, B, F) * 1.5
    tgt = torch.randn(T, B)
    w = torch.full((T, B), 1.0 / (T * B))
    w[T // 2, 0] = 0.0  # one padded position
    w[T - 1, B - 1] = 0.0
    return x, tgt, w


def line(name, t):
    v = t.detach().reshape(-1).tolist()
    return f"{name} {len(v)} " + " ".join(f"{a:.17g}" for a in v) + "\n"


def write(path, config, p, x, tgt, w, loss, y, state, grads, s=None):
    """The fixture: config, parameters (float32 values, exactly representable), batch, loss,
    outputs, final state, then grad.NAME of every parameter."""
    with open(path, "w") as f:
        f.write(line("config", torch.tensor(config, dtype=torch.float64)))
        for k, v in p.items():
            f.write(line(k, v))
        f.write(line("x", x))
        f.write(line("tgt", tgt))
        f.write(line("w", w))
        f.write(line("loss", loss.reshape(1)))
        f.write(line("y", y))
        if s is not None:
            f.write(line("s", s))
        f.write(line("state", state))
        for k in p:
            f.write(line("grad." + k, grads[k]))


def make(path, L, H, peephole, B, T, seed):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(F, H, num_layers=L)
    head = torch.nn.Linear(H, 1)
    p = {}
    for name, v in lstm.state_dict().items():
        p["lstm." + name] = v.detach().clone() * 2  # away from the linear regime
    for name, v in head.state_dict().items():
        p["head." + name] = v.detach().clone()
    if peephole:
        for k in range(L):
            for g in ("ci", "cf", "co"):
                p[f"lstm.weight_{g}_l{k}"] = (torch.rand(H) * 2 - 1) / H ** 0.5 * 2
    x, tgt, w = batch(T, B)
    # Work in float64 so the reference is exact to well below float32 rounding.
    pd = {k: v.double().requires_grad_(True) for k, v in p.items()}
    xd = x.double()
    if peephole:
        top, h, c = lstm_peephole(xd, pd, L, H)
    else:
        # nn.LSTM's own kernel (what its forward calls), on our float64 leaf tensors
        flat = []
        for k in range(L):
            flat += [pd[f"lstm.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        zero = torch.zeros(L, B, H, dtype=torch.float64)
        top, hn, cn = torch._VF.lstm(xd, (zero, zero), flat, True, L, 0.0, False, False, False)
        h = [hn[k] for k in range(L)]
        c = [cn[k] for k in range(L)]
    y = (top @ pd["head.weight"].T).squeeze(-1) + pd["head.bias"]
    loss = (w.double() * (y - tgt.double()) ** 2).sum()
    loss.backward()
    state = torch.stack([torch.stack([h[k], c[k]], 1) for k in range(L)], 1)  # (B, L, 2, H)
    write(path, [L, H, peephole, B, T], p, x, tgt, w, loss, y, state,
          {k: v.grad for k, v in pd.items()})
    print(f"wrote {path}: L={L} H={H} peephole={peephole} B={B} T={T} loss={loss.item():.9g}")


def make_cell(path, cell, L, H, B, T, seed):
    """The same for torch.nn.GRU (cell "gru") or torch.nn.RNN ("rnn_tanh", "rnn_relu")."""
    torch.manual_seed(seed)
    if cell == "gru":
        mod, pre, code = torch.nn.GRU(F, H, num_layers=L), "gru", 1
    else:
        mod = torch.nn.RNN(F, H, num_layers=L, nonlinearity=cell[4:])
        pre, code = "rnn", 2 if cell == "rnn_tanh" else 3
    head = torch.nn.Linear(H, 1)
    p = {}
    with torch.no_grad():
        for name, v in mod.named_parameters():
            v.mul_(2)  # away from the linear regime
            p[f"{pre}.{name}"] = v.detach().clone()
        for name, v in head.state_dict().items():
            p["head." + name] = v.detach().clone()
    x, tgt, w = batch(T, B)
    mod, head = mod.double(), head.double()  # the reference in float64, from the float32 values
    top, hn = mod(x.double())
    y = (top @ head.weight.T).squeeze(-1) + head.bias
    loss = (w.double() * (y - tgt.double()) ** 2).sum()
    loss.backward()
    state = hn.transpose(0, 1)  # (B, L, H)
    grads = {f"{pre}.{n}": v.grad for n, v in mod.named_parameters()}
    grads.update({"head." + n: v.grad for n, v in head.named_parameters()})
    write(path, [L, H, 0, B, T, code], p, x, tgt, w, loss, y, state, grads)
    print(f"wrote {path}: {cell} L={L} H={H} B={B} T={T} loss={loss.item():.9g}")


def make_gauss(path, cell, L, H, B, T, seed, scale_bias=None):
    """A model with the scale head: nn.LSTM (cell "lstm"), nn.GRU or nn.RNN, head and scale_head
    (nn.Linear(H, 1) each), the loss PyTorch's GaussianNLLLoss on var = exp(scale_head(h)).
    scale_bias, when given, sets scale_head.bias so that some variances fall below eps."""
    torch.manual_seed(seed)
    if cell == "lstm":
        mod, pre, code = torch.nn.LSTM(F, H, num_layers=L), "lstm", 0
    elif cell == "gru":
        mod, pre, code = torch.nn.GRU(F, H, num_layers=L), "gru", 1
    else:
        mod = torch.nn.RNN(F, H, num_layers=L, nonlinearity=cell[4:])
        pre, code = "rnn", 2 if cell == "rnn_tanh" else 3
    head, scale = torch.nn.Linear(H, 1), torch.nn.Linear(H, 1)
    p = {}
    with torch.no_grad():
        for name, v in mod.named_parameters():
            v.mul_(2)  # away from the linear regime
            p[f"{pre}.{name}"] = v.detach().clone()
        if scale_bias is not None:
            scale.bias.fill_(scale_bias)
        for name, v in head.state_dict().items():
            p["head." + name] = v.detach().clone()
        for name, v in scale.state_dict().items():
            p["scale_head." + name] = v.detach().clone()
    x, tgt, w = batch(T, B)
    mod, head, scale = mod.double(), head.double(), scale.double()
    top, hn = mod(x.double())
    if cell == "lstm":
        hn = torch.stack([hn[0], hn[1]], 2)  # (L, B, 2, H): h, c per layer
    y = (top @ head.weight.T).squeeze(-1) + head.bias
    sv = (top @ scale.weight.T).squeeze(-1) + scale.bias
    nll = torch.nn.GaussianNLLLoss(full=False, eps=1e-6, reduction="none")
    loss = (w.double() * nll(y, tgt.double(), torch.exp(sv))).sum()
    # With equal weights and no padding, the weighted sum is PyTorch's reduction "mean".
    mean = torch.nn.GaussianNLLLoss(full=False, eps=1e-6)(y, tgt.double(), torch.exp(sv))
    wsum = (nll(y, tgt.double(), torch.exp(sv)) / (T * B)).sum()
    assert abs(mean.item() - wsum.item()) < 1e-12
    loss.backward()
    state = hn.transpose(0, 1)  # (B, L, ...)
    grads = {f"{pre}.{n}": v.grad for n, v in mod.named_parameters()}
    grads.update({"head." + n: v.grad for n, v in head.named_parameters()})
    grads.update({"scale_head." + n: v.grad for n, v in scale.named_parameters()})
    write(path, [L, H, 0, B, T, code, 1], p, x, tgt, w, loss, y, state, grads, s=sv)
    clamped = int((torch.exp(sv) < 1e-6).sum())
    print(f"wrote {path}: gauss {cell} L={L} H={H} B={B} T={T} loss={loss.item():.9g}, "
          f"{clamped} variances below eps")


if __name__ == "__main__":
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(d, exist_ok=True)
    make(os.path.join(d, "train_grad_l1.txt"), L=1, H=8, peephole=0, B=3, T=12, seed=11)
    make(os.path.join(d, "train_grad_l2_peephole.txt"), L=2, H=6, peephole=1, B=4, T=9, seed=12)
    make_cell(os.path.join(d, "train_grad_gru_l2.txt"), "gru", L=2, H=7, B=3, T=10, seed=13)
    make_cell(os.path.join(d, "train_grad_rnn_tanh_l2.txt"), "rnn_tanh", L=2, H=6, B=4, T=11, seed=14)
    make_cell(os.path.join(d, "train_grad_rnn_relu_l1.txt"), "rnn_relu", L=1, H=9, B=3, T=12, seed=15)
    make_gauss(os.path.join(d, "train_grad_gauss_l1.txt"), "lstm", L=1, H=8, B=3, T=12, seed=16)
    make_gauss(os.path.join(d, "train_grad_gauss_gru_l2.txt"), "gru", L=2, H=7, B=3, T=10, seed=17)
    make_gauss(os.path.join(d, "train_grad_gauss_rnn_tanh_l1.txt"), "rnn_tanh", L=1, H=6, B=4, T=9,
               seed=18, scale_bias=-13.8)
