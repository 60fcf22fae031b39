#!/usr/bin/python3
"""Generate proxykit's ONNX test fixtures with real PyTorch.

Usage (Debian's python3 with python3-torch and python3-onnx installed):

    /usr/bin/python3 scripts/make_fixtures.py            # rewrites testdata/
    /usr/bin/python3 scripts/make_fixtures.py --full DIR # full-width network (78 MB), for CI

For each model NAME it writes:
    NAME.onnx       the exported network
    NAME.x.npy      a fixed float32 input batch [B, C, H, W] in [0, 1]
    NAME.ann.npy    torch's ANN output on it
    NAME.snn.npy    spike counts [B, K] of scripts/refnet.py's PyTorch SNN (T=15, v_th=2, v_reset=0)
and, for the reference network, NAME.snn_t8.npy with T=8, v_th=1.5, v_reset=0.5;
for groupnet_opset13 (grouped and depthwise convolutions) also groupnet.pt, the
same module saved with torch.save.

Weights are rescaled (scripts/refnet.py: make_every_if_fire) so that every IF
layer fires at a rate strictly between 0 and 1 on the fixed input; the script
asserts it. Everything is seeded, so reruns give the same files.
"""

import argparse
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import INPUT_GRID, ANN, dyadic, flat_layers, make_every_if_fire, randomise_bn, snn_counts  # noqa: E402


def images(gen, b, c=1, h=28, w=28, quantize=True):
    """A batch of image-like inputs in [0, 1]: ink on a dark background, on a 1/16 grid (see refnet)."""
    x = torch.rand(b, c, h, w, generator=gen)
    mask = (torch.rand(b, c, h, w, generator=gen) < 0.45).float()
    x = x * mask
    if quantize:
        x = dyadic(x, INPUT_GRID)
    return x.contiguous()


def save(out, name, model, x, export_kwargs, layers=None, extra_snn=False):
    model.eval()
    layers = layers if layers is not None else flat_layers(model)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], **export_kwargs)
    onnx.checker.check_model(onnx.load(path))
    with torch.no_grad():
        y = model(x)
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".ann.npy"), y.numpy().astype(np.float32))
    counts, rates = snn_counts(layers, x, T=15, v_th=2.0, v_reset=0.0, record_rates=True)
    np.save(os.path.join(out, name + ".snn.npy"), counts.numpy().astype(np.float32))
    if extra_snn:
        c8 = snn_counts(layers, x, T=8, v_th=1.5, v_reset=0.5)
        np.save(os.path.join(out, name + ".snn_t8.npy"), c8.numpy().astype(np.float32))
    print(f"{name}: {os.path.getsize(path)} bytes, IF rates {[round(r, 3) for r in rates]}")


def fmnist_raw(out, gen):
    """The reduced reference network with unrounded weights and BN statistics (BN kept).

    Its SNN is chaotic at the last bit (see refnet.make_every_if_fire), so
    tests hold proxykit's ANN to it tightly and its SNN only statistically.
    """
    model = ANN(8)
    randomise_bn(model, gen, quantize=False)
    model.eval()
    x = images(gen, 16, quantize=False)
    make_every_if_fire(model, x, quantize=False)
    save(out, "fmnist_w8_raw", model, x, dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False))


def fmnist(out, gen, width, batch, names, bisect_steps=40):
    model = ANN(width)
    randomise_bn(model, gen)
    model.eval()
    x = images(gen, batch)
    if bisect_steps < 40:
        make_every_if_fire(model, x, steps=bisect_steps, scale_range=(0.02, 50))
    else:
        make_every_if_fire(model, x)
    folded, kept = names
    save(out, folded, model, x, {}, extra_snn=True)
    if kept:
        # BN kept as BatchNormalization nodes and bias-free Linear kept as MatMul + Transpose.
        save(out, kept, model, x, dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False),
             extra_snn=True)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class ViewNet(nn.Module):
    """Uses x.view(x.size(0), -1), an asymmetric ZeroPad2d, stride, dilation and a padded MaxPool."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.c1 = nn.Conv2d(1, 6, 3, stride=2)
        self.bn = nn.BatchNorm2d(6)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(6, 8, 3, padding=2, dilation=2)
        self.r2 = nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.f1 = nn.Linear(8 * 7 * 7, 32)
        self.r3 = nn.ReLU()
        self.f2 = nn.Linear(32, 10)

    def layers(self):
        return [self.pad, self.c1, self.bn, self.r1, self.c2, self.r2, self.pool, _View(), self.f1, self.r3, self.f2]

    def forward(self, x):
        x = self.pool(self.r2(self.c2(self.r1(self.bn(self.c1(self.pad(x)))))))
        x = x.view(x.size(0), -1)
        return self.f2(self.r3(self.f1(x)))


class _View(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class GapNet(nn.Module):
    """Global average pooling and a LogSoftmax head, exported at opset 9."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 4, stride=4, padding=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.net(x)


def asym(out, gen):
    """A hand-built opset-21 graph: Conv with asymmetric pads and strides, Gemm with alpha, beta, transB=0.

    torch computes the expected outputs with F.pad + conv2d and an equivalent Linear.
    """
    b = 6
    x = images(gen, b, 1, 12, 12)
    w = torch.randn(4, 1, 3, 3, generator=gen) * 0.8
    cb = torch.rand(4, generator=gen) * 0.3
    pads = [1, 0, 2, 1]  # top, left, bottom, right
    oh = (12 + 1 + 2 - 3) // 2 + 1
    ow = (12 + 0 + 1 - 3) // 1 + 1
    feat = 4 * oh * ow
    gb = torch.randn(feat, 10, generator=gen) * 0.3
    gc = torch.rand(10, generator=gen) * 0.2
    alpha, beta = 0.5, 2.0

    pad = nn.ZeroPad2d((pads[1], pads[3], pads[0], pads[2]))
    conv = nn.Conv2d(1, 4, 3, stride=(2, 1))
    lin = nn.Linear(feat, 10)
    layers = [pad, conv, nn.ReLU(), nn.Flatten(), lin]

    def load():
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(cb)
            lin.weight.copy_(alpha * gb.t())
            lin.bias.copy_(beta * gc)

    load()
    seq = nn.Sequential(*layers)
    make_every_if_fire(seq, x)
    w, cb = conv.weight.detach().clone(), conv.bias.detach().clone()
    gb, gc = (lin.weight.detach() / alpha).t().contiguous(), lin.bias.detach() / beta

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "W", "B"], ["c"], name="conv_asym", kernel_shape=[3, 3],
                             pads=pads, strides=[2, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
            helper.make_node("Gemm", ["f", "G", "C"], ["output"], name="gemm", alpha=alpha, beta=beta, transB=0),
        ],
        "asym",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 12, 12])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w.numpy(), "W"), numpy_helper.from_array(cb.numpy(), "B"),
         numpy_helper.from_array(gb.numpy(), "G"), numpy_helper.from_array(gc.numpy(), "C")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="make_fixtures.py")
    model.ir_version = 8
    onnx.save(model, os.path.join(out, "asym_opset21.onnx"))
    with torch.no_grad():
        y = seq(x)
    np.save(os.path.join(out, "asym_opset21.x.npy"), x.numpy())
    np.save(os.path.join(out, "asym_opset21.ann.npy"), y.numpy())
    counts, rates = snn_counts(layers, x, record_rates=True)
    np.save(os.path.join(out, "asym_opset21.snn.npy"), counts.numpy())
    print(f"asym_opset21: IF rates {[round(r, 3) for r in rates]}")


def bad_models(out, gen):
    """Models proxykit must refuse with a clear error (bad_sigmoid), and a tiny
    residual network (bad_residual) that proxykit refused until it imported
    branching networks; the name stayed, the tests now import it."""

    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)
            self.f = nn.Linear(2 * 26 * 26, 10)

        def forward(self, x):
            return self.f(torch.sigmoid(self.c(x)).flatten(1))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 2, 3, padding=1)
            self.c2 = nn.Conv2d(2, 2, 3, padding=1)
            self.f = nn.Linear(2 * 28 * 28, 10)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            return self.f((h + self.c2(h)).flatten(1))

    x = images(gen, 1)
    torch.onnx.export(Sig().eval(), x, os.path.join(out, "bad_sigmoid.onnx"), input_names=["input"])
    torch.onnx.export(Residual().eval(), x, os.path.join(out, "bad_residual.onnx"), input_names=["input"])


class GroupNet(nn.Module):
    """Depthwise (groups = channels, and a channel multiplier of 2) and grouped (2 groups, stride 2) convolutions."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(12, 24, 3, padding=1, groups=12, bias=False), nn.ReLU(),
            nn.Flatten(), nn.Linear(24 * 7 * 7, 10))

    def forward(self, x):
        return self.net(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata"))
    ap.add_argument("--full", metavar="DIR", help="write only the full-width reference network into DIR")
    args = ap.parse_args()
    torch.manual_seed(2020)
    gen = torch.Generator().manual_seed(2020)

    if args.full:
        os.makedirs(args.full, exist_ok=True)
        fmnist(args.full, gen, 128, 4, ("fmnist_w128", None), bisect_steps=9)
        return

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    fmnist(out, gen, 8, 16, ("fmnist_w8_folded", "fmnist_w8_bn"))

    fmnist_raw(out, gen)

    lenet = LeNet()
    x = images(gen, 8)
    make_every_if_fire(lenet, x)
    save(out, "lenet_opset11", lenet, x, dict(opset_version=11))

    vn = ViewNet()
    randomise_bn(vn, gen)
    vn.eval()
    x = images(gen, 8)
    seq = nn.Sequential(*vn.layers())
    make_every_if_fire(seq, x)
    save(out, "viewnet", vn, x, dict(dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}),
         layers=vn.layers())

    gn = GapNet().eval()
    x = images(gen, 8)
    make_every_if_fire(gn, x)
    save(out, "gapnet_opset9", gn, x, dict(opset_version=9))

    asym(out, gen)
    bad_models(out, gen)

    # added after the others, from a generator of its own, so that they keep their values
    gen2 = torch.Generator().manual_seed(2021)
    torch.manual_seed(2021)
    grp = GroupNet()
    randomise_bn(grp, gen2)
    grp.eval()
    x = images(gen2, 8)
    make_every_if_fire(grp, x)
    save(out, "groupnet_opset13", grp, x, dict(opset_version=13))
    torch.save(grp, os.path.join(out, "groupnet.pt"))  # the same module, pickled whole


if __name__ == "__main__":
    main()
