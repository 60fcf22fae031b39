#!/usr/bin/python3
"""Generate testdata/pt/: PyTorch checkpoints saved the way the reference saves them.

Usage: /usr/bin/python3 scripts/make_pt_fixtures.py            # testdata/pt (width 8)
       /usr/bin/python3 scripts/make_pt_fixtures.py --full DIR # width 128, for CI

Writes:
  ANN_Params.pt    torch.save(model) of the reference's ANN class, defined in
                   __main__ as the notebook defines it (a whole pickled module)
  SNN_Params.pt    torch.save(snn) of an SNN module built as the reference
                   builds it, with classes at SpikingJelly's module paths
                   (spikingjelly.clock_driven.neuron.IFNode with v_threshold,
                   v_reset and a surrogate.ATan object) and an attribute T;
                   it shares the ANN's weights and has BN statistics of its own
  ANN_state.pt     torch.save(model.state_dict())
  legacy.pt        the ANN saved in the legacy (non-zip) format
  evil.pt          a pickle that asks to call os.system (proxykit must refuse)
  x.npy            a fixed input batch
  ann.npy          torch's ANN outputs on it
  snn.npy          the SNN's spike counts (T and thresholds from SNN_Params.pt,
                   its own BN statistics), from scripts/refnet.py's simulation
Weights are dyadic (see refnet.py) so that the counts are exact.
"""

import argparse
import copy
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refnet  # noqa: E402


class ANN(refnet.ANN):
    """The reference notebook's class, pickled as __main__.ANN."""


ANN.__module__ = "__main__"
ANN.__qualname__ = "ANN"


def spikingjelly_modules():
    """Recreate the module paths and classes SpikingJelly's pickles refer to."""
    sj = types.ModuleType("spikingjelly")
    cd = types.ModuleType("spikingjelly.clock_driven")
    neuron = types.ModuleType("spikingjelly.clock_driven.neuron")
    surrogate = types.ModuleType("spikingjelly.clock_driven.surrogate")

    class ATan(nn.Module):
        def __init__(self, alpha=2.0, spiking=True):
            super().__init__()
            self.alpha = alpha
            self.spiking = spiking

    class IFNode(nn.Module):
        def __init__(self, v_threshold=1.0, v_reset=0.0, surrogate_function=None, detach_reset=False):
            super().__init__()
            self.v_threshold = v_threshold
            self.v_reset = v_reset
            self.surrogate_function = surrogate_function or ATan()
            self.detach_reset = detach_reset
            self.v = v_reset
            self.monitor = False

    for cls, mod in ((ATan, surrogate), (IFNode, neuron)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    sj.clock_driven, cd.neuron, cd.surrogate = cd, neuron, surrogate
    sys.modules.update({"spikingjelly": sj, "spikingjelly.clock_driven": cd,
                        "spikingjelly.clock_driven.neuron": neuron, "spikingjelly.clock_driven.surrogate": surrogate})
    return IFNode, ATan


class SNN(nn.Module):
    """The reference's SNN module: the ANN's layers, ReLU → IFNode, an IFNode after the last layer."""

    def __init__(self, ann, T, v_th, v_reset, IFNode, ATan):
        super().__init__()
        self.T = T

        def convert(seq):
            out = []
            for m in seq:
                if isinstance(m, nn.ReLU):
                    out.append(IFNode(v_threshold=v_th, v_reset=v_reset, surrogate_function=ATan()))
                elif isinstance(m, nn.BatchNorm2d):
                    own = copy.deepcopy(m)
                    own.weight, own.bias = m.weight, m.bias
                    out.append(own)
                else:
                    out.append(m)
            return out

        self.static_conv = nn.Sequential(*convert(ann.static_conv))
        self.conv = nn.Sequential(*convert(ann.conv))
        self.fc = nn.Sequential(*convert(ann.fc), IFNode(v_threshold=v_th, v_reset=v_reset, surrogate_function=ATan()))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", metavar="DIR")
    args = ap.parse_args()
    out = args.full or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "pt")
    width, batch = (128, 2) if args.full else (8, 8)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(2020)
    gen = torch.Generator().manual_seed(7)
    IFNode, ATan = spikingjelly_modules()

    ann = ANN(width)
    refnet.randomise_bn(ann, gen)
    ann.eval()
    x = refnet.dyadic(torch.rand(batch, 1, 28, 28, generator=gen) * (torch.rand(batch, 1, 28, 28, generator=gen) < 0.4),
                      refnet.INPUT_GRID)
    steps = 9 if args.full else 40
    refnet.make_every_if_fire(ann, x, steps=steps, scale_range=(0.02, 50) if args.full else (1e-3, 1e3))

    T, v_th, v_reset = 12, 1.5, 0.0
    snn = SNN(ann, T, v_th, v_reset, IFNode, ATan)
    # the SNN's own BN statistics: different from the ANN's, dyadic and exact (refnet.EXACT_VARS)
    for m in snn.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(refnet.dyadic(0.2 * torch.randn(c, generator=gen), 2.0 ** -6))
            m.running_var.copy_(torch.tensor(refnet.EXACT_VARS)[torch.randint(0, 3, (c,), generator=gen)])
    snn.eval()

    torch.save(ann, os.path.join(out, "ANN_Params.pt"))
    torch.save(snn, os.path.join(out, "SNN_Params.pt"))
    if not args.full:
        torch.save(ann.state_dict(), os.path.join(out, "ANN_state.pt"))
        torch.save(ann, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
        torch.save({"model": Evil()}, os.path.join(out, "evil.pt"))
    np.save(os.path.join(out, "x.npy"), x.numpy())
    with torch.no_grad():
        np.save(os.path.join(out, "ann.npy"), ann(x).numpy())
    layers = [m for m in snn.modules()
              if isinstance(m, IFNode) or (len(list(m.children())) == 0 and not isinstance(m, ATan))]
    layers = [nn.ReLU() if isinstance(m, IFNode) else m for m in layers][:-1]  # the last IFNode is the output layer
    counts, rates = refnet.snn_counts(layers, x, T=T, v_th=v_th, v_reset=v_reset, record_rates=True)
    np.save(os.path.join(out, "snn.npy"), counts.numpy())
    print(f"wrote {out}: width {width}, SNN rates {[round(r, 3) for r in rates]}")


if __name__ == "__main__":
    main()
