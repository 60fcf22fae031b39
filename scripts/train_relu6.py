#!/usr/bin/python3
"""Train a small ReLU6 CNN as an ANN in PyTorch, for scripts/compare_clip_twins.sh.

Usage: /usr/bin/python3 scripts/train_relu6.py DATA_DIR OUT.onnx [--epochs 2] [--train-images 60000] [--seed 6]

DATA_DIR holds an IDX data set (MNIST's or Fashion-MNIST's four files,
gzipped). The network is scripts/make_conversion_fixtures.py's CNN with
every ReLU a ReLU6, as MobileNetV2 has them: conv 1→8 3x3 + BN, ReLU6, max
pooling 2; conv 8→16 3x3 + BN, ReLU6, average pooling 2; flatten; linear
784→64, ReLU6; linear 64→10. Adam (lr 1e-3), batches of 50, cross-entropy;
exported at opset 13 with BatchNormalization kept. Prints the test accuracy.
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_conversion_fixtures import load  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(784, 64), nn.ReLU6(), nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=60000)
    ap.add_argument("--seed", type=int, default=6)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    x, y = load(a.data, "train")
    x, y = x[:a.train_images], y[:a.train_images]
    tx, ty = load(a.data, "test")
    net = Net()
    g = torch.Generator().manual_seed(a.seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(a.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 50):
            idx = perm[i:i + 50]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = sum(int((net(tx[i:i + 500]).argmax(1) == ty[i:i + 500]).sum()) for i in range(0, len(tx), 500)) / len(tx)
    torch.onnx.export(net, x[:1], a.out, input_names=["input"], output_names=["output"], opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    print("ReLU6 ANN: %d epochs on %d images, test accuracy %.2f %% (PyTorch) -> %s" % (a.epochs, len(x), 100 * acc, a.out))


if __name__ == "__main__":
    main()
