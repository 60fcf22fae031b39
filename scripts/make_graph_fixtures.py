#!/usr/bin/python3
"""Generate testdata/graph/: a small branching network in PyTorch for proxykit to match.

Usage: /usr/bin/python3 scripts/make_graph_fixtures.py   (Debian's python3-torch)

The network (ResNetTiny below) has a residual block with an identity
shortcut and a grouped convolution, a residual block with a strided
projection shortcut, an inception-style pair of branches (a 1x1 convolution
and a depthwise one) joined by Concat, then Flatten and Linear; 28x28
inputs. Weights, inputs and BatchNorm statistics lie on dyadic grids
(scripts/refnet.py) and each IF layer's input is scaled so that it fires at
a rate in (0.05, 0.6), so every sum the SNN forms is exact in float32.

Writes to testdata/graph/ (and the same, but for resnet_tiny.eval4.npy,
for resnet_add: the network without the Concat part, which NIR can
express):
  resnet_tiny.onnx        torch.onnx.export at opset 13, BatchNormalization kept
  resnet_tiny.x.npy       8 inputs
  resnet_tiny.ann.npy     torch's ANN outputs
  resnet_tiny.snn.npy     spike counts of the SNN simulated here: every ReLU
                          module replaced by a stateful IF module (v += I;
                          spike when v >= 2; v = 0 on a spike), one more IF
                          layer on the output, the whole forward run at each
                          of T = 15 steps, counts summed
  resnet_tiny.eval4.npy   the ANN's outputs on resnet_tiny.x.npy after 4 proxy
                          steps in torch on testdata/proxy's 200 training
                          digits (batches of 100 in file order, no
                          augmentation, BatchNorm in eval mode; ANN forward,
                          the SNN's counts in place of its output, MSE against
                          one-hot labels, backward through the ANN, Adam with
                          lr 1e-3, betas 0.8/0.99, weight decay 1e-6), as
                          scripts/make_train_fixtures.py does for a chain
"""

import copy
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import INPUT_GRID, WEIGHT_GRID, dyadic, randomise_bn  # noqa: E402

T, VTH = 15, 2.0


class ResNetTiny(nn.Module):
    def __init__(self, concat=True):
        super().__init__()
        self.concat = concat
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_relu = nn.ReLU()
        # block 1: identity shortcut, the second convolution grouped
        self.b1c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1bn1 = nn.BatchNorm2d(8)
        self.b1r1 = nn.ReLU()
        self.b1c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.b1bn2 = nn.BatchNorm2d(8)
        self.b1r2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        # block 2: strided, projection shortcut
        self.b2c1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.b2bn1 = nn.BatchNorm2d(16)
        self.b2r1 = nn.ReLU()
        self.b2c2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b2bn2 = nn.BatchNorm2d(16)
        self.b2sc = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.b2scbn = nn.BatchNorm2d(16)
        self.b2r2 = nn.ReLU()
        # inception-style: two branches concatenated
        self.ia = nn.Conv2d(16, 8, 1)
        self.iar = nn.ReLU()
        self.ib = nn.Conv2d(16, 8, 3, padding=1, groups=8)
        self.ibr = nn.ReLU()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.stem_relu(self.stem_bn(self.stem(x)))
        y = self.b1r1(self.b1bn1(self.b1c1(x)))
        x = self.b1r2(self.b1bn2(self.b1c2(y)) + x)
        x = self.pool(x)
        y = self.b2r1(self.b2bn1(self.b2c1(x)))
        x = self.b2r2(self.b2bn2(self.b2c2(y)) + self.b2scbn(self.b2sc(x)))
        if self.concat:
            x = torch.cat([self.iar(self.ia(x)), self.ibr(self.ib(x))], dim=1)
        return self.fc(torch.flatten(x, 1))


# For each IF layer, in the order forward reaches it, the layer whose
# weights set its input current.
FEEDS = [("stem_relu", "stem_bn"), ("b1r1", "b1bn1"), ("b1r2", "b1bn2"), ("b2r1", "b2bn1"), ("b2r2", "b2bn2"),
         ("iar", "ia"), ("ibr", "ib"), ("output", "fc")]


class IF(nn.Module):
    """A stateful integrate-and-fire layer: docs/design.md §1's semantics."""

    def __init__(self, vth=VTH, v0=0.0):
        super().__init__()
        self.vth = vth
        self.v0 = v0  # the potential it starts at (v_reset = 0 plus the initial charge)
        self.v = None
        self.count = None

    def forward(self, x):
        if self.v is None:
            self.v = torch.full_like(x, self.v0)
            self.count = torch.zeros_like(x)
        self.v = self.v + x
        s = (self.v >= self.vth).float()
        self.v = torch.where(s > 0, torch.zeros_like(self.v), self.v)
        self.count += s
        return s


@torch.no_grad()
def snn(model, x):
    """Counts and firing rates of model's SNN: ReLUs replaced by IF layers, T steps."""
    saved = {}
    ifs = {}
    for name, m in list(model.named_children()):
        if isinstance(m, nn.ReLU):
            saved[name] = m
            ifs[name] = IF()
            setattr(model, name, ifs[name])
    out_if = IF()
    try:
        for _ in range(T):
            out_if(model(x))
    finally:
        for name, m in saved.items():
            setattr(model, name, m)
    ifs["output"] = out_if
    if not model.concat:  # the inception branches are not used
        ifs = {k: f for k, f in ifs.items() if k not in ("iar", "ibr")}
    rates = {k: float(f.count.sum()) / (f.count.numel() * T) for k, f in ifs.items()}
    return out_if.count, rates


def quantize(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(dyadic(m.weight, WEIGHT_GRID))
                if m.bias is not None:
                    m.bias.copy_(dyadic(m.bias, WEIGHT_GRID))


def make_every_if_fire(model, x, lo=0.05, hi=0.6, target=0.2, steps=30):
    for relu, feeder in FEEDS:
        if not model.concat and relu in ("iar", "ibr"):
            continue
        layer = getattr(model, feeder)
        grid = 2.0 ** -5 if isinstance(layer, nn.BatchNorm2d) else WEIGHT_GRID
        base = layer.weight.detach().clone()
        bias = layer.bias
        bbase = bias.detach().clone() if bias is not None else None
        lo_s, hi_s = 1e-3, 1e3
        for _ in range(steps):
            s = (lo_s * hi_s) ** 0.5
            with torch.no_grad():
                layer.weight.copy_(dyadic(base * s, grid))
                if bias is not None:
                    bias.copy_(dyadic(bbase * s, grid))
            _, rates = snn(model, x)
            if rates[relu] < target:
                lo_s = s
            else:
                hi_s = s
    _, rates = snn(model, x)
    for k, r in rates.items():
        assert lo < r < hi, f"IF layer {k} fires at rate {r:.3f}, outside ({lo}, {hi})"
    return rates


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def proxy_steps(model, batches, lr=1e-3, betas=(0.8, 0.99), wd=1e-6):
    """The reference's proxy step, BatchNorm in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
    model.eval()
    for x, y in batches:
        out = model(x)
        counts, _ = snn(model, x)
        out.data.copy_(counts)
        loss = F.mse_loss(out, F.one_hot(y.long(), 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "graph")
    os.makedirs(out, exist_ok=True)
    write(out, "resnet_tiny", concat=True, proxy=True)
    write(out, "resnet_add", concat=False, proxy=False)


def write(out, name, concat, proxy):
    torch.manual_seed(16)
    gen = torch.Generator().manual_seed(16)
    model = ResNetTiny(concat)
    randomise_bn(model, gen)
    quantize(model)
    model.eval()
    x = torch.rand(8, 1, 28, 28, generator=gen) * (torch.rand(8, 1, 28, 28, generator=gen) < 0.45).float()
    x = dyadic(x, INPUT_GRID)
    rates = make_every_if_fire(model, x)
    path = os.path.join(out, name + ".onnx")
    # BatchNormalization kept (not folded into the convolutions): the SNN's
    # BatchNorm layers run at every step, some of them before a join
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    with torch.no_grad():
        y = model(x)
    counts, _ = snn(model, x)
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".ann.npy"), y.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".snn.npy"), counts.numpy().astype(np.float32))
    if proxy:
        proxy_fixture(out, name, model, x)
    print("%s: %d bytes, IF rates %s" % (name, os.path.getsize(path), {k: round(v, 3) for k, v in rates.items()}))


def proxy_fixture(out, name, model, x):
    proxy = os.path.join(out, "..", "proxy")
    digits = torch.from_numpy(read_idx(os.path.join(proxy, "train-images-idx3-ubyte")).astype(np.float32) / 255)
    labels = torch.from_numpy(read_idx(os.path.join(proxy, "train-labels-idx1-ubyte")).astype(np.int64))
    digits = digits.unsqueeze(1)
    trained = copy.deepcopy(model)
    proxy_steps(trained, [(digits[:100], labels[:100]), (digits[100:200], labels[100:200])] * 2)
    with torch.no_grad():
        np.save(os.path.join(out, name + ".eval4.npy"), trained.eval()(x).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
