#!/usr/bin/python3
"""PyTorch's side of scripts/bench_cpu.sh, on the CPU, on all its cores.

--what blas:   the BLAS library torch's matrix products run on (the
               libblas.so.3 this process mapped, OpenBLAS's own
               description where it is OpenBLAS) and torch.mm's rate on
               two --sgemm² float32 matrices, best of three.
--what train:  the proxy-learning step: ANN forward, the SNN's T = 15
               steps in the reference notebook's single-step loop
               (SpikingJelly's clock-driven IFNode restated in plain torch:
               v += I, spike where v >= 2, hard reset to 0), the counts in
               place of the output, MSE, backward, Adam (lr 1e-4, betas
               (0.8, 0.99), weight decay 1e-6). BN in training mode in both
               networks, the SNN's BN layers with statistics of their own
               (shared γ, β).
--what infer:  the SNN's T = 15 steps on a batch, without gradients; BN
               with its running statistics (--bn eval, as `proxykit bench`
               measures) or with each step's batch statistics (--bn batch,
               as in a training step's SNN).

--arch fmnist is the paper's network (scripts/refnet.py) at --width;
--arch resnet is proxykit's nn.ResNet with one basic block per stage
(ResNet-8): conv 3×3 + BN + ReLU, stages of --width, 2·width and 4·width
channels (stride 2 and a 1×1 projection shortcut from the second on),
global average pooling, linear to 10 classes; its SNN turns every ReLU
into an IF layer, adds one after the last layer, and runs the first
conv + BN once per input. Inputs: the first test images of MNIST or
Fashion-MNIST (--idx DIR, the folder of their t10k IDX files, gzipped or
not; 1×28×28) or uniform random images (1×28×28; 3×32×32 for a ResNet).
Prints one line: images/s.
"""

import argparse
import copy
import ctypes
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers  # noqa: E402

T, VTH = 15, 2.0


def blas():
    """The BLAS library torch uses, and torch.mm's GFLOP/s."""
    a = torch.rand(8, 8)
    a @ a  # maps the BLAS library
    lib = None
    with open("/proc/self/maps") as f:
        for line in f:
            if "libblas.so" in line or "libopenblas" in line:
                lib = os.path.realpath(line.split()[-1])
                break
    desc = lib or "none mapped"
    if lib:
        try:
            ob = ctypes.CDLL(lib)
            ob.openblas_get_config.restype = ctypes.c_char_p
            ob.openblas_get_corename.restype = ctypes.c_char_p
            desc += f" (OpenBLAS: {ob.openblas_get_config().decode()}, core {ob.openblas_get_corename().decode()}, " \
                    f"{ob.openblas_get_num_threads()} threads)"
        except (OSError, AttributeError):
            desc += " (not OpenBLAS: the reference BLAS?)"
    return desc


def sgemm_rate(n):
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


class Block(nn.Module):
    """nn.ResNet's basic block."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x, act):
        h = act(self.bn1(self.conv1(x)), "relu1")
        h = self.bn2(self.conv2(h))
        return act(h + (x if self.down is None else self.down(x)), "relu2")


class ResNet(nn.Module):
    """nn.ResNet(in, width, 1, 10): ResNet-8."""

    def __init__(self, cin, width):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.blocks = nn.ModuleList([Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2)])
        self.fc = nn.Linear(4 * width, 10)

    def static(self, x):
        return self.bn1(self.conv1(x))

    def rest(self, h, act):
        h = act(h, "relu1")
        for i, b in enumerate(self.blocks):
            h = b(h, lambda v, name, i=i: act(v, f"{i}.{name}"))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def forward(self, x):
        return self.rest(self.static(x), lambda v, _: F.relu(v))


def if_layer(state, name, current):
    """One IF step: v += I; spike where v >= v_th; hard reset to 0. In place,
    into buffers kept from step to step (the anchor at its best: a fresh
    40 MB tensor per layer and step costs PyTorch more than the arithmetic;
    a layer's spikes are read by the next layer before its next step)."""
    st = state.get(name)
    if st is None:
        v, spikes = current.clone(), torch.empty_like(current)
        state[name] = (v, spikes)
    else:
        v, spikes = st
        v.add_(current)
    torch.ge(v, VTH, out=spikes)  # float spikes straight from the comparison
    v.masked_fill_(v >= VTH, 0)
    return spikes


def twin(ann):
    """The SNN's copy of ann: the same parameters, BN statistics of its own."""
    snn = copy.deepcopy(ann)
    for (name, p) in ann.named_parameters():
        mod, attr = snn, name.split(".")
        for a in attr[:-1]:
            mod = getattr(mod, a)
        setattr(mod, attr[-1], p)  # shared: the same Parameter object
    return snn


def snn_forward(arch, ann, snn, x):
    """Spike counts of the SNN over T steps (clock-driven), no gradients."""
    with torch.no_grad():
        if arch == "fmnist":
            layers = flat_layers(snn)
            first = next(i for i, l in enumerate(layers) if isinstance(l, nn.ReLU))
            cur = x
            for l in layers[:first]:
                cur = l(cur)
            static, rest = cur, layers[first:] + [nn.ReLU()]
            state, counts = {}, 0
            for _ in range(T):
                cur = static
                for i, l in enumerate(rest):
                    cur = if_layer(state, i, cur) if isinstance(l, nn.ReLU) else l(cur)
                counts = counts + cur
            return counts
        static = snn.static(x)
        state, counts = {}, 0
        for _ in range(T):
            out = snn.rest(static, lambda v, name: if_layer(state, name, v))
            counts = counts + if_layer(state, "out", out)
        return counts


def read_idx(folder, name, offset):
    """An IDX file's bytes after its header, from name or name.gz."""
    path = os.path.join(folder, name)
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def inputs(args):
    shape = (3, 32, 32) if args.arch == "resnet" and not args.idx else (1, 28, 28)
    if args.idx:
        raw = read_idx(args.idx, "t10k-images-idx3-ubyte", 16)
        labels = read_idx(args.idx, "t10k-labels-idx1-ubyte", 8)
        x = torch.from_numpy(raw[:args.batch * 784].astype(np.float32) / 255).reshape(args.batch, *shape)
        return x, torch.from_numpy(labels[:args.batch].astype(np.int64))
    return torch.rand(args.batch, *shape), torch.randint(0, 10, (args.batch,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", choices=["blas", "train", "infer"], default="train")
    ap.add_argument("--arch", choices=["fmnist", "resnet"], default="fmnist")
    ap.add_argument("--width", type=int, default=0, help="fmnist: 128; resnet: 16")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--bn", choices=["eval", "batch"], default="eval", help="infer: BN statistics")
    ap.add_argument("--idx", default="", help="folder of MNIST's or Fashion-MNIST's t10k files (else random inputs)")
    ap.add_argument("--seconds", type=float, default=10, help="time for at least this long (two runs at least)")
    ap.add_argument("--sgemm", type=int, default=4096)
    args = ap.parse_args()
    torch.manual_seed(2020)
    torch.set_num_threads(os.cpu_count())  # the same cores proxykit uses
    if args.what == "blas":
        print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas()}; "
              f"torch.mm {args.sgemm}x{args.sgemm}: {sgemm_rate(args.sgemm):.1f} GFLOP/s")
        return
    width = args.width or (128 if args.arch == "fmnist" else 16)
    x, y = inputs(args)
    ann = ANN(width) if args.arch == "fmnist" else ResNet(x.shape[1], width)
    snn = twin(ann)
    opt = torch.optim.Adam(ann.parameters(), lr=1e-4, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-6)

    def train_step():
        ann.train()
        snn.train()
        out = ann(x)
        counts = snn_forward(args.arch, ann, snn, x)
        out.data.copy_(counts)
        loss = F.mse_loss(out, F.one_hot(y, 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        snn.train(args.bn == "batch")
        snn_forward(args.arch, ann, snn, x)

    f = train_step if args.what == "train" else infer
    f()  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < args.seconds:
        f()
        n += 1
    el = (time.perf_counter() - t0) / n
    what = "training step" if args.what == "train" else f"SNN inference (BN {args.bn})"
    print(f"pytorch {what}, {args.arch} width {width}, {'real' if args.idx else 'random'} inputs, batch {args.batch}: "
          f"{args.batch / el:.2f} images/s ({el:.3f} s per batch, {n} batches)")


if __name__ == "__main__":
    main()
