#!/usr/bin/python3
"""torch_train.py [H B T L SECONDS [CELL [THREADS]]]: PyTorch training throughput of the contract
network on THREADS threads (torch.set_num_threads, default 1), the reference for
bench/bench_train.c. Same work per step as the C trainer:
nn.LSTM (or nn.GRU, nn.RNN with CELL gru, rnn_tanh, rnn_relu) over (T, B, 4) from the carried
(detached) state, a Linear head, the MSE loss, backward, global-norm clipping and an Adam step.
Prints one line: "torch_train cell=.. H=.. B=.. T=.. L=..: N tick-steps/s (...)" with the CPU
time per step of the whole process (every thread) as cpu_us_per_step=.
"""
import sys
import time

import torch


def main():
    H, B, T, L = (int(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (64, 64, 32, 1)
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 3.0
    cell = sys.argv[6] if len(sys.argv) > 6 else "lstm"
    threads = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if cell == "lstm":
        lstm = torch.nn.LSTM(4, H, num_layers=L)
    elif cell == "gru":
        lstm = torch.nn.GRU(4, H, num_layers=L)
    else:
        lstm = torch.nn.RNN(4, H, num_layers=L, nonlinearity=cell[4:])
    head = torch.nn.Linear(H, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(T, B, 4)
    tgt = torch.randn(T, B)
    h = torch.zeros(L, B, H)
    c = torch.zeros(L, B, H)

    def step(h, c):
        if cell == "lstm":
            out, (h, c) = lstm(x, (h.detach(), c.detach()))
        else:
            out, h = lstm(x, h.detach())
        y = head(out).squeeze(-1)
        loss = ((y - tgt) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return h, c

    for _ in range(3):
        h, c = step(h, c)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        h, c = step(h, c)
        n += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"torch_train cell={cell} H={H} B={B} T={T} L={L}: {n * B * T / dt:.0f} tick-steps/s "
          f"({n} steps in {dt:.2f} s, torch {torch.__version__}, {threads} thread"
          f"{'s' if threads > 1 else ''}, cpu_us_per_step={cpu * 1e6 / n:.0f})")


if __name__ == "__main__":
    main()
