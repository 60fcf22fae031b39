#!/usr/bin/python3
"""The reference recipe of proxy learning in PyTorch, on proxykit's data stream.

Usage: /usr/bin/python3 scripts/recipe_torch.py --data DIR --onnx net.onnx
           --schedule schedule.json [--width 16] [--epochs 3]
           [--max-train 10000] [--max-test 2000] [--seed 2020]

It builds the paper's network at --width (or, with --arch tiny, proxykit's
tiny network) with PyTorch's default
initialisation (torch.manual_seed(--seed)), writes it as ONNX (BatchNorm
kept) to --onnx so that `proxykit train` starts from the very same weights,
and then trains it as the reference notebook does (docs/design.md §1): per
batch the ANN's forward pass, the SNN's forward pass in the clock-driven
order (the SNN's own BatchNorm statistics, updated once per time step in
epoch 0), the counts in place of the ANN's output, MSE against one-hot
labels, backpropagation and PyTorch's Adam (lr 1e-4, betas (0.8, 0.99), eps
1e-8, weight decay 1e-6; --lr changes the rate), BatchNorm in training mode in epoch 0 and in
eval mode after. The images of each epoch come in the order and with the
26×26 crops (padded back to 28×28) that `go run ./scripts/schedule` prints
for the same seed: the data stream proxykit's trainer draws. After each
epoch it prints one JSON line: train loss, test accuracy of the ANN and of
the SNN (strict: first maximum; ties: the label's count equals the
maximum) and the share of tied predictions, on the first --max-test test
images.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, SNN  # noqa: E402


class Tiny(nn.Module):
    """proxykit's tiny network (nn.Tiny): conv 1→8 + BN, ReLU, maxpool, conv
    8→16 + BN, ReLU, maxpool, flatten, linear 784→64, ReLU, 64→10."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(784, 64, bias=False), nn.ReLU(), nn.Linear(64, 10, bias=False))

    def forward(self, x):
        return self.body(x)


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(directory, split):
    prefix = "train" if split == "train" else "t10k"
    pick = lambda stem: next(os.path.join(directory, stem + ext) for ext in ("", ".gz")  # noqa: E731
                             if os.path.exists(os.path.join(directory, stem + ext)))
    x = idx(pick(prefix + "-images-idx3-ubyte")).astype(np.float32) / 255
    y = idx(pick(prefix + "-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def augment(images, crops):
    """The reference's crop: 26×26 at each (row, column) offset, padded by 1."""
    out = torch.zeros_like(images)
    for i, (oy, ox) in enumerate(crops):
        out[i, :, 1:27, 1:27] = images[i, :, oy:oy + 26, ox:ox + 26]
    return out


def evaluate(ann, snn, x, y, batch):
    ann.eval()
    snn.train(False)
    ok = strict = ties = tied = 0
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            xb, yb = x[lo:lo + batch], y[lo:lo + batch]
            ok += int((ann(xb).argmax(1) == yb).sum())
            c = snn.single_step(xb)
            m = c.max(1).values
            strict += int((c.argmax(1) == yb).sum())
            ties += int((c.gather(1, yb[:, None])[:, 0] == m).sum())
            tied += int(((c == m[:, None]).sum(1) > 1).sum())
    n = len(x)
    return {"ann": ok / n, "snn_strict": strict / n, "snn_ties": ties / n, "tie_share": tied / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--schedule", required=True)
    ap.add_argument("--arch", default="fmnist", choices=["fmnist", "tiny"])
    ap.add_argument("--width", type=int, default=16, help="fmnist: the channel width")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=10000)
    ap.add_argument("--max-test", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--timesteps", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate (the reference's: 1e-4)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    ann = ANN(args.width) if args.arch == "fmnist" else Tiny()
    ann.eval()
    torch.onnx.export(ann, torch.zeros(1, 1, 28, 28), args.onnx, input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    snn = SNN(ann, args.timesteps)
    x, y = load(args.data, "train")
    xt, yt = load(args.data, "test")
    x, y, xt, yt = x[:args.max_train], y[:args.max_train], xt[:args.max_test], yt[:args.max_test]
    with open(args.schedule) as f:
        schedule = json.load(f)
    assert schedule["batch"] == args.batch, "the schedule was drawn for another batch size"
    opt = torch.optim.Adam(ann.parameters(), lr=args.lr, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-6)
    for epoch in range(args.epochs):
        train_mode = epoch < 1  # BatchNorm in training mode in epoch 0 only
        order = schedule["epochs"][epoch]["order"]
        crops = schedule["epochs"][epoch]["crops"]
        loss_sum, start = 0.0, time.time()
        for lo in range(0, len(order), args.batch):
            ids = torch.tensor(order[lo:lo + args.batch])
            xb = augment(x[ids], crops[lo:lo + args.batch])
            onehot = F.one_hot(y[ids], 10).float()
            ann.train(train_mode)
            snn.train(train_mode)
            out = ann(xb)
            counts = snn.single_step(xb)
            out = out + (counts - out).detach()  # the counts in place of the output's values
            loss = ((out - onehot) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(ids)
        acc = evaluate(ann, snn, xt, yt, args.batch)
        print(json.dumps({"epoch": epoch, "train_loss": loss_sum / len(order), "test": acc,
                          "seconds": time.time() - start}), flush=True)


if __name__ == "__main__":
    main()
