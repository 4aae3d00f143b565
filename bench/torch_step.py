#!/usr/bin/python3
"""torch_step.py [SECONDS] [CELL:H:B ...]: PyTorch's reference for `bench_lstm --cells`: one
recurrent step of torch.nn.LSTM, GRU or RNN (tanh, relu), L = 1, as a streaming replay calls it:
module(x (1, B, 4), state) under no_grad on one thread, nanoseconds per instrument-step. Without
cases it runs every cell at H = 64, 128, 256 and B = 1, 16, 256. Prints one line per case:
"torch_step cell=gru H=64 B=16 ns_per_step=N"."""
import sys
import time

import torch

torch.set_num_threads(1)


def module(cell, H):
    if cell == "lstm":
        return torch.nn.LSTM(4, H)
    if cell == "gru":
        return torch.nn.GRU(4, H)
    return torch.nn.RNN(4, H, nonlinearity=cell[4:])


def ns_per_step(cell, H, B, seconds):
    torch.manual_seed(1)
    mod = module(cell, H)
    x = torch.randn(1, B, 4)
    h = torch.zeros(1, B, H)
    state = (h, torch.zeros(1, B, H)) if cell == "lstm" else h
    with torch.no_grad():
        for _ in range(20):
            _, state = mod(x, state)
        n, t0 = 0, time.perf_counter()
        while True:
            for _ in range(50):
                _, state = mod(x, state)
            n += 50
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
    return dt / n / B * 1e9


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.2
    cases = [a.split(":") for a in sys.argv[2:]]
    if not cases:
        cases = [(c, h, b) for c in ("lstm", "gru", "rnn_tanh", "rnn_relu")
                 for h in (64, 128, 256) for b in (1, 16, 256)]
    for cell, H, B in cases:
        t = ns_per_step(cell, int(H), int(B), seconds)
        print(f"torch_step cell={cell} H={H} B={B} ns_per_step={t:.1f}", flush=True)


if __name__ == "__main__":
    main()
