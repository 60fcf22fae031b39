#!/usr/bin/python3
"""torchvision's ResNet-18 and SqueezeNet 1.1 as ONNX, with torch's ANN outputs and SNN counts, for proxykit to match.

Usage: /usr/bin/python3 scripts/make_torchvision.py OUT_DIR   (Debian's python3-torch and python3-torchvision)

Too large for testdata/ (45 and 5 MB), so scripts/test.sh writes them to
.cache/ and the tests read them from $PROXYKIT_TORCHVISION (they say so,
and fail, when it is set but missing; without it they are skipped —
scripts/test.sh sets it).

torchvision.models.resnet18(weights=None) and squeezenet1_1(weights=None)
(seeded), their weights rounded to a 2^-8 grid and ResNet's BatchNorm
statistics drawn on dyadic grids (scripts/refnet.py), on two inputs on a
2^-4 grid (3x64x64 for ResNet-18, 3x80x80 for SqueezeNet, whose last
feature map is then 4x4), so every sum their SNNs form is exact. Writes,
for NAME in resnet18, squeezenet1_1:
  NAME.onnx     torch.onnx.export at opset 13 (BatchNormalization folded by torch)
  NAME.x.npy    the inputs
  NAME.ann.npy  torch's outputs
  NAME.snn.npy  the SNN's spike counts over T = 4 steps (v_th = 1): every
                ReLU application replaced by its own stateful IF layer
                (torchvision's BasicBlock applies one nn.ReLU twice; here
                each application gets an IF layer of its own; SqueezeNet's
                Fire modules have one ReLU module per application), one
                more IF layer on the output
  NAME.rates.txt the IF layers' firing rates
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


def resnet18(gen):
    model = torchvision.models.resnet18(weights=None)
    randomise_bn(model, gen)
    blocks = [m for m in model.modules() if isinstance(m, torchvision.models.resnet.BasicBlock)]
    for b in blocks:  # two distinct ReLU applications, so that each can become its own IF layer
        b.act1, b.act2 = nn.ReLU(), nn.ReLU()
        b.forward = types.MethodType(block_forward, b)
    return model, 64


def squeezenet(gen):
    return torchvision.models.squeezenet1_1(weights=None), 80


def make(out, name, build, gen):
    model, size = build(gen)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(dyadic(m.weight * 4, WEIGHT_GRID))
                if m.bias is not None:
                    m.bias.copy_(dyadic(m.bias, WEIGHT_GRID))
    model.eval()
    x = dyadic(torch.rand(2, 3, size, size, generator=gen), INPUT_GRID)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], opset_version=13)
    with torch.no_grad():
        y = model(x)
    # the SNN: every ReLU module an IF layer, in the order the forward applies them
    ifs = []
    with torch.no_grad():
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, nn.ReLU):
                    setattr(parent, child_name, IF(vth=1.0))
        order = []
        for m in model.modules():
            if isinstance(m, IF):
                m.register_forward_hook(lambda mod, _in, _out: order.append(mod) if mod not in order else None)
        out_if = IF(vth=1.0)
        for _ in range(T):
            out_if(model(x))
        ifs = order
    rates = [float(f.count.sum()) / (f.count.numel() * T) for f in ifs + [out_if]]
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".ann.npy"), y.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".snn.npy"), out_if.count.numpy().astype(np.float32))
    with open(os.path.join(out, name + ".rates.txt"), "w") as f:
        f.write(" ".join("%.4f" % r for r in rates) + "\n")
    print("%s: %d bytes, %d IF layers, rates %s" % (name, os.path.getsize(path), len(rates), [round(r, 3) for r in rates]))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(18)
    gen = torch.Generator().manual_seed(18)
    make(out, "resnet18", resnet18, gen)
    make(out, "squeezenet1_1", squeezenet, gen)


if __name__ == "__main__":
    main()
