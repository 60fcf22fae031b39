#!/usr/bin/python3
"""torchvision's ResNet-18 as ONNX, with torch's ANN outputs and SNN counts, for proxykit to match.

Usage: /usr/bin/python3 scripts/make_resnet18.py OUT_DIR   (Debian's python3-torch and python3-torchvision)

Too large for testdata/ (45 MB), so scripts/test.sh writes it to .cache/
and the tests read it from $PROXYKIT_RESNET18 (they say so, and fail, when
it is set but missing; without it they are skipped — scripts/test.sh sets it).

torchvision.models.resnet18(weights=None) (seeded), its weights rounded to
a 2^-8 grid and its BatchNorm statistics drawn on dyadic grids
(scripts/refnet.py), on two 3x64x64 inputs on a 2^-4 grid, so every sum its
SNN forms is exact. Writes:
  resnet18.onnx     torch.onnx.export at opset 13 (BatchNormalization folded by torch)
  resnet18.x.npy    the inputs
  resnet18.ann.npy  torch's outputs
  resnet18.snn.npy  the SNN's spike counts over T = 4 steps (v_th = 1): every
                    ReLU application replaced by its own stateful IF layer
                    (torchvision's BasicBlock applies one nn.ReLU twice; here
                    each application gets an IF layer of its own), one more IF
                    layer on the output
  resnet18.rates.txt the IF layers' firing rates
"""

import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_graph_fixtures import IF  # noqa: E402
from refnet import INPUT_GRID, WEIGHT_GRID, dyadic, randomise_bn  # noqa: E402

T = 4


def block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.act1(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.act2(out + identity)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(18)
    gen = torch.Generator().manual_seed(18)
    model = torchvision.models.resnet18(weights=None)
    randomise_bn(model, gen)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(dyadic(m.weight * 4, WEIGHT_GRID))
                if m.bias is not None:
                    m.bias.copy_(dyadic(m.bias, WEIGHT_GRID))
    model.eval()
    blocks = [m for m in model.modules() if isinstance(m, torchvision.models.resnet.BasicBlock)]
    for b in blocks:  # two distinct ReLU applications, so that each can become its own IF layer
        b.act1, b.act2 = nn.ReLU(), nn.ReLU()
        b.forward = types.MethodType(block_forward, b)
    x = dyadic(torch.rand(2, 3, 64, 64, generator=gen), INPUT_GRID)
    path = os.path.join(out, "resnet18.onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], opset_version=13)
    with torch.no_grad():
        y = model(x)
    # the SNN: every ReLU module (model.relu once, each block's act1 and act2) an IF layer
    ifs = []
    with torch.no_grad():
        def swap(parent, name):
            f = IF(vth=1.0)
            ifs.append(f)
            setattr(parent, name, f)
        swap(model, "relu")
        for b in blocks:
            swap(b, "act1")
            swap(b, "act2")
        out_if = IF(vth=1.0)
        for _ in range(T):
            out_if(model(x))
    rates = [float(f.count.sum()) / (f.count.numel() * T) for f in ifs + [out_if]]
    np.save(os.path.join(out, "resnet18.x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, "resnet18.ann.npy"), y.numpy().astype(np.float32))
    np.save(os.path.join(out, "resnet18.snn.npy"), out_if.count.numpy().astype(np.float32))
    with open(os.path.join(out, "resnet18.rates.txt"), "w") as f:
        f.write(" ".join("%.4f" % r for r in rates) + "\n")
    print("resnet18: %d bytes, IF rates %s" % (os.path.getsize(path), [round(r, 3) for r in rates]))


if __name__ == "__main__":
    main()
