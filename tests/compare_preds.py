#!/usr/bin/python3
"""compare_preds.py MODEL A.csv B.csv [--tol 1e-4]: two replay CSVs (sym,ts,px,pred_ret,pred_px,n)
must hold the same rows in the same order (sym, ts, n equal; px equal as numbers) and the
standardized outputs y = (pred_ret - target.mean) / target.std must agree within tol. Prints the
row count and the largest difference; exits 1 on any disagreement, naming the first one."""
import csv, json, struct, sys

def target(model):
    b = open(model, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    get = lambda k: struct.unpack('<f', b[8 + n + h[k]['data_offsets'][0]:][:4])[0]
    return get('target.mean'), get('target.std')

def main():
    model, a, b = sys.argv[1:4]
    tol = float(sys.argv[sys.argv.index('--tol') + 1]) if '--tol' in sys.argv else 1e-4
    mean, std = target(model)
    ra, rb = list(csv.DictReader(open(a))), list(csv.DictReader(open(b)))
    if len(ra) != len(rb):
        sys.exit(f'{a}: {len(ra)} rows, {b}: {len(rb)} rows')
    worst = 0.0
    for i, (x, y) in enumerate(zip(ra, rb), 2):
        for k in ('sym', 'ts', 'n'):
            if x[k] != y[k]:
                sys.exit(f'row {i}: {k} differs: {x[k]!r} vs {y[k]!r}')
        if float(x['px']) != float(y['px']):
            sys.exit(f'row {i}: px differs: {x["px"]} vs {y["px"]}')
        d = abs((float(x['pred_ret']) - mean) / std - (float(y['pred_ret']) - mean) / std)
        worst = max(worst, d)
        if not d <= tol:
            sys.exit(f'row {i} ({x["sym"]} n={x["n"]}): y differs by {d:.3g} > {tol}')
    print(f'{len(ra)} rows agree; max |dy| = {worst:.3g}')

main()
