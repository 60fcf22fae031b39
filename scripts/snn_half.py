"""The oracle of proxykit's 16-bit spikes (lower.Options.HalfSpikes): the
reference SNN's counts in float32 and with 16-bit spikes and currents
(refnet.snn_counts, half_convs), on a reference network whose convolutions
and linear layers over spikes have weights that binary16 cannot hold.

Usage: /usr/bin/python3 scripts/snn_half.py   (writes testdata/half/)

It reads testdata/fmnist_w8_bn.onnx (refnet.ANN at width 8, from
scripts/make_fixtures.py, whose values are dyadic so that every sum is
exact) and its inputs, fmnist_w8_bn.x.npy, and simulates T = 15 steps at
v_th = 2. The script adds k·2^-16, k a
seeded integer in [-7, 7], to each weight of the layers over spikes (the
convolutions conv.1 and conv.5, the linear layers fc.1 to fc.7): they
then need up to 17 significant bits, more than binary16's 11, while
every partial sum (72 terms of a convolution at width 8; 392, 160, 72
and 16 of the linear layers, whose weights' sizes sum to less than 2^8
per output) stays a multiple of 2^-16 below 2^8, exact in float32, so
that every implementation that sums in float32, in any order, computes
the same currents before it rounds them.
It writes testdata/half/model.onnx (the network with those weights),
c32.npy, c16.npy and c16conv.npy (the counts in float32, with 16-bit
convolutions and linear layers, and with 16-bit convolutions alone: the
program before its linear layers took 16-bit spikes), which spiking's
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

PERTURBED = ("conv.1.weight", "conv.5.weight", "fc.1.weight", "fc.3.weight", "fc.5.weight", "fc.7.weight")


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
    for half, linears, name in ((False, False, "c32.npy"), (True, True, "c16.npy"), (True, False, "c16conv.npy")):
        c = snn_counts(layers, x, T=int(T), v_th=float(vth), half_convs=half, half_linears=linears)
        np.save(os.path.join(out, name), c.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
