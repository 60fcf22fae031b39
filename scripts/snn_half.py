"""The oracle of proxykit's 16-bit spikes (lower.Options.HalfSpikes): the
reference SNN's counts in float32 and with 16-bit spikes and currents
(refnet.snn_counts, half_convs), on a reference network whose convolutions
over spikes have weights that binary16 cannot hold.

Usage: /usr/bin/python3 scripts/snn_half.py   (writes testdata/half/)

It reads testdata/fmnist_w8_bn.onnx (refnet.ANN at width 8, from
scripts/make_fixtures.py, whose values are dyadic so that every sum is
exact) and its inputs, fmnist_w8_bn.x.npy, and simulates T = 15 steps at
v_th = 2. The script adds k·2^-16, k a
seeded integer in [-7, 7], to each weight of the convolutions over spikes
(conv.1, conv.5): they then need up to 13 significant bits, more than
binary16's 11, while a convolution's sums (72 terms at width 8, each a
multiple of 2^-16 below 8.6 in size) stay exact in float32, so that every
implementation that sums in float32 computes the same currents before it
rounds them (binary16 weights far below the largest may need more bits:
a GPU summing in another order may round an output differently, rarely).
It writes testdata/half/model.onnx (the network with those weights),
c32.npy and c16.npy (the counts), which spiking's
TestHalfSpikesAgainstPyTorch and compute/cuda's
TestGPUHalfSpikesMatchPyTorch read.
"""

import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers, snn_counts  # noqa: E402

PERTURBED = ("conv.1.weight", "conv.5.weight")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")
    model, xpath, T, vth = os.path.join(root, "fmnist_w8_bn.onnx"), os.path.join(root, "fmnist_w8_bn.x.npy"), 15, 2.0
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "half")
    os.makedirs(out, exist_ok=True)
    m = onnx.load(model)
    gen = torch.Generator().manual_seed(16)
    inits = {}
    for init in m.graph.initializer:
        a = torch.from_numpy(numpy_helper.to_array(init).copy())
        if init.name in PERTURBED:
            a = a + torch.randint(-7, 8, a.shape, generator=gen).float() * 2.0**-16
            init.CopyFrom(numpy_helper.from_array(a.numpy(), init.name))
        inits[init.name] = a
    missing = [k for k in PERTURBED if k not in inits]
    if missing or "static_conv.0.weight" not in inits:
        sys.exit(f"{model}: not refnet.ANN's initializers; missing {missing}")
    ann = ANN(inits["static_conv.0.weight"].shape[0])
    state = ann.state_dict()
    ann.load_state_dict({k: inits.get(k, v) for k, v in state.items()})
    ann.eval()
    onnx.save(m, os.path.join(out, "model.onnx"))
    x = torch.from_numpy(np.load(xpath))
    layers = flat_layers(ann)
    for half, name in ((False, "c32.npy"), (True, "c16.npy")):
        c = snn_counts(layers, x, T=int(T), v_th=float(vth), half_convs=half)
        np.save(os.path.join(out, name), c.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
