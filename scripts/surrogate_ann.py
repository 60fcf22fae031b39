#!/usr/bin/python3
"""The starting network and the trained ANN of scripts/compare_surrogate.sh.

Usage: /usr/bin/python3 scripts/surrogate_ann.py --data DIR --schedule schedule.json
           --init init.onnx --ann ann.onnx [--width 32] [--epochs 3]
           [--max-train 20000] [--lr 1e-3] [--seed 1]

It builds the paper's network at --width with PyTorch's default
initialisation (torch.manual_seed(--seed)) and writes it, BatchNorm kept,
to --init: the network proxy learning and surrogate-gradient training both
start from. Then it trains it as an ANN — cross-entropy, Adam at --lr
(betas 0.9, 0.999), BatchNorm in training mode — on the first --max-train
training images in proxykit's data stream (each epoch's order and 26×26
crops as `go run ./scripts/schedule` prints them for the same seed: the
very images the other two methods train on), and writes it to --ann, for
`proxykit convert-snn`. It prints one JSON line per epoch: the training
loss, the seconds and the seconds per step.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recipe_torch import augment, load  # noqa: E402
from refnet import ANN  # noqa: E402


def export(model, path):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--schedule", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--ann", required=True)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    ann = ANN(args.width)
    export(ann, args.init)
    x, y = load(args.data, "train")
    x, y = x[:args.max_train], y[:args.max_train]
    with open(args.schedule) as f:
        schedule = json.load(f)
    assert schedule["batch"] == args.batch, "the schedule was drawn for another batch size"
    opt = torch.optim.Adam(ann.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        order, crops = schedule["epochs"][epoch]["order"], schedule["epochs"][epoch]["crops"]
        ann.train()
        loss_sum, steps, start = 0.0, 0, time.time()
        for lo in range(0, len(order), args.batch):
            ids = torch.tensor(order[lo:lo + args.batch])
            loss = F.cross_entropy(ann(augment(x[ids], crops[lo:lo + args.batch])), y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum, steps = loss_sum + float(loss) * len(ids), steps + 1
        sec = time.time() - start
        print(json.dumps({"epoch": epoch, "train_loss": loss_sum / len(order), "seconds": sec, "step_seconds": sec / steps}),
              flush=True)
    export(ann, args.ann)


if __name__ == "__main__":
    main()
