#!/usr/bin/python3
"""torch_replay.py MODEL TICKS.csv [--out FILE] [--threads N]: the PyTorch baseline of `make
bench`: a batched replay written the way a researcher would make it fast: the CSV parsed in one go
with numpy, features vectorized per instrument, ticks grouped in chunks of 4096 and stepped in
waves (the k-th tick of each instrument in wave k) with one call of the model's torch.nn.LSTM, GRU
or RNN per wave, on N threads (torch.set_num_threads and set_num_interop_threads; default 1).
Clean CSV input only (sym,ts,px,qty,bid,ask): no validation, unlike tickcast. Prints
"torch_replay threads=N ticks=N seconds=S ticks_per_s=R" on stdout."""
import json, struct, sys, time
import numpy as np
import torch

THREADS = int(sys.argv[sys.argv.index('--threads') + 1]) if '--threads' in sys.argv else 1
torch.set_num_threads(THREADS)
torch.set_num_interop_threads(THREADS)

def load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    return {k: torch.from_numpy(np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]],
                                              dtype='<f4').copy()).reshape(v['shape']) for k, v in h.items()}, meta

def main():
    model, path = sys.argv[1], sys.argv[2]
    out = sys.argv[sys.argv.index('--out') + 1] if '--out' in sys.argv else '/dev/null'
    t0 = time.time()
    sd, meta = load(model)
    cell = next(p for p in ('lstm', 'gru', 'rnn') if f'{p}.weight_hh_l0' in sd)
    L = sum(1 for k in sd if k.startswith(f'{cell}.weight_hh_l')); H = sd[f'{cell}.weight_hh_l0'].shape[1]
    if cell == 'rnn':
        net = torch.nn.RNN(4, H, L, nonlinearity=meta.get('tickcast.nonlinearity', 'tanh'))
    else:
        net = (torch.nn.LSTM if cell == 'lstm' else torch.nn.GRU)(4, H, L)
    net.load_state_dict({k[len(cell) + 1:]: v for k, v in sd.items() if k.startswith(cell + '.')})
    hw, hb = sd['head.weight'][0], sd['head.bias'][0]
    fm, fs = sd['features.mean'].double().numpy(), sd['features.std'].double().numpy()
    tm, tsd = float(sd['target.mean'][0]), float(sd['target.std'][0])
    raw = open(path).read().split('\n')
    cols = raw[0].split(',')
    rows = [r.split(',') for r in raw[1:] if r]
    N = len(rows)
    sym = np.array([r[cols.index('sym')] for r in rows])
    ts = np.array([int(r[cols.index('ts')]) for r in rows], dtype=np.int64)
    px, qty, bid, ask = (np.array([float(r[cols.index(c)]) for r in rows]) for c in ('px', 'qty', 'bid', 'ask'))
    names, inst = np.unique(sym, return_inverse=True)
    K = len(names)
    # features, vectorized per instrument (stable order within each instrument)
    order = np.argsort(inst, kind='stable')
    so = inst[order]
    first = np.ones(N, bool); first[1:] = so[1:] != so[:-1]
    prev = np.roll(order, 1)
    ret = np.where(first, 0.0, np.log(px[order] / px[prev]))
    with np.errstate(invalid="ignore"):  # the masked first ticks use a wrapped-around prev
        ldt = np.where(first, 0.0, np.log1p((ts[order] - ts[prev]) / 1e9))
    n = np.arange(N) - np.maximum.accumulate(np.where(first, np.arange(N), 0)) + 1
    X = np.empty((N, 4)); X[order, 0] = ret; X[order, 2] = ldt; X[:, 1] = np.log1p(qty)
    ok = bid <= ask
    X[:, 3] = np.where(ok, (ask - bid) / ((ask + bid) / 2), 0.0)
    nn_ = np.empty(N, np.int64); nn_[order] = n
    X = torch.from_numpy(((X - fm) / fs).astype(np.float32))
    h = torch.zeros(L, K, H); c = torch.zeros(L, K, H) if cell == 'lstm' else None
    y = torch.empty(N)
    idx_all = torch.from_numpy(inst)
    with torch.no_grad():
        for s in range(0, N, 4096):
            e = min(N, s + 4096)
            ci = inst[s:e]
            # wave of each tick = its occurrence number within the chunk
            o = np.argsort(ci, kind='stable'); cs = ci[o]
            st = np.ones(len(ci), bool); st[1:] = cs[1:] != cs[:-1]
            k = np.arange(len(ci)) - np.maximum.accumulate(np.where(st, np.arange(len(ci)), 0))
            wave = np.empty(len(ci), np.int64); wave[o] = k
            for w in range(wave.max() + 1):
                sel = np.nonzero(wave == w)[0] + s
                ii = idx_all[sel]
                if c is None:
                    o_, hn = net(X[sel].unsqueeze(0), h[:, ii])
                else:
                    o_, (hn, cn) = net(X[sel].unsqueeze(0), (h[:, ii], c[:, ii]))
                    c[:, ii] = cn
                h[:, ii] = hn
                y[sel] = o_[0] @ hw + hb
    pr = y.double().numpy() * tsd + tm
    pp = px * np.exp(pr)
    with open(out, 'w') as f:
        f.write('sym,ts,px,pred_ret,pred_px,n\n')
        f.writelines(f'{a},{b},{c_!r},{d:.10g},{e_:.10g},{g}\n' for a, b, c_, d, e_, g in zip(sym, ts, px, pr, pp, nn_))
    dt = time.time() - t0
    print(f'torch_replay threads={THREADS} ticks={N} seconds={dt:.3f} ticks_per_s={N / dt:.0f}')

main()
