#!/usr/bin/env python3
"""gen_wide.py OUT [LINES] [PAD]: JSON ticks with a field the replay ignores, for timing
`replay --threads` on wide lines (docs/BENCHMARKS.md, "Wide lines"). 256 instruments round robin,
random walks (seed 1), nanosecond timestamps; each line carries PAD bytes (default 480: lines of
about 580 bytes) in a "meta" field. LINES defaults to 200,000. Not a test: it only writes the file."""
import json
import random
import sys

out = sys.argv[1]
lines = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
pad = "x" * (int(sys.argv[3]) if len(sys.argv) > 3 else 480)
random.seed(1)
px = [100.0 + i for i in range(256)]
with open(out, "w") as f:
    for i in range(lines):
        k = i % 256
        px[k] *= 1 + random.gauss(0, 1e-3)
        f.write(json.dumps({"sym": f"S{k:03d}", "ts": 1700000000000000000 + i * 1000000,
                            "px": round(px[k], 6), "qty": 1.0, "venue": "XNAS", "meta": pad}) + "\n")
