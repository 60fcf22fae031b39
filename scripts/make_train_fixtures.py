#!/usr/bin/python3
"""Generate testdata/proxy/: a proxy-learning run in PyTorch for proxykit to match.

Usage: /usr/bin/python3 scripts/make_train_fixtures.py   (Debian's python3-torch)

Writes:
  net.onnx                  the reference network at width 4, BN kept, weights
                            scaled so that every IF layer fires
  train-*-ubyte, t10k-*     a 200-image (and 100-image) IDX data set
  x.npy                     a fixed batch of 16 images to compare outputs on
  before.npy                the ANN's outputs on it before training
  eval4.npy                 after 4 proxy steps (batch 100, no shuffle, no
                            augmentation, BN in eval mode), torch's Adam
  train1.npy                after 1 proxy step with BN in training mode
                            (both networks update their own statistics),
                            evaluated with the updated running statistics

The proxy step is the reference's: ANN forward; SNN forward without
gradients; the ANN output's values replaced by the spike counts; MSE loss
against one-hot labels; backward through the ANN; Adam (lr 1e-3 here, so
that 4 steps move the weights well clear of rounding noise; betas 0.8, 0.99;
weight decay 1e-6).
"""

import copy
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers, make_every_if_fire  # noqa: E402

T, VTH = 15, 2.0
LR, BETAS, WD = 1e-3, (0.8, 0.99), 1e-6


def write_idx(path, arr, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in arr.shape:
            f.write(struct.pack(">I", d))
        f.write(arr.astype(np.uint8).tobytes())


def digits(gen, n):
    """Blurry strokes on black: uint8 images whose class shifts where the ink is."""
    labels = torch.randint(0, 10, (n,), generator=gen)
    img = torch.zeros(n, 28, 28)
    for i in range(n):
        r = 4 + int(labels[i]) * 2
        img[i, r:r + 6, 6:22] = torch.rand(6, 16, generator=gen)
        img[i] += 0.3 * torch.rand(28, 28, generator=gen) * (torch.rand(28, 28, generator=gen) < 0.1)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.uint8)


class SNN:
    """The reference SNN: the ANN's layers, own BatchNorm statistics, IF neurons."""

    def __init__(self, ann):
        self.layers = []
        for l in flat_layers(ann):
            if isinstance(l, nn.BatchNorm2d):
                own = copy.deepcopy(l)
                own.weight, own.bias = l.weight, l.bias  # shared γ, β; own running statistics
                l = own
            self.layers.append(l)

    def train(self, mode):
        for l in self.layers:
            l.train(mode)

    @torch.no_grad()
    def counts(self, x):
        first = next(i for i, l in enumerate(self.layers) if isinstance(l, nn.ReLU))
        cur = x
        for l in self.layers[:first]:
            cur = l(cur)
        static = cur
        rest = self.layers[first:] + [nn.ReLU()]
        v = [None] * len(rest)
        total = 0
        for _ in range(T):
            cur = static
            for i, l in enumerate(rest):
                if isinstance(l, nn.ReLU):
                    v[i] = cur if v[i] is None else v[i] + cur
                    s = (v[i] >= VTH).float()
                    v[i] = v[i] * (1 - s)
                    cur = s
                else:
                    cur = l(cur)
            total = total + cur
        return total


def proxy_steps(ann, snn, batches, bn_train):
    opt = torch.optim.Adam(ann.parameters(), lr=LR, betas=BETAS, eps=1e-8, weight_decay=WD)
    for x, y in batches:
        ann.train(bn_train)
        snn.train(bn_train)
        out = ann(x)
        counts = snn.counts(x)
        out.data.copy_(counts)
        loss = F.mse_loss(out, F.one_hot(y.long(), 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "proxy")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(2020)
    gen = torch.Generator().manual_seed(2020)
    imgs, labels = digits(gen, 200)
    test_imgs, test_labels = digits(gen, 100)
    write_idx(os.path.join(out, "train-images-idx3-ubyte"), imgs.numpy(), 0x803)
    write_idx(os.path.join(out, "train-labels-idx1-ubyte"), labels.numpy(), 0x801)
    with gzip.open(os.path.join(out, "t10k-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 100, 28, 28) + test_imgs.numpy().tobytes())
    with gzip.open(os.path.join(out, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, 100) + test_labels.numpy().tobytes())

    x = imgs.float() / 255
    x = x.unsqueeze(1)
    ann = ANN(4).eval()
    make_every_if_fire(ann, x[:100], quantize=False, steps=16, scale_range=(0.05, 20))
    torch.onnx.export(ann, x[:1], os.path.join(out, "net.onnx"), input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    fixed = x[:16]
    np.save(os.path.join(out, "x.npy"), fixed.numpy())
    with torch.no_grad():
        np.save(os.path.join(out, "before.npy"), ann.eval()(fixed).numpy())

    batches = [(x[:100], labels[:100]), (x[100:], labels[100:])] * 2
    a = copy.deepcopy(ann)
    proxy_steps(a, SNN(a), batches, bn_train=False)
    with torch.no_grad():
        np.save(os.path.join(out, "eval4.npy"), a.eval()(fixed).numpy())

    b = copy.deepcopy(ann)
    proxy_steps(b, SNN(b), batches[:1], bn_train=True)
    with torch.no_grad():
        np.save(os.path.join(out, "train1.npy"), b.eval()(fixed).numpy())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
