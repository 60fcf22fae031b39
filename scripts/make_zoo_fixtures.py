#!/usr/bin/python3
"""Generate testdata/zoo/: small networks with the layer kinds of the
networks users bring (MobileNetV2's ReLU6, Hardtanh(0, c), ShuffleNetV2's
channel shuffle and its split along channels, MNASNet's spatial mean), with
torch's ANN outputs and the spike counts of their SNNs under both IF twins
of a clipped ReLU, simulated here from docs/design.md §1; and small versions
of the torchvision classifiers proxykit refuses, built from torchvision's own
classes, for the refusals' messages.

Usage: /usr/bin/python3 scripts/make_zoo_fixtures.py   # rewrites testdata/zoo
(Debian's python3-torch 1.13 and python3-torchvision 0.14)

Weights, biases, inputs and BatchNorm statistics lie on dyadic grids
(scripts/refnet.py) and each IF layer's input is scaled by a power of two
so that it fires under both twins, so every sum the SNNs form is exact in
float32 and any correct implementation gives these very counts.

The SNN (docs/design.md §1): every ReLU, ReLU6 and Hardtanh(0, c) an IF
layer (v += I; spike when v >= v_th; v = v_reset = 0 on a spike), one more
IF layer on the output, the whole forward run at each of T = 8 steps,
counts summed. The two twins of a clipped ReLU min(max(x, 0), c):
  saturate  its IF layer's v_th is c (v_reset + c): one spike per step,
            the IF neuron's saturation, stands for the ceiling c
  relu      its IF layer's v_th is the network's, VTH = 1, as for a ReLU
ReLU layers and the output layer have v_th = VTH under both.

Writes to testdata/zoo/:
  relu6net.onnx        conv-BN-ReLU6, conv-Hardtanh(0, 1.5), the channel
                       shuffle (view, transpose, reshape), x[:, 1:5] (Slice),
                       conv-ReLU, max pooling, conv-ReLU6, mean over H and W
                       (ReduceMean), linear: opset 13, BatchNormalization kept
  relu6net_opset9.onnx the same network at opset 9 (Clip's, Slice's and
                       ReduceMean's bounds and axes as attributes)
  relu6net.x.npy       8 inputs [8, 1, 16, 16]
  relu6net.ann.npy     torch's outputs
  relu6net.snn_saturate.npy, relu6net.snn_relu.npy
                       the SNN's counts under each twin (T = 8, VTH = 1)
  relu6net.rates.json  each twin's firing rate per IF layer
  relu6net.charged_saturate.npy, relu6net.charged_relu.npy
                       the counts under each twin when every IF layer
                       starts charged halfway to its own v_th (initial
                       charge CHARGE = 0.5: v(0) = 0.5·v_th, v_reset = 0);
                       written for every network below as for relu6net
  splitnet.onnx        conv-ReLU, torch.split along channels into 2 + 4
                       (Split), conv-ReLU6 on the second part, torch.cat, the
                       channel shuffle in 2 groups, conv-ReLU, mean over H and
                       W kept (ReduceMean, keepdims), flatten, linear;
                       exported on a batch of 1, so that the shuffle's
                       Reshape constants hold the batch size 1
  mlp_bn1d.pt          a pickled Sequential on 36 values: linear, BatchNorm1d,
                       ReLU, linear, BatchNorm1d, ReLU, linear, with its
                       ONNX export (.onnx: BatchNormalization on [B C]),
                       inputs (.x.npy), torch's outputs (.ann.npy), SNN
                       counts and rates as above, and its modules' classes
                       (.classes.json)
  normnet.onnx         the input normalised per channel inside the network
                       ((x − mean)/std: Sub, Div), conv-ReLU, a convolution's
                       output times 0.5 plus a per-channel constant (Mul,
                       Add), ReLU6, max pooling, linear; .x.npy, .ann.npy,
                       .snn_saturate.npy, .snn_relu.npy, .rates.json as above
  mlp_flatten.pt       a pickled Sequential(Flatten, Linear(784, 16), ReLU,
                       Linear(16, 10)): its input is [784], its data 28x28;
                       .x.npy two such images [2 1 28 28], .ann.npy torch's
                       outputs
  splitnet.x.npy, .ann.npy, .snn_saturate.npy, .snn_relu.npy, .rates.json
                       as above, on 4 inputs: the batch size the Reshape
                       constants do not hold
  kinds_zoo.pt         torch.save of a Sequential with ReLU6, Hardtanh(0,
                       1.5) and ChannelShuffle(3) (torch.onnx cannot export
                       ChannelShuffle), with kinds_zoo.x.npy, .ann.npy and
                       .classes.json (each module's torch.nn class)
  refused/NAME.onnx    torchvision's MobileNetV3, EfficientNet, RegNetY,
                       ConvNeXt, VisionTransformer and SwinTransformer
                       classes at small widths and depths (the operators and
                       patterns of the full models, a few hundred kilobytes),
                       random weights, opset 13; clip_negative.onnx (a
                       Hardtanh(-1, 1)), upsample.onnx (Resize) and
                       transpose_hw.onnx (a Transpose of H and W) in small
                       networks; div_by_activation.onnx (1/(x + 1)),
                       mul_by_row.onnx (x times a [1 1 1 W] constant) and
                       div_by_zero.onnx (x over a per-channel constant
                       holding 0); silu_seq.pt and upsample_seq.pt, pickled
                       Sequentials with a SiLU and an Upsample module; for
                       proxykit's refusals
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import convnext, efficientnet, mobilenetv3, regnet, swin_transformer, vision_transformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_graph_fixtures import IF, quantize  # noqa: E402
from refnet import EXACT_VARS, INPUT_GRID, WEIGHT_GRID, dyadic, randomise_bn  # noqa: E402

T, VTH = 8, 1.0
CHARGE = 0.5  # the initial charge of the .charged_TWIN.npy counts
TWINS = ("saturate", "relu")


def shuffle(x, groups):
    """ShuffleNetV2's channel_shuffle, as torchvision writes it."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ReLU6Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.act1 = nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU6()
        self.conv2, self.act2 = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.Hardtanh(0.0, 1.5)
        self.conv3, self.act3 = nn.Conv2d(4, 8, 1), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv4, self.act4 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU6()
        self.fc = nn.Linear(8, 10)
        # the layer whose weights scale each IF layer's input, in order
        self.feeds = [self.bn1, self.conv2, self.conv3, self.conv4, self.fc]

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.conv2(x))
        x = shuffle(x, 3)[:, 1:5]
        x = self.pool(self.act3(self.conv3(x)))
        x = self.act4(self.conv4(x))
        return self.fc(x.mean([2, 3]))


class SplitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(1, 6, 3, padding=1), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU6()
        self.conv3, self.act3 = nn.Conv2d(6, 6, 1), nn.ReLU()
        self.fc = nn.Linear(6, 10)
        self.feeds = [self.conv1, self.conv2, self.conv3, self.fc]

    def forward(self, x):
        x = self.act1(self.conv1(x))
        a, b = torch.split(x, [2, 4], dim=1)
        x = shuffle(torch.cat([a, self.act2(self.conv2(b))], 1), 2)
        x = self.act3(self.conv3(x))
        return self.fc(torch.flatten(x.mean([2, 3], keepdim=True), 1))


class NormNet(nn.Module):
    """Arithmetic with constants inside a network: the input normalised per
    channel, (x − mean)/std (Sub, Div), and a convolution's output halved
    and shifted per channel (Mul by a scalar, Add of a [C 1 1] constant
    after a layer that has a bias already); dyadic constants."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.25, 0.5]).view(1, 2, 1, 1))
        self.register_buffer("std", torch.tensor([0.5, 0.25]).view(1, 2, 1, 1))
        self.register_buffer("shift", torch.tensor([0.125, -0.25, 0.0, 0.5, -0.125, 0.25]).view(1, 6, 1, 1))
        self.conv1, self.act1 = nn.Conv2d(2, 6, 3, padding=1), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(6, 6, 3, padding=1), nn.ReLU6()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10)
        self.feeds = [self.conv1, self.conv2, self.fc]

    def forward(self, x):
        x = self.act1(self.conv1((x - self.mean) / self.std))
        x = self.act2(self.conv2(x) * 0.5 + self.shift)
        return self.fc(torch.flatten(self.pool(x), 1))


def ceiling(m):
    """The ceiling of a clipped ReLU module, None for a ReLU."""
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        assert m.min_val == 0
        return m.max_val
    assert isinstance(m, nn.ReLU)
    return None


def start(vth, charge):
    """Where an IF layer with threshold vth starts: v_reset (0) plus the
    initial charge's fraction of vth − v_reset, in float32 as proxykit
    rounds it (exact on these dyadic values)."""
    return float(np.float32(0) + np.float32(np.float32(charge) * np.float32(np.float32(vth) - np.float32(0))))


@torch.no_grad()
def snn(model, x, twin, charge=0.0):
    """The SNN's counts and IF rates under twin (and an initial charge):
    neuron modules swapped for IF layers."""
    saved, ifs = {}, []
    for name, m in list(model.named_children()):
        if isinstance(m, (nn.ReLU, nn.Hardtanh)):
            c = ceiling(m)
            vth = c if (twin == "saturate" and c is not None) else VTH
            f = IF(vth, start(vth, charge))
            saved[name] = m
            setattr(model, name, f)
            ifs.append(f)
    out = IF(VTH, start(VTH, charge))
    for _ in range(T):
        out(model(x))
    for name, m in saved.items():
        setattr(model, name, m)
    rates = [float(f.count.sum()) / (f.count.numel() * T) for f in ifs + [out]]
    return out.count, rates


def make_every_if_fire(model, x):
    """Scale each IF layer's feeding layer by a power of two so that, under
    both twins, the IF layer fires on 2 % to 70 % of its neurons' steps
    where it can: front to back, the power whose worse twin is best."""
    for k, layer in enumerate(model.feeds):
        params = [p for p in (layer.weight, layer.bias) if p is not None]
        base = [p.detach().clone() for p in params]
        best = None
        for e in range(-6, 9):
            with torch.no_grad():
                for p, b in zip(params, base):
                    p.copy_(b * 2.0 ** e)
            rates = [snn(model, x, twin)[1][k] for twin in TWINS]
            score = min(min(rates), 0.7 - max(rates))
            if best is None or score > best[0]:
                best = (score, e)
        with torch.no_grad():
            for p, b in zip(params, base):
                p.copy_(b * 2.0 ** best[1])


def write_net(out, name, model, x, export_x, opsets=(13,)):
    model.eval()
    with torch.no_grad():
        y = model(x)
    for opset in opsets:
        path = os.path.join(out, name + (".onnx" if opset == 13 else "_opset%d.onnx" % opset))
        torch.onnx.export(model, export_x, path, input_names=["input"], output_names=["output"], opset_version=opset,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".ann.npy"), y.numpy().astype(np.float32))
    rates = {}
    for twin in TWINS:
        counts, rates[twin] = snn(model, x, twin)
        np.save(os.path.join(out, "%s.snn_%s.npy" % (name, twin)), counts.numpy().astype(np.float32))
        charged, _ = snn(model, x, twin, CHARGE)
        np.save(os.path.join(out, "%s.charged_%s.npy" % (name, twin)), charged.numpy().astype(np.float32))
    with open(os.path.join(out, name + ".rates.json"), "w") as f:
        json.dump(rates, f, indent=1)
    print(name, {t: [round(r, 3) for r in rs] for t, rs in rates.items()})


class TransposeHW(nn.Module):
    """A ReLU network that swaps H and W of an activation."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)).transpose(2, 3), 1))


def refused(out, gen):
    """torchvision's refused families at small sizes (random weights)."""
    os.makedirs(out, exist_ok=True)
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    eff, _ = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    nets = {
        "mobilenet_v3_small": (mobilenetv3.MobileNetV3(setting, 64, num_classes=10), 64),
        "efficientnet_b0": (efficientnet.EfficientNet(eff, 0.2, num_classes=10, last_channel=64), 64),
        "regnet_y": (regnet.RegNet(regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8,
                                                                          se_ratio=0.25), num_classes=10), 64),
        "convnext": (convnext.ConvNeXt([convnext.CNBlockConfig(8, 16, 1), convnext.CNBlockConfig(16, None, 1)],
                                       num_classes=10), 64),
        "vit": (vision_transformer.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16,
                                                     mlp_dim=32, num_classes=10), 32),
        "swin": (swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                                                  window_size=[2, 2], num_classes=10), 32),
        "clip_negative": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardtanh(-1.0, 1.0), nn.Flatten(), nn.LazyLinear(10)), 8),
        "upsample": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Flatten(), nn.LazyLinear(10)), 8),
        "transpose_hw": (TransposeHW(), 8),
    }
    for name, (model, size) in nets.items():
        model.eval()
        x = torch.rand(1, 3, size, size, generator=gen)
        with torch.no_grad():
            model(x)  # sizes the lazy layer
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], opset_version=13)
        print("refused/%s.onnx: %d bytes" % (name, os.path.getsize(path)))
    # pickled modules: one no IF network has, one proxykit does not read
    for name, model in {"silu_seq": nn.Sequential(nn.Conv2d(1, 4, 3), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)),
                        "upsample_seq": nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Upsample(scale_factor=2),
                                                      nn.Flatten(), nn.Linear(4 * 52 * 52, 10))}.items():
        torch.save(model.eval(), os.path.join(out, name + ".pt"))
    # arithmetic with constants that is no affine map per channel (after the
    # rest, under a forked seed: the files above keep their bytes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(38)
        for name, model in {"div_by_activation": ConstArith("reciprocal"), "mul_by_row": ConstArith("row"),
                            "div_by_zero": ConstArith("zero")}.items():
            x = torch.rand(1, 2, 4, 4, generator=gen)
            path = os.path.join(out, name + ".onnx")
            torch.onnx.export(model.eval(), x, path, input_names=["input"], output_names=["output"], opset_version=13)
            print("refused/%s.onnx: %d bytes" % (name, os.path.getsize(path)))


class ConstArith(nn.Module):
    """A convolution, then arithmetic with a constant that proxykit refuses:
    a constant divided by the activation, a product with a constant that
    varies along the width (not per channel), a division by a constant
    holding a zero."""

    def __init__(self, kind):
        super().__init__()
        self.kind, self.conv, self.fc = kind, nn.Conv2d(2, 2, 3, padding=1), nn.Linear(32, 10)
        self.register_buffer("row", torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4))
        self.register_buffer("std", torch.tensor([0.5, 0.0]).view(1, 2, 1, 1))

    def forward(self, x):
        x = torch.relu(self.conv(x))
        if self.kind == "reciprocal":
            x = 1.0 / (x + 1.0)
        elif self.kind == "row":
            x = x * self.row
        else:
            x = x / self.std
        return self.fc(torch.flatten(x, 1))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "zoo")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(35)
    gen = torch.Generator().manual_seed(35)

    net = ReLU6Net()
    randomise_bn(net, gen)
    quantize(net)
    net.eval()
    x = dyadic(torch.rand(8, 1, 16, 16, generator=gen), INPUT_GRID)
    make_every_if_fire(net, x)
    write_net(out, "relu6net", net, x, x, opsets=(13, 9))

    split = SplitNet()
    quantize(split)
    split.eval()
    x = dyadic(torch.rand(4, 1, 12, 12, generator=gen), INPUT_GRID)
    make_every_if_fire(split, x)
    write_net(out, "splitnet", split, x, x[:1])

    seq = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU6(), nn.Conv2d(6, 6, 3, padding=1), nn.Hardtanh(0.0, 1.5),
                        nn.ChannelShuffle(3), nn.Conv2d(6, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10)).eval()
    x = torch.rand(2, 1, 28, 28, generator=gen) * 4
    with torch.no_grad():
        y = seq(x)
    torch.save(seq, os.path.join(out, "kinds_zoo.pt"))
    np.save(os.path.join(out, "kinds_zoo.x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, "kinds_zoo.ann.npy"), y.numpy().astype(np.float32))
    with open(os.path.join(out, "kinds_zoo.classes.json"), "w") as f:
        json.dump({name: type(m).__name__ for name, m in seq.named_children()}, f, indent=1, sort_keys=True)

    refused(os.path.join(out, "refused"), gen)

    # a multilayer perceptron with BatchNorm1d after its linear layers (its
    # own generator: the fixtures above keep their bytes)
    g1 = torch.Generator().manual_seed(36)
    mlp = nn.Sequential(nn.Linear(36, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 8, bias=False),
                        nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))
    # dyadic weights, inputs and BatchNorm parameters, and variances whose
    # √(var + eps) is a power of two: every sum of its SNN is exact
    quantize(mlp)
    for m in mlp:
        if isinstance(m, nn.BatchNorm1d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(dyadic(1 + 0.3 * torch.randn(c, generator=g1), WEIGHT_GRID))
                m.bias.copy_(dyadic(0.3 * torch.randn(c, generator=g1), WEIGHT_GRID))
                m.running_mean.copy_(dyadic(0.2 * torch.randn(c, generator=g1), WEIGHT_GRID))
                m.running_var.copy_(torch.tensor([EXACT_VARS[i % len(EXACT_VARS)] for i in range(c)]))
    mlp.eval()
    x = dyadic(torch.rand(3, 36, generator=g1) * 2, INPUT_GRID)
    torch.save(mlp, os.path.join(out, "mlp_bn1d.pt"))
    write_net(out, "mlp_bn1d", mlp, x, x)  # its inputs, outputs, ONNX export and SNN counts
    with open(os.path.join(out, "mlp_bn1d.classes.json"), "w") as f:
        json.dump({name: type(m).__name__ for name, m in mlp.named_children()}, f, indent=1, sort_keys=True)
    # the MLP of a first MNIST tutorial: a Flatten first, so that the
    # pickled module says nothing of the images' [1 28 28] (untrained)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    torch.save(flat, os.path.join(out, "mlp_flatten.pt"))
    x = torch.rand(2, 1, 28, 28, generator=g1)
    with torch.no_grad():
        np.save(os.path.join(out, "mlp_flatten.ann.npy"), flat(x).numpy().astype(np.float32))
    np.save(os.path.join(out, "mlp_flatten.x.npy"), x.numpy().astype(np.float32))

    # its own generator: the fixtures above keep their bytes (last, as it seeds torch's own)
    g2 = torch.Generator().manual_seed(37)
    torch.manual_seed(37)
    norm = NormNet()
    quantize(norm)
    norm.eval()
    x = dyadic(torch.rand(4, 2, 8, 8, generator=g2), INPUT_GRID)
    make_every_if_fire(norm, x)
    write_net(out, "normnet", norm, x, x)


if __name__ == "__main__":
    main()
