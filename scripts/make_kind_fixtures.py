#!/usr/bin/python3
"""Generate testdata/kinds/: whole pickled torch.nn modules that use every
torch.nn class proxykit reads, for the layer-kind registry's test
(importer/kinds_test.go), with torch's outputs.

Usage: /usr/bin/python3 scripts/make_kind_fixtures.py   # rewrites testdata/kinds

Writes, for NAME in kinds (ends in LogSoftmax) and kinds_softmax (ends in
Softmax):
  NAME.pt      torch.save(module): a Sequential, saved whole
  NAME.x.npy   an input batch [2, 1, 28, 28]
  NAME.ann.npy torch's outputs on it (eval mode)
  NAME.classes.json  the torch.nn class of each module, by its path ("0")
  NAME.onnx    torch.onnx.export of the same module (opset 13, batch dynamic)
and two modules proxykit must refuse, naming the problem:
  torchvision_block.pt  a Sequential holding torchvision's BasicBlock, whose
                        forward adds a shortcut a pickle does not record
  custom_concat.pt      a Sequential holding a custom module whose forward
                        concatenates its two convolutions' outputs, so that
                        taking its children in order does not fit
"""

import json
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision


class CustomConcat(nn.Module):
    """Pickled as __main__.CustomConcat; its forward is not its children in order."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 2, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def randomise_bn(m, gen):
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.weight.data.copy_(1 + 0.2 * torch.randn(c, generator=gen))
            bn.bias.data.copy_(0.1 * torch.randn(c, generator=gen))
            bn.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "kinds")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(16)
    gen = torch.Generator().manual_seed(16)
    nets = {
        "kinds": nn.Sequential(
            nn.ConstantPad2d((1, 0, 2, 1), 0.25),
            nn.Conv2d(1, 4, 3, stride=(1, 2), padding=(1, 0)),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.ZeroPad2d((0, 1, 0, 1)),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False),
            nn.ReLU(),
            nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(1),
            nn.Identity(),
            nn.Flatten(),
            nn.Linear(6, 10),
            nn.LogSoftmax(dim=1),
        ),
        "kinds_softmax": nn.Sequential(
            nn.Conv2d(1, 2, 3, stride=3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * 9 * 9, 3),
            nn.Softmax(dim=1),
        ),
    }
    x = torch.rand(2, 1, 28, 28, generator=gen)
    for name, net in nets.items():
        randomise_bn(net, gen)
        net.eval()
        torch.save(net, os.path.join(out, name + ".pt"))
        np.save(os.path.join(out, name + ".x.npy"), x.numpy())
        with torch.no_grad():
            np.save(os.path.join(out, name + ".ann.npy"), net(x).numpy())
        with open(os.path.join(out, name + ".classes.json"), "w") as f:
            json.dump({path: type(m).__name__ for path, m in net.named_children()}, f, indent=1, sort_keys=True)
            f.write("\n")
        torch.onnx.export(net, x, os.path.join(out, name + ".onnx"), opset_version=13, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        print(f"wrote {name}: output {tuple(net(x).shape)}")
    torch.save(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), torchvision.models.resnet.BasicBlock(4, 4)),
               os.path.join(out, "torchvision_block.pt"))
    torch.save(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), CustomConcat(), nn.Flatten(), nn.Linear(4 * 28 * 28, 10)),
               os.path.join(out, "custom_concat.pt"))


if __name__ == "__main__":
    main()
