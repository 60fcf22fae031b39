#!/usr/bin/python3
"""torchvision's ResNet-18 and SqueezeNet 1.1, and MobileNetV2, MNASNet 1.0 and ShuffleNetV2 x1.0, as ONNX, with torch's ANN outputs and SNN counts, for proxykit to match.

Usage: /usr/bin/python3 scripts/make_torchvision.py OUT_DIR   (Debian's python3-torch and python3-torchvision)

Too large for testdata/ (45, 5, 14, 17 and 9 MB), so scripts/test.sh writes them to
.cache/ and the tests read them from $PROXYKIT_TORCHVISION (they say so,
and fail, when it is set but missing; without it they are skipped —
scripts/test.sh sets it).

MobileNetV2 (ReLU6), MNASNet (its mean over H and W) and ShuffleNetV2 (its
channel shuffle and split along channels), the efficient networks of the
networks users bring (issue #35): torchvision's classes with random
weights on the same dyadic grid, BatchNorm statistics randomised likewise,
two 64x64 inputs, exported at opset 13 on a batch of ONE (so that
ShuffleNet's shuffle carries the traced batch size 1 in its Reshape
constants, and proxykit must run it at batch 2). For the SNN, each IF
layer's input is then scaled by a power of two (its BatchNorm's γ and β,
or the classifier's weights) so that it fires on 2 % to 70 % of its
neurons' steps where it can, under both IF twins of a clipped ReLU
(docs/design.md §1, "ReLU6"; saturate: a ReLU6's IF layer has v_th = 6;
relu: v_th = 1); those gains make the ANN's float32 sums, which are not
exact, too ill-conditioned for a comparison, so the ANN is compared before
them. Writes, for NAME in mobilenet_v2, mnasnet1_0, shufflenet_v2_x1_0:
  NAME.onnx, NAME.x.npy, NAME.ann.npy   the network as built, as below
  NAME.snn.onnx  the network with its IF layers' inputs scaled
  NAME.snn_saturate.npy, NAME.snn_relu.npy   NAME.snn.onnx's SNN counts
                over T = 4 steps (v_th = 1) under each twin (the same for
                networks without ReLU6)
  NAME.rates.json  each twin's firing rate per IF layer

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

import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_graph_fixtures import IF, quantize  # noqa: E402
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


TWINS = ("saturate", "relu")


def neurons(model):
    """(parent, child name, module, feeding module) of every ReLU and ReLU6
    module, in the order the forward applies them; the feeding module is
    the BatchNorm (or convolution) before it in its Sequential."""
    found = []
    for parent in model.modules():
        children = list(parent.named_children())
        for k, (name, child) in enumerate(children):
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                feed = children[k - 1][1] if k > 0 else None
                assert isinstance(feed, (nn.BatchNorm2d, nn.Conv2d)), (name, feed)
                found.append((parent, name, child, feed))
    order = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for _, _, m, _ in found]
    return found, order, hooks


class Enough(Exception):
    """Ends a time step after the IF layer of interest."""


@torch.no_grad()
def zoo_snn(model, found, x, twin, upto=None):
    """Counts and per-layer rates of model's SNN under twin, T steps; with
    upto, each step stops after IF layer upto (the rates after it are
    not valid then)."""
    ifs = []
    for parent, name, m, _ in found:
        vth = 6.0 if (twin == "saturate" and isinstance(m, nn.ReLU6)) else 1.0
        f = IF(vth)
        setattr(parent, name, f)
        ifs.append(f)
    out = IF(1.0)
    hook = None
    if upto is not None and upto < len(ifs):
        def stop(*_):
            raise Enough()
        hook = ifs[upto].register_forward_hook(stop)
    try:
        for _ in range(T):
            try:
                out(model(x))
            except Enough:
                pass
    finally:
        if hook is not None:
            hook.remove()
        for parent, name, m, _ in found:
            setattr(parent, name, m)
    return out.count, [float(f.count.sum()) / (f.count.numel() * T) if f.count is not None else 0.0 for f in ifs + [out]]


def zoo(out, name, build, gen):
    model = build(weights=None)
    randomise_bn(model, gen)
    quantize(model)
    model.eval()
    x = dyadic(torch.rand(2, 3, 64, 64, generator=gen), INPUT_GRID)
    torch.onnx.export(model, x[:1], os.path.join(out, name + ".onnx"), input_names=["input"], output_names=["output"],
                      opset_version=13)
    with torch.no_grad():
        y = model(x)
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".ann.npy"), y.numpy().astype(np.float32))
    found, order, hooks = neurons(model)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    applied = []
    for m in order:  # each application once, in order
        if m not in applied:
            applied.append(m)
    assert len(applied) == len(found), "a ReLU module applied twice"
    feeds = [next(f for _, _, mm, f in found if mm is m) for m in applied]
    found = [next(t for t in found if t[2] is m) for m in applied]
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    # each IF layer's input scaled by 2^e, front to back, the output's last
    for k, feed in enumerate(feeds + [last]):
        params = [p for p in (feed.weight, feed.bias) if p is not None]
        base = [p.detach().clone() for p in params]

        def rates_at(e):
            with torch.no_grad():
                for p, b in zip(params, base):
                    p.copy_(b * 2.0 ** e)
            return [zoo_snn(model, found, x, twin, upto=k)[1][k] for twin in TWINS]

        def score(r):
            return min(min(r), 0.7 - max(r))

        # from 2^0 up until both twins fire on 5 % or one passes 70 %,
        # or down until neither passes 70 %; the best score on the way
        r = rates_at(0)
        best, step = (score(r), 0), 1 if min(r) < 0.05 else -1 if max(r) > 0.7 else 0
        e = 0
        while step and -6 < e < 12:
            e += step
            r = rates_at(e)
            if score(r) > best[0]:
                best = (score(r), e)
            if step > 0 and (min(r) >= 0.05 or max(r) > 0.7) or step < 0 and max(r) <= 0.7:
                break
        rates_at(best[1])
    path = os.path.join(out, name + ".snn.onnx")
    torch.onnx.export(model, x[:1], path, input_names=["input"], output_names=["output"], opset_version=13)
    rates = {}
    for twin in TWINS:
        counts, rates[twin] = zoo_snn(model, found, x, twin)
        np.save(os.path.join(out, "%s.snn_%s.npy" % (name, twin)), counts.numpy().astype(np.float32))
    with open(os.path.join(out, name + ".rates.json"), "w") as f:
        json.dump(rates, f, indent=1)
    print("%s: %d bytes, %d IF layers, rates %s" % (name, os.path.getsize(path), len(rates["saturate"]),
                                                   {t: [round(r, 3) for r in rs] for t, rs in rates.items()}))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(18)
    gen = torch.Generator().manual_seed(18)
    make(out, "resnet18", resnet18, gen)
    make(out, "squeezenet1_1", squeezenet, gen)
    for name in ("mobilenet_v2", "mnasnet1_0", "shufflenet_v2_x1_0"):
        zoo(out, name, getattr(torchvision.models, name), gen)


if __name__ == "__main__":
    main()
