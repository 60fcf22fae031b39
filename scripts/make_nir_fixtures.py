#!/usr/bin/python3
"""Generate testdata/nir/: NIR files written by NIR's own Python package from
a PyTorch ReLU network's weights, for proxykit to read back and match.

Run by hand (NIR is not installable where CI runs; it is pure Python and
needs only numpy and h5py, which Debian's python3-numpy and python3-h5py
provide):

  git clone https://github.com/neuromorphs/NIR /tmp/NIR
  git -C /tmp/NIR checkout 7232ada6d30e1beea78b180a5135b1a3bb3d3bc0
  PYTHONPATH=/tmp/NIR /usr/bin/python3 scripts/make_nir_fixtures.py

The network (Net below), on 1x12x12 inputs: conv 1->4 (3x3, pad 1, bias);
ReLU; conv 4->4 (3x3, pad 1, bias) plus an identity shortcut from the first
ReLU, summed; ReLU; max pool 2; conv 4->8 (3x3, pad 1, no bias); ReLU;
average pool 2; flatten; linear 72->16 (bias); ReLU; linear 16->10 (no
bias). Weights and inputs lie on dyadic grids, so every sum the SNN forms is
exact in float32; the script asserts that each IF layer fires at a rate in
(0.05, 0.6).

Its SNN, written as a NIR graph with NIR's node classes (nir.Conv2d,
nir.IF, nir.SumPool2d, nir.AvgPool2d, nir.Flatten, nir.Affine, nir.Linear):
each ReLU an IF node (r = 1, v_reset = 0, v_threshold the float32 just
below 2, since NIR fires on v > v_threshold and the reference on v >= 2),
the shortcut as a second edge into the IF node after the sum (NIR sums a
node's incoming edges), the max pool as SumPool2d followed by an IF node
that fires on any spike (threshold 0.5), one more IF node before the
Output. Files, in testdata/nir/:

  relu_net.nir          that graph (Flatten with start_dim 0: NIR's
                        per-sample dimensions); written with nir.write,
                        read back with nir.read (type-checked)
  folded.nir            the same graph but its third IF layer has r = 2 and
                        the fourth per-neuron thresholds, half of them the
                        float32 below 4 (r and thresholds proxykit must fold
                        into the weights), and the Flatten writes
                        start_dim 1 as PyTorch-based writers do (so NIR's
                        type check is off for it)
  bad_threshold.nir     folded.nir with one threshold of the fourth IF layer
                        at 3: a factor of 2/3, which no weight takes exactly
  lif.nir               relu_net.nir with the fourth IF layer a LIF node
  x.npy                 8 inputs
  ann.npy               torch's ANN outputs on x
  snn.npy               spike counts of relu_net's SNN simulated here in
                        torch (T = 15: the first conv once per input, then
                        per step v += I, spike when v >= threshold, v = 0
                        on a spike; counts of the last IF layer summed)
  folded_snn.npy        the same for folded.nir's neurons (r = 2: v += 2I;
                        thresholds 2 or 4)
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nir

NIR_COMMIT = "7232ada6d30e1beea78b180a5135b1a3bb3d3bc0"
if not hasattr(nir, "version"):  # a checkout, not an installed package
    nir.version = "0+g" + NIR_COMMIT[:7]

T = 15
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "nir")


def dyadic(shape, scale, rng, step=1 / 8):
    return torch.tensor(np.round(rng.standard_normal(shape) * scale / step) * step, dtype=torch.float32)


class Net(nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.fc1 = nn.Linear(72, 16)
        self.fc2 = nn.Linear(16, 10, bias=False)
        with torch.no_grad():
            for m, s in ((self.conv1, 1.0), (self.conv2, 0.5), (self.conv3, 0.5), (self.fc1, 0.5), (self.fc2, 0.5)):
                m.weight.copy_(dyadic(m.weight.shape, s, rng))
                if m.bias is not None:
                    m.bias.copy_(dyadic(m.bias.shape, 0.25, rng))

    def forward(self, x):
        r1 = F.relu(self.conv1(x))
        r2 = F.relu(self.conv2(r1) + r1)
        r3 = F.relu(self.conv3(F.max_pool2d(r2, 2)))
        r4 = F.relu(self.fc1(torch.flatten(F.avg_pool2d(r3, 2), 1)))
        return self.fc2(r4)


@torch.no_grad()
def snn(net, x, r3=1.0, th4=None):
    """The SNN's counts: IF neurons (v += r*I; spike when v >= threshold; v = 0
    on a spike), thresholds 2 but th4 (per neuron) in the fourth layer."""
    th = [torch.tensor(2.0)] * 5
    if th4 is not None:
        th[3] = th4
    v = [0.0] * 5
    spikes = [0.0] * 5
    counts = 0
    static = net.conv1(x)

    def fire(i, current, r=1.0):
        v[i] = v[i] + r * current
        s = (v[i] >= th[i]).float()
        v[i] = torch.where(s > 0, torch.zeros_like(s), v[i])
        spikes[i] += s.mean().item() / T
        return s

    for _ in range(T):
        s1 = fire(0, static)
        s2 = fire(1, net.conv2(s1) + s1)
        s3 = fire(2, net.conv3(F.max_pool2d(s2, 2)), r3)
        s4 = fire(3, net.fc1(torch.flatten(F.avg_pool2d(s3, 2), 1)))
        counts = counts + fire(4, net.fc2(s4))
    return counts, spikes


def below(x):
    """The float32 just below x, as NIR's v > threshold needs for v >= x."""
    return float(np.nextafter(np.float32(x), np.float32(-np.inf)))


def graph(net, r3=1.0, th4=None, lif=False, flatten_start=0, type_check=True):
    def w(t):
        return t.detach().numpy().astype(np.float32)

    def neuron(shape, r=1.0, th=None):
        th = np.full(shape, below(2.0)) if th is None else th
        return nir.IF(r=np.full(shape, r), v_threshold=th, v_reset=np.zeros(shape))

    nodes = {
        "input": nir.Input(input_type=np.array([1, 12, 12])),
        "conv1": nir.Conv2d(input_shape=(12, 12), weight=w(net.conv1.weight), stride=1, padding=1, dilation=1, groups=1, bias=w(net.conv1.bias)),
        "if1": neuron((4, 12, 12)),
        "conv2": nir.Conv2d(input_shape=(12, 12), weight=w(net.conv2.weight), stride=1, padding=1, dilation=1, groups=1, bias=w(net.conv2.bias)),
        "if2": neuron((4, 12, 12)),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "pool1_or": nir.IF(r=np.ones((4, 6, 6)), v_threshold=np.full((4, 6, 6), 0.5), v_reset=np.zeros((4, 6, 6))),
        "conv3": nir.Conv2d(input_shape=(6, 6), weight=w(net.conv3.weight), stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(8, dtype=np.float32)),
        "if3": neuron((8, 6, 6), r=r3),
        "pool2": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flatten": nir.Flatten(input_type={"input": np.array([8, 3, 3])}, start_dim=flatten_start, end_dim=-1),
        "fc1": nir.Affine(weight=w(net.fc1.weight), bias=w(net.fc1.bias)),
        "if4": neuron((16,), th=th4),
        "fc2": nir.Linear(weight=w(net.fc2.weight)),
        "if_out": neuron((10,)),
        "output": nir.Output(output_type=np.array([10])),
    }
    if lif:
        nodes["if4"] = nir.LIF(tau=np.full(16, 10.0), r=np.ones(16), v_leak=np.zeros(16), v_threshold=np.full(16, below(2.0)), v_reset=np.zeros(16))
    edges = [("input", "conv1"), ("conv1", "if1"), ("if1", "conv2"), ("conv2", "if2"), ("if1", "if2"), ("if2", "pool1"),
             ("pool1", "pool1_or"), ("pool1_or", "conv3"), ("conv3", "if3"), ("if3", "pool2"), ("pool2", "flatten"),
             ("flatten", "fc1"), ("fc1", "if4"), ("if4", "fc2"), ("fc2", "if_out"), ("if_out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=type_check)


def main():
    rng = np.random.default_rng(2020)
    torch.manual_seed(2020)
    net = Net(rng).eval()
    x = torch.tensor(np.round(rng.uniform(0, 1, (8, 1, 12, 12)) * 16) / 16, dtype=torch.float32)
    with torch.no_grad():
        ann = net(x)
    counts, rates = snn(net, x)
    print("relu_net IF rates", [round(r, 3) for r in rates])
    assert all(0.05 < r < 0.6 for r in rates), rates
    th4 = torch.tensor([2.0, 4.0] * 8)
    folded_counts, frates = snn(net, x, r3=2.0, th4=th4)
    print("folded IF rates", [round(r, 3) for r in frates])
    assert all(0.05 < r < 0.6 for r in frates), frates
    assert not torch.equal(counts, folded_counts), "the folded network must fire differently"

    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "x.npy"), x.numpy())
    np.save(os.path.join(OUT, "ann.npy"), ann.numpy())
    np.save(os.path.join(OUT, "snn.npy"), counts.numpy())
    np.save(os.path.join(OUT, "folded_snn.npy"), folded_counts.numpy())

    th4_nir = np.array([below(2.0), below(4.0)] * 8)
    bad = th4_nir.copy()
    bad[5] = below(3.0)
    files = {
        "relu_net.nir": graph(net),
        "folded.nir": graph(net, r3=2.0, th4=th4_nir, flatten_start=1, type_check=False),
        "bad_threshold.nir": graph(net, r3=2.0, th4=bad, flatten_start=1, type_check=False),
        "lif.nir": graph(net, lif=True),
    }
    for name, g in files.items():
        path = os.path.join(OUT, name)
        nir.write(path, g)
        # NIR's own reader takes every file back (type-checked where the
        # Flatten follows NIR's per-sample convention)
        back = nir.read(path, type_check=(name in ("relu_net.nir", "lif.nir")))
        assert set(back.nodes) == set(g.nodes) and len(back.edges) == len(g.edges), name
        print(f"wrote {path}: {len(g.nodes)} nodes, {len(g.edges)} edges, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    sys.exit(main())
