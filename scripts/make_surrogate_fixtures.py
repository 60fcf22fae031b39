#!/usr/bin/python3
"""Generate testdata/surrogate/: surrogate-gradient training steps in plain PyTorch.

Usage: /usr/bin/python3 scripts/make_surrogate_fixtures.py [NET ...]   (Debian's python3-torch 1.13)
(NET: paper, resnet, paper_charged; all by default)

The reference is written here from docs/design.md §1 ("Surrogate
gradients"), with nothing of proxykit's: the SNN of an ANN (every ReLU an
IF layer, one more IF layer after the last layer, everything before the
first ReLU run once on the analog input), run in the clock-driven order —
at each of the T steps every layer once, BatchNorm in training mode
normalising with the step's own batch statistics — with IF neurons

    h = v + I;  s = Θ(h − v_th);  v = (1 − s)·h + s·v_reset

whose Heaviside step Θ has, in the backward pass, the derivative of
SpikingJelly's surrogate.Sigmoid: α·σ(αx)·(1 − σ(αx)), α = 4 (s is detached
in the reset with --detach-reset's setting); the output is the last IF
layer's spikes summed over the T steps, the loss proxy learning's:
mean over B×K of (counts − onehot)². Autograd backpropagates through the T
steps.

Writes, for each network NET:
  NET.onnx             the network (BatchNorm kept), for proxykit to load
  NET.x.npy            3 batches of B images, [3B, 1, 28, 28]
  NET.labels.npy       their labels, [3B] (float32 class indices)
and for each case NAME on it:
  NAME.params.json     the network, the parameters' names and sizes in the
                       order of the arrays below, and the case's setting
  NAME.grads.npy       every parameter's gradient after one step on the
                       first batch, before any optimizer, concatenated
  NAME.sgd3.npy        (training cases) every parameter after three steps
                       of plain SGD (lr LR, no momentum, no weight decay),
                       one on each batch
Cases: paper (the paper's network at width 4, BatchNorm in training mode),
paper_detach (the same with the reset detached: gradients only),
paper_eval (BatchNorm in eval mode: gradients only), resnet (a residual
network with an identity and a projection shortcut, grouped convolutions
and a concatenation, BatchNorm in training mode), paper_charged (the
paper's network, its own draw, every IF neuron starting at 1 = v_reset +
0.5·(v_th − v_reset): initial charge 0.5, in params.json; gradients only).

So that proxykit's float32 forward pass, whose sums round in another
order than PyTorch's, gives the same spikes, the data are drawn again until
no potential of any step of the forward passes lies near v_th (GOOD, or the
best of TRIES draws if at least MARGIN; the seed and the distance are
recorded in params.json).
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers, randomise_bn  # noqa: E402
from make_graph_fixtures import ResNetTiny  # noqa: E402

T, VTH, VRESET, ALPHA = 6, 2.0, 0.0, 4.0
# the initial charge of the case being made: every IF neuron starts at
# VRESET + CHARGE·(VTH − VRESET) (proxykit's spiking.Config.InitialCharge);
# 0 but for paper_charged
CHARGE = 0.0
B, LR = 6, 1e-3
# the data's seed: the first of TRIES whose least distance of a potential
# from v_th is GOOD, else the best, if at least MARGIN (float32's spacing
# at 2 is 2.4e-7; the two implementations' potentials differ by a few
# such steps)
GOOD, MARGIN, TRIES = 2e-5, 5e-6, 120
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "surrogate")


class Spike(torch.autograd.Function):
    """Θ(x) forward; SpikingJelly's sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ALPHA * x)
        return g * (1 - sg) * sg * ALPHA


class IF:
    """One IF layer's state over the T steps of a forward pass."""

    def __init__(self, detach):
        self.detach, self.v, self.h, self.spikes = detach, None, [], 0.0

    def __call__(self, x):
        if self.v is None:
            # in float32, each operation rounded, as proxykit's lower.SNN.StartPotential
            start = np.float32(VRESET) + np.float32(np.float32(CHARGE) * np.float32(np.float32(VTH) - np.float32(VRESET)))
            self.v = torch.full_like(x, float(start))
        h = self.v + x
        self.h.append(h.detach())
        s = Spike.apply(h - VTH)
        r = s.detach() if self.detach else s
        self.v = (1 - r) * h + r * VRESET
        self.spikes += float(s.sum()) / s.numel()
        return s


class Paper:
    """The paper's network at width 4 as an SNN (refnet.ANN's layers in order)."""

    def __init__(self):
        self.model = ANN(4)
        self.layers = flat_layers(self.model)
        self.first = next(i for i, l in enumerate(self.layers) if isinstance(l, nn.ReLU))
        # the IF layers, by their index in rest = layers[first:] + [output]
        rest = self.layers[self.first:] + [nn.ReLU()]
        self.neurons = [i for i, l in enumerate(rest) if isinstance(l, nn.ReLU)]
        # the layer setting each IF layer's current
        self.feeders = [self.layers[self.first + i - 1] for i in self.neurons]

    def counts(self, x, detach):
        ifs = {i: IF(detach) for i in self.neurons}
        cur = x
        for l in self.layers[:self.first]:
            cur = l(cur)
        static = cur
        rest = self.layers[self.first:] + [nn.ReLU()]
        counts = 0
        for _ in range(T):
            cur = static
            for i, l in enumerate(rest):
                cur = ifs[i](cur) if i in ifs else l(cur)
            counts = counts + cur
        return counts, [ifs[i] for i in self.neurons]


class ResNet:
    """make_graph_fixtures.ResNetTiny as an SNN, its forward written out."""

    names = ["stem_relu", "b1r1", "b1r2", "b2r1", "b2r2", "iar", "ibr", "output"]

    def __init__(self):
        self.model = ResNetTiny(concat=True)
        m = self.model
        self.feeders = [m.stem_bn, m.b1bn1, m.b1bn2, m.b2bn1, m.b2bn2, m.ia, m.ib, m.fc]

    def counts(self, x, detach):
        m, n = self.model, {k: IF(detach) for k in self.names}
        static = m.stem_bn(m.stem(x))
        counts = 0
        for _ in range(T):
            a = n["stem_relu"](static)
            y = n["b1r1"](m.b1bn1(m.b1c1(a)))
            a = n["b1r2"](m.b1bn2(m.b1c2(y)) + a)
            a = m.pool(a)
            y = n["b2r1"](m.b2bn1(m.b2c1(a)))
            a = n["b2r2"](m.b2bn2(m.b2c2(y)) + m.b2scbn(m.b2sc(a)))
            a = torch.cat([n["iar"](m.ia(a)), n["ibr"](m.ib(a))], 1)
            counts = counts + n["output"](m.fc(torch.flatten(a, 1)))
        return counts, [n[k] for k in self.names]


def tune(net, x, lo=0.05, hi=0.6, target=0.2, steps=12):
    """Scale each IF layer's feeder (a BatchNorm's γ and β, a linear
    layer's or a convolution's weights) so that it fires at about target,
    layer by layer, BatchNorm in training mode. The search stops short
    (a bracket of a few per mille) and takes its upper end: at a bracket's
    limit some neuron's potential would sit on v_th."""
    net.model.train()
    for k, layer in enumerate(net.feeders):
        base = [p.detach().clone() for p in layer.parameters()]
        lo_s, hi_s = 1e-2, 1e2
        for _ in range(steps):
            s = (lo_s * hi_s) ** 0.5
            with torch.no_grad():
                for p, b in zip(layer.parameters(), base):
                    p.copy_(b * s)
                _, ifs = net.counts(x, False)
            rate = ifs[k].spikes / T
            lo_s, hi_s = (s, hi_s) if rate < target else (lo_s, s)
        with torch.no_grad():
            for p, b in zip(layer.parameters(), base):
                p.copy_(b * hi_s)
    with torch.no_grad():
        _, ifs = net.counts(x, False)
    rates = [f.spikes / T for f in ifs]
    assert all(lo < r < hi for r in rates), rates
    return rates


def margin(ifs):
    return min(float((torch.cat([h.flatten() for h in f.h]) - VTH).abs().min()) for f in ifs)


def step(net, x, y, detach):
    """One step's gradients (zeroed first) and the least distance of a
    potential from v_th."""
    net.model.zero_grad()
    counts, ifs = net.counts(x, detach)
    loss = F.mse_loss(counts, F.one_hot(y, 10).float())
    loss.backward()
    return [p.grad.detach().clone() for p in net.model.parameters()], margin(ifs)


def images(gen, n):
    return torch.rand(n, 1, 28, 28, generator=gen) * (torch.rand(n, 1, 28, 28, generator=gen) < 0.45).float()


def write(name, net, grads, after, info):
    names = [k for k, _ in net.model.named_parameters()]
    sizes = [p.numel() for p in net.model.parameters()]
    np.save(os.path.join(OUT, name + ".grads.npy"), torch.cat([g.flatten() for g in grads]).numpy().astype(np.float32))
    if after is not None:
        np.save(os.path.join(OUT, name + ".sgd3.npy"), torch.cat([p.flatten() for p in after]).numpy().astype(np.float32))
    if CHARGE:
        info = dict(info, initial_charge=CHARGE)
    with open(os.path.join(OUT, name + ".params.json"), "w") as f:
        json.dump(dict(info, names=names, sizes=sizes, T=T, threshold=VTH, reset=VRESET, alpha=ALPHA, lr=LR, batch=B), f, indent=1)
        f.write("\n")


def export(name, net, x):
    net.model.eval()
    torch.onnx.export(net.model, x[:1], os.path.join(OUT, name + ".onnx"), input_names=["input"], output_names=["output"],
                      opset_version=13, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def case(name, make, variants):
    """Makes the network (PyTorch's initialisation, BatchNorm randomised,
    tuned to fire on a batch of its own), draws data until every forward
    pass keeps its margin, then writes the network and its variants (name
    suffix, detach, batch statistics, SGD)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = make()
    randomise_bn(net.model, gen, quantize=False)
    rates = tune(net, images(gen, B))
    start = {k: v.detach().clone() for k, v in net.model.state_dict().items()}
    best = None  # (least distance, seed, x, y, results)
    for seed in range(1, TRIES + 1):
        gen = torch.Generator().manual_seed(seed)
        x = images(gen, 3 * B)
        y = torch.randint(0, 10, (3 * B,), generator=gen)
        results, least = [], float("inf")
        for suffix, detach, train, sgd in variants:
            net.model.load_state_dict(start)
            net.model.train(train)
            grads, m = step(net, x[:B], y[:B], detach)
            least = min(least, m)
            after = None
            if sgd:
                opt = torch.optim.SGD(net.model.parameters(), lr=LR)
                for k in range(3):
                    _, m = step(net, x[k * B:(k + 1) * B], y[k * B:(k + 1) * B], detach)
                    least = min(least, m)
                    opt.step()
                after = [p.detach().clone() for p in net.model.parameters()]
            results.append((suffix, detach, train, grads, after))
        if best is None or least > best[0]:
            best = (least, seed, x, y, results)
        if least >= GOOD:
            break
    least, seed, x, y, results = best
    if least < MARGIN:
        raise SystemExit("%s: no seed of %d keeps every potential %g from v_th (best %g)" % (name, TRIES, MARGIN, least))
    net.model.load_state_dict(start)
    export(name, net, x)
    np.save(os.path.join(OUT, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, name + ".labels.npy"), y.numpy().astype(np.float32))
    for suffix, detach, train, grads, after in results:
        write(name + suffix, net, grads, after,
              {"net": name, "seed": seed, "detach_reset": detach, "batch_stats": train, "margin": least, "rates": rates})
    print("%s: seed %d, least distance of a potential from v_th %.2g, IF rates %s" %
          (name, seed, least, [round(r, 3) for r in rates]))


def main():
    global CHARGE
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]  # the cases to make (networks' names), all by default
    if not only or "paper" in only:
        case("paper", Paper, [("", False, True, True), ("_detach", True, True, False), ("_eval", False, False, False)])
    if not only or "resnet" in only:
        case("resnet", ResNet, [("", False, True, True)])
    if not only or "paper_charged" in only:
        CHARGE = 0.5
        case("paper_charged", Paper, [("", False, True, False)])
        CHARGE = 0.0


if __name__ == "__main__":
    main()
