#!/usr/bin/python3
"""PyTorch's side of scripts/bench_cpu.sh: the reference proxy step on CPU.

The reference network (scripts/refnet.py) at --width, batch --batch, T=15,
v_th=2: ANN forward, SNN forward in the reference notebook's single-step
loop (SpikingJelly's clock-driven IFNode, restated in plain torch), the
counts in place of the output, MSE, backward, Adam. BN in training mode.
Prints images/s.
"""

import argparse
import copy
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(2020)
    torch.set_num_threads(os.cpu_count())  # the same cores proxykit uses
    ann = ANN(args.width)
    snn_layers = []
    for l in flat_layers(ann):
        if isinstance(l, nn.BatchNorm2d):
            own = copy.deepcopy(l)
            own.weight, own.bias = l.weight, l.bias
            l = own
        snn_layers.append(l)
    opt = torch.optim.Adam(ann.parameters(), lr=1e-4, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-6)
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        ann.train()
        out = ann(x)
        with torch.no_grad():
            first = next(i for i, l in enumerate(snn_layers) if isinstance(l, nn.ReLU))
            cur = x
            for l in snn_layers[:first]:
                cur = l(cur)
            static, rest = cur, snn_layers[first:] + [nn.ReLU()]
            v = [None] * len(rest)
            counts = 0
            for _ in range(15):
                cur = static
                for i, l in enumerate(rest):
                    if isinstance(l, nn.ReLU):
                        v[i] = cur if v[i] is None else v[i] + cur
                        s = (v[i] >= 2.0).float()
                        v[i] = v[i] * (1 - s)
                        cur = s
                    else:
                        cur = l(cur)
                counts = counts + cur
        out.data.copy_(counts)
        loss = F.mse_loss(out, F.one_hot(y, 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    el = time.perf_counter() - t0
    print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): width {args.width}, batch {args.batch}, "
          f"T=15: {args.steps * args.batch / el:.2f} images/s ({el / args.steps:.2f} s per step)")


if __name__ == "__main__":
    main()
