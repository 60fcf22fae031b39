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
  compiled   multistep under torch.compile (PyTorch 2 only)

Prints one JSON line per variant (images/s of the step and of SNN inference
at --infer-batch, TFLOP/s from the dense FLOP count, peak GPU memory) and a
table. Runs on the CPU too (for a quick check of the script itself).

    python3 scripts/bench_torch_gpu.py --seconds 3
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refnet import ANN, flat_layers  # noqa: E402


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


class SNN:
    """The IF twin of an ANN (same parameters, BatchNorm statistics of its own)."""

    def __init__(self, ann, T, vth=2.0, vreset=0.0):
        self.T, self.vth, self.vreset = T, vth, vreset
        layers = flat_layers(ann)
        first = next(i for i, l in enumerate(layers) if isinstance(l, nn.ReLU))
        own = []
        for l in layers:
            if isinstance(l, nn.BatchNorm2d):
                b = nn.BatchNorm2d(l.num_features, eps=l.eps, momentum=l.momentum).to(l.weight.device)
                b.weight, b.bias = l.weight, l.bias  # shared γ, β
                b.running_mean.copy_(l.running_mean)
                b.running_var.copy_(l.running_var)
                own.append(b)
            else:
                own.append(l)
        self.static, self.dynamic = own[:first], own[first:]

    def train(self, mode):
        for l in self.static + self.dynamic:
            l.train(mode)

    def if_step(self, v, x):
        v = v + x
        s = (v >= self.vth).to(x.dtype)
        return torch.where(s > 0, torch.full_like(v, self.vreset), v), s

    @torch.no_grad()
    def single_step(self, x):
        """The reference's order: every layer once per time step."""
        cur = x
        for l in self.static:
            cur = l(cur)
        static = cur
        vs = {}
        counts = 0
        for _ in range(self.T):
            cur = static
            for i, l in enumerate(self.dynamic):
                if isinstance(l, nn.ReLU):
                    v = vs.get(i, torch.full_like(cur, self.vreset))
                    vs[i], cur = self.if_step(v, cur)
                else:
                    cur = l(cur)
            v = vs.get("out", torch.full_like(cur, self.vreset))
            vs["out"], s = self.if_step(v, cur)
            counts = counts + s
        return counts

    def bn_multistep(self, l, x):
        """BatchNorm over [T·B] rows with statistics per time step."""
        if not l.training:
            return l(x)
        T = self.T
        xs = x.view(T, -1, *x.shape[1:])
        mean = xs.mean(dim=(1, 3, 4))
        var = xs.var(dim=(1, 3, 4), unbiased=False)
        n = xs.shape[1] * xs.shape[3] * xs.shape[4]
        with torch.no_grad():
            for t in range(T):
                l.running_mean.mul_(1 - l.momentum).add_(l.momentum * mean[t])
                l.running_var.mul_(1 - l.momentum).add_(l.momentum * var[t] * n / (n - 1))
        scale = l.weight / torch.sqrt(var + l.eps)
        shift = l.bias - mean * scale
        return (xs * scale[:, None, :, None, None] + shift[:, None, :, None, None]).view_as(x)

    @torch.no_grad()
    def multi_step(self, x):
        """SpikingJelly's order: each stateless layer over all T·B rows."""
        cur = x
        for l in self.static:
            cur = l(cur)
        T = self.T
        seq = cur.unsqueeze(0).expand(T, *cur.shape)
        for l in self.dynamic + [nn.ReLU()]:
            if isinstance(l, nn.ReLU):
                v = torch.full_like(seq[0], self.vreset)
                out = []
                for t in range(T):
                    v, s = self.if_step(v, seq[t])
                    out.append(s)
                seq = torch.stack(out)
            else:
                flat = seq.reshape(-1, *seq.shape[2:])
                y = self.bn_multistep(l, flat) if isinstance(l, nn.BatchNorm2d) else l(flat)
                seq = y.view(T, -1, *y.shape[1:])
        return seq.sum(0)


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
        if variant == "compiled":
            if not hasattr(torch, "compile"):
                print(json.dumps({"variant": variant, "error": "torch.compile needs PyTorch 2"}), flush=True)
                continue
            simulate = torch.compile(snn.multi_step)
            forward = torch.compile(ann)

        def step():
            ann.train(True)
            snn.train(True)
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
        infer_s = bench(lambda: simulate(xi), args.seconds, sync)
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
