"""PyTorch's proxy-learning step and SNN inference, for side-by-side GPU timings.

The same work as `proxykit bench --device cuda` (the paper's network at
--width, batch --batch, T = --timesteps, BatchNorm in training mode with the
SNN's statistics per time step, Adam as the reference), in the orders PyTorch
users run it:

  eager      the reference notebook's clock-driven loop: every layer once per
             time step on [B] rows (PyTorch defaults: TF32 in cuDNN
             convolutions, not in matmuls)
  eager-tf32 the same with TF32 matmuls and cudnn.benchmark
  multistep  SpikingJelly's multi-step order: each stateless layer over all
             T·B rows at once, the IF recurrence a loop over T (TF32)
  compiled   multistep under torch.compile (PyTorch 2 only), TF32
  compiled-bf16  the same under bf16 autocast: PyTorch's 16-bit step, to
             set beside a 16-bit proxykit

Prints one JSON line per variant (images/s of the step and of SNN inference
at --infer-batch, TFLOP/s from the dense FLOP count, peak GPU memory) and a
table. Runs on the CPU too (for a quick check of the script itself).

    python3 scripts/bench_torch_gpu.py --seconds 3
"""

import argparse
import contextlib
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, SNN, flat_layers  # noqa: E402


def dense_flops(layers, shape):
    """Dense FLOPs (2 per multiply-add) of conv and linear layers, per image."""
    f, x = 0.0, torch.zeros(1, *shape)
    with torch.no_grad():
        for l in layers:
            y = l(x)
            if isinstance(l, nn.Conv2d):
                f += 2 * y.numel() * l.weight[0].numel()
            elif isinstance(l, nn.Linear):
                f += 2 * l.weight.numel()
            x = y
    return f


def bench(fn, seconds, sync):
    fn()
    fn()
    sync()
    n, start = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - start < seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - start) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--timesteps", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--variants", default="eager,eager-tf32,multistep,compiled")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"PyTorch {torch.__version__} on {name}", flush=True)
    rows = []
    for variant in args.variants.split(","):
        torch.manual_seed(2020)
        tf32 = variant != "eager"
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = variant != "eager"
            torch.cuda.reset_peak_memory_stats()
        ann = ANN(args.width)
        layers = flat_layers(ann)
        static = next(i for i, l in enumerate(layers) if isinstance(l, nn.ReLU))
        ann_f = dense_flops(layers, (1, 28, 28))
        static_f = dense_flops(layers[:static], (1, 28, 28))
        ann = ann.to(dev)
        snn = SNN(ann, args.timesteps)
        infer_f = static_f + args.timesteps * (ann_f - static_f)
        step_f = 3 * ann_f + infer_f
        opt = torch.optim.Adam(ann.parameters(), lr=1e-4, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-6)
        x = torch.rand(args.batch, 1, 28, 28, device=dev)
        labels = torch.randint(0, 10, (args.batch,), device=dev)
        onehot = F.one_hot(labels, 10).float()
        simulate = snn.single_step if variant.startswith("eager") else snn.multi_step
        forward = ann
        if variant.startswith("compiled"):
            if not hasattr(torch, "compile"):
                print(json.dumps({"variant": variant, "error": "torch.compile needs PyTorch 2"}), flush=True)
                continue
            simulate = torch.compile(snn.multi_step)
            forward = torch.compile(ann)

        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if variant.endswith("-bf16") else contextlib.nullcontext

        def step():
            ann.train(True)
            snn.train(True)
            with autocast():
                y = forward(x)
                counts = simulate(x)
            out = y - y.detach() + counts  # the counts in place of the output's values
            loss = ((out - onehot) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        try:
            step()
            sync()
        except Exception as e:  # report, go on with the other variants
            print(json.dumps({"variant": variant, "error": repr(e)[:500]}), flush=True)
            continue
        warm = time.perf_counter() - t0
        step_s = bench(step, args.seconds, sync)
        xi = torch.rand(args.infer_batch, 1, 28, 28, device=dev)
        snn.train(False)
        def infer():
            with autocast():
                simulate(xi)

        infer_s = bench(infer, args.seconds, sync)
        mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0
        r = {"variant": variant, "device": name, "torch": torch.__version__, "width": args.width, "batch": args.batch,
             "timesteps": args.timesteps, "train_images_per_sec": args.batch / step_s,
             "train_tflops": step_f * args.batch / step_s / 1e12, "infer_batch": args.infer_batch,
             "infer_images_per_sec": args.infer_batch / infer_s, "infer_tflops": infer_f * args.infer_batch / infer_s / 1e12,
             "first_step_seconds": warm, "peak_gpu_memory_mb": mem,
             "train_gflop_per_image": step_f / 1e9, "infer_gflop_per_image": infer_f / 1e9}
        rows.append(r)
        print(json.dumps(r), flush=True)
        del ann, snn, opt
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(f"\n{'variant':<12} {'train img/s':>12} {'TFLOP/s':>8} {'infer img/s':>12} {'TFLOP/s':>8} {'peak MB':>8}")
    for r in rows:
        print(f"{r['variant']:<12} {r['train_images_per_sec']:>12.0f} {r['train_tflops']:>8.1f} "
              f"{r['infer_images_per_sec']:>12.0f} {r['infer_tflops']:>8.1f} {r['peak_gpu_memory_mb']:>8.0f}")


if __name__ == "__main__":
    main()
