"""Reference definitions shared by proxykit's fixture generators.

Run with Debian's python3 (/usr/bin/python3), which has python3-torch 1.13.

- ANN: the reference notebook's Fashion-MNIST network (docs/design.md §1)
  at any width; width 128 is the paper's.
- SNN: the IF twin of an ANN for training (shared γ and β, BatchNorm
  statistics of its own), in the reference's clock-driven order and in
  SpikingJelly's multi-step order.
- snn_counts: a plain PyTorch implementation of docs/design.md §1 (static
  input layer, IF neurons with v >= v_th and hard reset, one more IF layer
  after the last layer, counts summed over T). It is the oracle proxykit's
  Go simulation is held to.
"""

import torch
import torch.nn as nn


class ANN(nn.Module):
    """The reference network: static conv + BN, conv stack, fully connected stack."""

    def __init__(self, width=128):
        super().__init__()
        w = width
        self.static_conv = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
        )
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(w, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        h1, h2, h3 = 2560 * w // 128, 1152 * w // 128, 256 * w // 128
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w * 7 * 7, h1, bias=False),
            nn.ReLU(),
            nn.Linear(h1, h2, bias=False),
            nn.ReLU(),
            nn.Linear(h2, h3, bias=False),
            nn.ReLU(),
            nn.Linear(h3, 10, bias=False),
        )

    def forward(self, x):
        return self.fc(self.conv(self.static_conv(x)))


def flat_layers(model):
    """The model's leaf layers in the order its forward applies them."""
    out = []
    for m in model.modules():
        if len(list(m.children())) == 0:
            out.append(m)
    return out


class _Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


def snn_counts(layers, x, T=15, v_th=2.0, v_reset=0.0, record_rates=False, half_convs=False, half_linears=None):
    """Spike counts [B, K] of the SNN built from a list of eval-mode layers.

    Every ReLU becomes an IF layer; one more IF layer follows the last layer;
    everything before the first ReLU runs once on the analog input. Softmax
    and LogSoftmax at the end are left out, as proxykit does.

    half_convs computes as proxykit's 16-bit spikes do (lower.Options.HalfSpikes,
    docs/gpu-model.md): each convolution and linear layer over spikes (one
    without a bias) takes its weight rounded to IEEE binary16, sums in
    float32 and rounds its output to binary16 (torch's .half(): to nearest,
    ties to even); half_linears=False leaves the linear layers in float32
    (the program before linear layers took 16-bit spikes).
    """
    layers = [l for l in layers if not isinstance(l, (nn.Softmax, nn.LogSoftmax, nn.Dropout))]
    first = next(i for i, l in enumerate(layers) if isinstance(l, nn.ReLU))
    if half_linears is None:
        half_linears = half_convs
    with torch.no_grad():
        cur = x
        for l in layers[:first]:
            cur = l(cur)
        static = cur
        rest = layers[first:] + [nn.ReLU()]  # the extra IF layer after the last layer
        v = [None] * len(rest)
        spikes_total = [0.0] * len(rest)
        neurons = [0] * len(rest)
        counts = None
        for _ in range(T):
            cur = static
            for i, l in enumerate(rest):
                if isinstance(l, nn.ReLU):
                    if v[i] is None:
                        v[i] = torch.full_like(cur, v_reset)
                    v[i] = v[i] + cur
                    s = (v[i] >= v_th).to(cur.dtype)
                    v[i] = torch.where(s > 0, torch.full_like(cur, v_reset), v[i])
                    spikes_total[i] += float(s.sum())
                    neurons[i] = s.numel()
                    cur = s
                elif half_convs and isinstance(l, nn.Conv2d) and l.bias is None:
                    w = l.weight.half().float()
                    cur = nn.functional.conv2d(cur, w, None, l.stride, l.padding, l.dilation, l.groups).half().float()
                elif half_linears and isinstance(l, nn.Linear) and l.bias is None:
                    cur = nn.functional.linear(cur, l.weight.half().float()).half().float()
                else:
                    cur = l(cur)
            counts = cur if counts is None else counts + cur
    if record_rates:
        rates = [spikes_total[i] / (neurons[i] * T) for i in range(len(rest)) if isinstance(rest[i], nn.ReLU)]
        return counts, rates
    return counts


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


WEIGHT_GRID = 2.0 ** -8
INPUT_GRID = 2.0 ** -4


def dyadic(t, grid):
    """Round to a multiple of grid (a power of two)."""
    return torch.round(t / grid) * grid


def quantize_params(layers):
    """Round every Conv2d and Linear weight and bias to the weight grid."""
    with torch.no_grad():
        for l in layers:
            if isinstance(l, (nn.Conv2d, nn.Linear)):
                l.weight.copy_(dyadic(l.weight, WEIGHT_GRID))
                if l.bias is not None:
                    l.bias.copy_(dyadic(l.bias, WEIGHT_GRID))


def make_every_if_fire(model, x, T=15, v_th=2.0, lo=0.05, hi=0.6, target=0.2, quantize=True, steps=40,
                       scale_range=(1e-3, 1e3)):
    """Rescale the weights feeding each IF layer so that its firing rate lies in (lo, hi).

    Works layer by layer, front to back, by bisection on a scale factor of the
    last parametrised layer before each IF layer. Returns the final rates.

    With quantize, weights and biases are rounded to multiples of 2^-8. With
    inputs on a 2^-4 grid and BatchNorm scales that are powers of two (see
    randomise_bn), every sum the SNN forms is then exact in float32, whatever
    the summation order: an IF neuron's spike no longer depends on rounding,
    so any correct implementation gives the very same counts. (Without it, the
    SNN is chaotic at the last bit: PyTorch's own float32 and float64 runs of
    the reference network disagree in about 2.5 % of the counts.)
    """
    layers = flat_layers(model)
    if quantize:
        quantize_params(layers)
    relu_idx = [i for i, l in enumerate(layers) if isinstance(l, nn.ReLU)] + [len(layers)]
    for k, ri in enumerate(relu_idx):
        # the parametrised layer feeding IF layer k
        j = max(i for i in range(ri) if isinstance(layers[i], (nn.Conv2d, nn.Linear, nn.BatchNorm2d)))
        p = layers[j].weight
        if isinstance(layers[j], nn.BatchNorm2d):
            p = layers[j].weight
        grid = 2.0 ** -5 if isinstance(layers[j], nn.BatchNorm2d) else WEIGHT_GRID
        q = (lambda t, g=grid: dyadic(t, g)) if quantize else (lambda t: t)
        base = p.detach().clone()
        bias = getattr(layers[j], "bias", None)
        bbase = bias.detach().clone() if bias is not None else None
        lo_s, hi_s = scale_range
        for _ in range(steps):
            s = (lo_s * hi_s) ** 0.5
            with torch.no_grad():
                p.copy_(q(base * s))
                if bias is not None:
                    bias.copy_(q(bbase * s))
            _, rates = snn_counts(layers, x, T=T, v_th=v_th, record_rates=True)
            if rates[k] < target:
                lo_s = s
            else:
                hi_s = s
    _, rates = snn_counts(layers, x, T=T, v_th=v_th, record_rates=True)
    for k, r in enumerate(rates):
        assert lo < r < hi, f"IF layer {k} fires at rate {r:.3f}, outside ({lo}, {hi})"
    return rates


# Running variances v for which float32(v + 1e-5) is exactly 1, 4 or 1/4, so
# that BatchNorm's scale γ/sqrt(v + eps) is γ times a power of two.
EXACT_VARS = [0.99999, 3.99999, 0.24999]


def randomise_bn(model, gen, quantize=True):
    """Give every BatchNorm layer non-trivial affine parameters and running statistics.

    With quantize, γ, β and the mean lie on dyadic grids and the variances
    come from EXACT_VARS (checked here), keeping the SNN's sums exact.
    """
    import numpy as np
    for v in EXACT_VARS:
        s = np.float32(v) + np.float32(1e-5)
        assert np.sqrt(s) in (1.0, 2.0, 0.5), (v, s)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                gamma = 0.5 + torch.rand(c, generator=gen)
                beta = 0.2 * torch.rand(c, generator=gen) - 0.05
                mean = 0.1 * torch.randn(c, generator=gen)
                var = 0.5 + torch.rand(c, generator=gen)
                if quantize:
                    gamma, beta, mean = dyadic(gamma, 2.0 ** -4), dyadic(beta, 2.0 ** -6), dyadic(mean, 2.0 ** -6)
                    idx = torch.randint(0, len(EXACT_VARS), (c,), generator=gen)
                    var = torch.tensor(EXACT_VARS)[idx]
                m.weight.copy_(gamma)
                m.bias.copy_(beta)
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
