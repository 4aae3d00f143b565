#!/usr/bin/python3
"""ref_replay.py: an independent PyTorch implementation of the tickcast contract (CONTRACT §1-§5),
used as the outside reference by tests/e2e_replay.sh and as the PyTorch baseline of `make bench`.

  ref_replay.py MODEL.safetensors TICKS.(csv|jsonl) [--out FILE] [--batched] [--y]

Writes the replay CSV (sym,ts,px,pred_ret,pred_px,n), or with --y also the standardized output y
as a 7th column, and prints "ticks=N accepted=A rejected=R seconds=S ticks_per_s=T" on stderr.
--batched steps every chunk of 4096 ticks in waves (one torch call per wave), as a researcher
would batch a replay; without it, one instrument at a time (the plain reading of the contract).
It shares no code with tickcast. Needs Debian's python3-torch and python3-numpy.
"""
import csv, json, math, re, struct, sys, time
import numpy as np
import torch

torch.set_num_threads(1)

def load_safetensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    meta = hdr.pop('__metadata__', {})
    out = {}
    for k, v in hdr.items():
        s, e = v['data_offsets']
        assert v['dtype'] == 'F32'
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype='<f4').copy()).reshape(v['shape'])
    return out, meta

class Net:
    """The model's module: torch.nn.LSTM (lstm.*; the contract cell written out when it has
    peepholes), torch.nn.GRU (gru.*) or torch.nn.RNN (rnn.*, nonlinearity from the metadata
    key tickcast.nonlinearity, tanh when absent)."""
    def __init__(self, sd, meta):
        self.cell = next(p for p in ('lstm', 'gru', 'rnn') if f'{p}.weight_hh_l0' in sd)
        self.L = sum(1 for k in sd if k.startswith(f'{self.cell}.weight_hh_l'))
        self.H = sd[f'{self.cell}.weight_hh_l0'].shape[1]
        self.peep = 'lstm.weight_ci_l0' in sd
        self.sd = sd
        if self.cell == 'gru':
            self.mod = torch.nn.GRU(4, self.H, self.L, batch_first=True)
        elif self.cell == 'rnn':
            self.mod = torch.nn.RNN(4, self.H, self.L, batch_first=True,
                                    nonlinearity=meta.get('tickcast.nonlinearity', 'tanh'))
        elif not self.peep:
            self.mod = torch.nn.LSTM(4, self.H, self.L, batch_first=True)
        if not self.peep:
            n = len(self.cell) + 1
            self.mod.load_state_dict({k[n:]: v for k, v in sd.items() if k.startswith(self.cell + '.')})
    def step(self, x, h, c):
        """x (B,4), h and c (L,B,H) -> y (B,), h, c (c unused and returned as is but for the LSTM)"""
        with torch.no_grad():
            if self.cell != 'lstm':
                out, h = self.mod(x.unsqueeze(1), h)
                top = out[:, 0, :]
            elif not self.peep:
                out, (h, c) = self.mod(x.unsqueeze(1), (h, c))
                top = out[:, 0, :]
            else:
                hs, cs, inp = [], [], x
                for k in range(self.L):
                    g = lambda n: self.sd[f'lstm.{n}_l{k}']
                    z = inp @ g('weight_ih').T + g('bias_ih') + h[k] @ g('weight_hh').T + g('bias_hh')
                    i, f, gg, o = z.chunk(4, dim=1)
                    i = torch.sigmoid(i + g('weight_ci') * c[k]); f = torch.sigmoid(f + g('weight_cf') * c[k])
                    ck = f * c[k] + i * torch.tanh(gg)
                    o = torch.sigmoid(o + g('weight_co') * ck)
                    hk = o * torch.tanh(ck)
                    hs.append(hk); cs.append(ck); inp = hk
                h, c, top = torch.stack(hs), torch.stack(cs), inp
            y = top @ self.sd['head.weight'][0] + self.sd['head.bias'][0]
        return y, h, c

SYM_RE = re.compile(r'^[\x21-\x7e]{1,32}$')
TS_RE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$')

def parse_ts(v):
    if isinstance(v, bool): return None
    if isinstance(v, int): return v if -2**63 <= v < 2**63 else None
    if not isinstance(v, str): return None
    m = TS_RE.match(v)
    if not m: return None
    import datetime
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    try: dt = datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc)
    except ValueError: return None
    frac = m.group(7) or '.'
    ns = int((frac[1:] + '000000000')[:9])
    off = 0
    if m.group(8) not in 'Zz':
        sgn = 1 if m.group(8)[0] == '+' else -1
        oh, om = int(m.group(8)[1:3]), int(m.group(8)[4:6])
        if oh > 23 or om > 59: return None
        off = sgn * (oh * 60 + om) * 60
    days = (dt.date() - datetime.date(1970, 1, 1)).days
    return ((days * 86400 + hh * 3600 + mi * 60 + ss - off) * 10**9) + ns

def num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)): return None
    v = float(v)
    return v if math.isfinite(v) else None

def validate(o):
    """dict -> (sym, ts, px, qty, bid, ask) or None when rejected"""
    if not isinstance(o, dict): return None
    if any(k not in o for k in ('sym', 'ts', 'px')): return None
    sym = o['sym']
    if not isinstance(sym, str) or not SYM_RE.match(sym) or any(ch in sym for ch in '"\\,'): return None
    ts = parse_ts(o['ts'])
    if ts is None: return None
    px = num(o['px'])
    if px is None or px <= 0: return None
    qty = 0.0
    if o.get('qty') is not None:
        qty = num(o['qty'])
        if qty is None or qty < 0: return None
    bid = ask = None
    for k in ('bid', 'ask'):
        if o.get(k) is not None:
            v = num(o[k])
            if v is None or v <= 0: return None
            if k == 'bid': bid = v
            else: ask = v
    return sym, ts, px, qty, bid, ask

def read_ticks(path):
    """yields (line, tick or None)"""
    f = open(path, newline='')
    first = f.readline()
    if first.lstrip().startswith('{'):
        lines = [first] + f.readlines()
        for i, l in enumerate(lines, 1):
            if not l.strip(): continue
            try: o = json.loads(l)
            except ValueError: yield i, None; continue
            yield i, validate(o)
        return
    hdr = next(csv.reader([first]))
    for i, row in enumerate(csv.reader(f), 2):
        if not row: continue
        if len(row) != len(hdr): yield i, None; continue
        o = {}
        for k, v in zip(hdr, row):
            if v == '' or k not in ('sym', 'ts', 'px', 'qty', 'bid', 'ask'): continue
            if k == 'sym': o[k] = v
            elif k == 'ts':
                o[k] = int(v) if re.fullmatch(r'-?\d+', v) else v
            else:
                try: o[k] = float(v) if re.fullmatch(r'-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?', v) else 'x'
                except ValueError: o[k] = 'x'
        yield i, validate(o)

def main():
    a = sys.argv[1:]
    model, ticks = a[0], a[1]
    out = a[a.index('--out') + 1] if '--out' in a else '/dev/stdout'
    batched, with_y = '--batched' in a, '--y' in a
    sd, meta = load_safetensors(model)
    net = Net(sd, meta)
    fm, fs = sd['features.mean'].double().numpy(), sd['features.std'].double().numpy()
    tm, tsd = float(sd['target.mean'][0]), float(sd['target.std'][0])
    L, H = net.L, net.H
    t0 = time.time()
    inst = {}  # sym -> [slot, last_ts, last_px, n]
    hstate = torch.zeros(L, 0, H); cstate = torch.zeros(L, 0, H)
    w = open(out, 'w')
    w.write('sym,ts,px,pred_ret,pred_px,n' + (',y' if with_y else '') + '\n')
    nread = nacc = 0
    chunk = []
    def flush(chunk):
        nonlocal hstate, cstate
        # features in input order, then waves (k-th tick of each instrument in wave k)
        rows, waves = [], {}
        for sym, ts, px, qty, bid, ask in chunk:
            st = inst.get(sym)
            if st is None:
                st = inst[sym] = [len(inst), 0, 0.0, 0]
                hstate = torch.cat([hstate, torch.zeros(L, 1, H)], 1); cstate = torch.cat([cstate, torch.zeros(L, 1, H)], 1)
            first = st[3] == 0
            if not first and ts < st[1]: continue
            raw = [0.0 if first else math.log(px / st[2]), math.log1p(qty),
                   0.0 if first else math.log1p((ts - st[1]) / 1e9),
                   (ask - bid) / ((ask + bid) / 2) if bid is not None and ask is not None and bid <= ask else 0.0]
            x = ((np.array(raw) - fm) / fs).astype(np.float32)
            st[1], st[2], st[3] = ts, px, st[3] + 1
            r = [sym, ts, px, st[3], x, None]
            rows.append(r)
        if batched:
            cnt = {}
            for j, r in enumerate(rows):
                k = cnt.get(r[0], 0); cnt[r[0]] = k + 1
                waves.setdefault(k, []).append(j)
            order = [waves[k] for k in sorted(waves)]
        else:
            order = [[j] for j in range(len(rows))]
        for wv in order:
            idx = torch.tensor([inst[rows[j][0]][0] for j in wv])
            x = torch.from_numpy(np.stack([rows[j][4] for j in wv]))
            y, h, c = net.step(x, hstate[:, idx], cstate[:, idx])
            hstate[:, idx] = h; cstate[:, idx] = c
            for j, yy in zip(wv, y.tolist()): rows[j][5] = yy
        for sym, ts, px, n, x, y in rows:
            pr = y * tsd + tm
            w.write(f'{sym},{ts},{px!r},{pr:.17g},{px * math.exp(pr):.17g},{n}' + (f',{y:.9g}' if with_y else '') + '\n')
        return len(rows)
    for line, t in read_ticks(ticks):
        nread += 1
        if t is None: continue
        chunk.append(t)
        if len(chunk) == 4096:
            nacc += flush(chunk); chunk = []
    nacc += flush(chunk)
    w.close()
    dt = time.time() - t0
    print(f'ticks={nread} accepted={nacc} rejected={nread - nacc} seconds={dt:.3f} ticks_per_s={nread / dt:.0f}', file=sys.stderr)

if __name__ == '__main__':
    main()
