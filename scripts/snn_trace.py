#!/usr/bin/python3
"""Explain SNN counts that differ between proxykit and another float32 run.

Usage:
  /usr/bin/python3 scripts/snn_trace.py ANN.onnx X.npy COUNTS.npy --timesteps T --threshold V
      [--reset R] [--checkpoint CKPT] [--other OTHER.npy] [--samples i,j,...]

ANN.onnx is `proxykit export MODEL --ann` (BatchNorm kept); with
--checkpoint (a proxykit checkpoint) the SNN's own BatchNorm statistics
(snn_bn/...) replace the ANN's, as proxykit's SNN uses them. COUNTS is
`proxykit infer MODEL --network snn`; OTHER (optional) another run's counts
(onnxruntime on the unrolled export, a NIR consumer).

The SNN is simulated from docs/design.md §1 in float64 with PyTorch (BatchNorm
unfolded, y = (x − mean)/√(var + eps)·γ + β): the exact arithmetic's counts,
up to float64 rounding. For each sample whose counts differ between COUNTS
and the float64 run (or OTHER), it lists the IF decisions taken closest to
the threshold, |v − v_th| in float64, the nearest first, and checks each by
flipping that one decision in the float64 run: if the counts then equal
COUNTS (or OTHER) exactly, that run differs from the exact arithmetic by a
single near-tie resolved the other way by float32 rounding. A semantic
difference (another join order, BatchNorm statistics, reset) shows as a
difference no single near-tie explains.
"""

import argparse
import json
import struct

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F


def load_graph(path, ckpt):
    m = onnx.load(path)
    init = {i.name: onnx.numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    if ckpt:
        b = open(ckpt, "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        head = json.loads(b[8:8 + n])
        data = b[8 + n:]
        for name, t in head.items():
            if not name.startswith("snn_bn/"):
                continue
            lo, hi = t["data_offsets"]
            arr = np.frombuffer(data[lo:hi], dtype=np.float32).astype(np.float64)
            layer, stat = name[len("snn_bn/"):].rsplit("/", 1)
            init[f"{layer}.{stat}"] = arr
    return m.graph, init


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class SNN:
    """The SNN of an ANN ONNX graph: every Relu an IF layer, one more after the output."""

    def __init__(self, graph, init, threshold, reset):
        self.nodes, self.init, self.vth, self.reset = list(graph.node), init, threshold, reset
        self.input = graph.input[0].name
        self.output = graph.output[0].name
        first = next(i for i, n in enumerate(self.nodes) if n.op_type == "Relu")
        self.static, self.dynamic = self.nodes[:first], self.nodes[first:]

    def t(self, name):
        return torch.from_numpy(self.init[name])

    def op(self, n, vals, spikes):
        a = attrs(n)
        x = [vals[i] for i in n.input if i in vals]
        if n.op_type == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            b = self.t(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            return F.conv2d(x[0], self.t(n.input[1]), b, a.get("strides", [1, 1]), pads[:2], a.get("dilations", [1, 1]),
                            a.get("group", 1))
        if n.op_type == "BatchNormalization":
            g, beta, mean, var = (self.t(i).reshape(1, -1, 1, 1) for i in n.input[1:5])
            return (x[0] - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * g + beta
        if n.op_type == "Add":
            return x[0] + x[1]
        if n.op_type == "MaxPool":
            assert spikes, "max pooling of analog values"
            p = a.get("pads", [0, 0, 0, 0])
            return F.max_pool2d(x[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), p[:2])
        if n.op_type == "AveragePool":
            p = a.get("pads", [0, 0, 0, 0])
            return F.avg_pool2d(x[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), p[:2],
                                count_include_pad=bool(a.get("count_include_pad", 0)))
        if n.op_type == "GlobalAveragePool":
            return x[0].mean(dim=(2, 3), keepdim=True)
        if n.op_type == "Flatten":
            return x[0].flatten(a.get("axis", 1))
        if n.op_type == "Gemm":
            w = self.t(n.input[1])
            y = x[0] @ (w.T if a.get("transB", 0) else w)
            return y + self.t(n.input[2]) if len(n.input) > 2 else y
        if n.op_type == "MatMul":
            return x[0] @ self.t(n.input[1])
        raise SystemExit(f"snn_trace: no simulation of {n.op_type}")

    def run(self, x, steps, flip=None, record=None):
        """Counts over steps; flip = (step, layer, flat index) forces that one IF decision the other way;
        record(step, layer, p) sees every IF layer's potential before firing."""
        vals = {self.input: x}
        for n in self.static:
            vals[n.output[0]] = self.op(n, vals, False)
        v, counts = {}, 0
        for t in range(steps):
            cur = dict(vals)
            layer = 0
            for n in self.dynamic + [None]:
                if n is not None and n.op_type != "Relu":
                    cur[n.output[0]] = self.op(n, cur, True)
                    continue
                src = n.input[0] if n is not None else self.output
                p = v.get(layer, torch.full_like(cur[src], self.reset)) + cur[src]
                s = p >= self.vth
                if flip is not None and flip[0] == t and flip[1] == layer:
                    s.view(-1)[flip[2]] = ~s.view(-1)[flip[2]]
                if record:
                    record(t, layer, p)
                v[layer] = torch.where(s, torch.full_like(p, self.reset), p)
                out = s.to(p.dtype)
                if n is not None:
                    cur[n.output[0]] = out
                layer += 1
            counts = counts + out
        return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ann")
    ap.add_argument("x")
    ap.add_argument("counts")
    ap.add_argument("--timesteps", type=int, required=True)
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--reset", type=float, default=0.0)
    ap.add_argument("--checkpoint")
    ap.add_argument("--other", help="another run's counts to explain as well")
    ap.add_argument("--candidates", type=int, default=40, help="near-ties to try per sample")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    snn = SNN(*load_graph(a.ann, a.checkpoint), a.threshold, a.reset)
    x = torch.from_numpy(np.load(a.x).astype(np.float64))
    exact = snn.run(x, a.timesteps).numpy()
    runs = {"proxykit": np.load(a.counts)}
    if a.other:
        runs["other"] = np.load(a.other)
    for name, c in runs.items():
        print(f"{name}: {int((c != exact).sum())} of {c.size} counts differ from the float64 simulation")
    samples = sorted({int(i) for c in runs.values() for i in np.nonzero((c != exact).any(1))[0]})
    for i in samples:
        xi = x[i:i + 1]
        near = []

        def record(t, layer, p):
            d = (p - a.threshold).abs().view(-1)
            k = min(a.candidates, d.numel())
            vals, idx = torch.topk(d, k, largest=False)
            near.extend((float(vv), t, layer, int(j), float(p.view(-1)[j])) for vv, j in zip(vals, idx))

        snn.run(xi, a.timesteps, record=record)
        near.sort()
        print(f"sample {i}: float64 counts {exact[i].astype(int).tolist()}")
        for name, c in runs.items():
            print(f"  {name:9s} counts {c[i].astype(int).tolist()}")
        explained = {name: None for name in runs if (runs[name][i] != exact[i]).any()}
        for margin, t, layer, j, p in near[:a.candidates]:
            flipped = snn.run(xi, a.timesteps, flip=(t, layer, j)).numpy()[0]
            hit = [name for name in explained if explained[name] is None and (flipped == runs[name][i]).all()]
            for name in hit:
                explained[name] = (margin, t, layer, j, p)
                print(f"  {name}: explained by one decision: step {t + 1}, IF layer {layer}, neuron {j}: "
                      f"float64 potential {p:.10f}, |v - v_th| = {margin:.3g} "
                      f"({margin / np.spacing(np.float32(a.threshold)):.2f} float32 ulps at v_th); "
                      f"flipped, the float64 run gives exactly its counts")
            if all(e is not None for e in explained.values()):
                break
        for name, e in explained.items():
            if e is None:
                print(f"  {name}: NOT explained by any single one of the {a.candidates} nearest decisions "
                      f"(nearest |v - v_th| = {near[0][0]:.3g})")


if __name__ == "__main__":
    main()
