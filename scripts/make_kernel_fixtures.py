#!/usr/bin/python3
"""Write testdata/kernels.json: PyTorch's outputs for proxykit's CPU kernels.

Usage: /usr/bin/python3 scripts/make_kernel_fixtures.py   (Debian's python3-torch)

Each case gives an operation, its settings, random inputs and torch's
output (and gradients where the kernel has a backward pass), so the Go
kernels in compute/ are held to PyTorch one operation at a time.
"""

import json
import os

import torch
import torch.nn.functional as F


def t(x):
    return {"shape": list(x.shape), "data": [float(v) for v in x.detach().reshape(-1).tolist()]}


def main():
    g = torch.Generator().manual_seed(7)
    cases = []

    # Convolution: asymmetric padding (top 1, left 0, bottom 2, right 1), strides, dilation, bias.
    x = torch.randn(2, 3, 7, 9, generator=g, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, generator=g, requires_grad=True)
    b = torch.randn(4, generator=g, requires_grad=True)
    y = F.conv2d(F.pad(x, (0, 1, 1, 2)), w, b, stride=(2, 1), dilation=(2, 1))
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    cases.append({"op": "conv", "stride": [2, 1], "pads": [1, 0, 2, 1], "dilation": [2, 1],
                  "x": t(x), "w": t(w), "b": t(b), "y": t(y), "dy": t(dy), "dx": t(x.grad), "dw": t(w.grad),
                  "db": t(b.grad)})

    # The reference network's convolution: 3x3, pad 1, no bias.
    x = torch.randn(3, 4, 6, 6, generator=g, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, generator=g, requires_grad=True)
    y = F.conv2d(x, w, None, padding=1)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    cases.append({"op": "conv", "stride": [1, 1], "pads": [1, 1, 1, 1], "dilation": [1, 1],
                  "x": t(x), "w": t(w), "y": t(y), "dy": t(dy), "dx": t(x.grad), "dw": t(w.grad)})

    for k, s, p, ceil in [(2, 2, 0, False), (3, 2, 1, True), (3, 2, 1, False), (2, 3, 0, True)]:
        x = torch.randn(2, 3, 8, 9, generator=g)
        # ties: repeated values, so the first maximum matters for the backward pass
        x = torch.round(x * 2) / 2
        x.requires_grad_(True)
        y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        cases.append({"op": "maxpool", "k": k, "s": s, "p": p, "ceil": ceil, "x": t(x), "y": t(y), "dy": t(dy),
                      "dx": t(x.grad)})

    for k, s, p, ceil, cip in [(2, 2, 0, False, True), (3, 2, 1, True, True), (3, 2, 1, False, False),
                               (3, 2, 1, True, False)]:
        x = torch.randn(2, 3, 8, 9, generator=g, requires_grad=True)
        y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        cases.append({"op": "avgpool", "k": k, "s": s, "p": p, "ceil": ceil, "count_include_pad": cip, "x": t(x),
                      "y": t(y), "dy": t(dy), "dx": t(x.grad)})

    for training in (False, True):
        x = (torch.randn(4, 3, 5, 5, generator=g) * 2 + 0.5).requires_grad_(True)
        gamma = (torch.rand(3, generator=g) + 0.5).requires_grad_(True)
        beta = torch.randn(3, generator=g).requires_grad_(True)
        mean, var = torch.randn(3, generator=g), torch.rand(3, generator=g) + 0.3
        m0, v0 = mean.clone(), var.clone()
        y = F.batch_norm(x, mean, var, gamma, beta, training=training, momentum=0.1, eps=1e-5)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        cases.append({"op": "bn_train" if training else "bn_eval", "eps": 1e-5, "momentum": 0.1, "x": t(x),
                      "gamma": t(gamma), "beta": t(beta), "mean": t(m0), "var": t(v0), "y": t(y),
                      "new_mean": t(mean), "new_var": t(var), "dy": t(dy), "dx": t(x.grad),
                      "dgamma": t(gamma.grad), "dbeta": t(beta.grad)})

    x = torch.randn(5, 7, generator=g, requires_grad=True)
    w = torch.randn(3, 7, generator=g, requires_grad=True)
    b = torch.randn(3, generator=g, requires_grad=True)
    y = F.linear(x, w, b)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    cases.append({"op": "linear", "x": t(x), "w": t(w), "b": t(b), "y": t(y), "dy": t(dy), "dx": t(x.grad),
                  "dw": t(w.grad), "db": t(b.grad)})

    # torch.optim.Adam as the reference sets it: 3 steps on fixed gradients.
    p = torch.randn(10, generator=g)
    p0 = p.clone()
    grads = [torch.randn(10, generator=g) for _ in range(3)]
    param = torch.nn.Parameter(p.clone())
    opt = torch.optim.Adam([param], lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-3)
    after = []
    for gr in grads:
        param.grad = gr.clone()
        opt.step()
        after.append(param.detach().clone())
    cases.append({"op": "adam", "lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-8, "weight_decay": 1e-3, "x": t(p0),
                  "grads": t(torch.stack(grads)), "y": t(torch.stack(after))})

    x = torch.randn(4, 6, generator=g) * 3
    cases.append({"op": "softmax", "x": t(x), "y": t(F.softmax(x, 1)), "logy": t(F.log_softmax(x, 1))})

    # Backward passes of the layers whose gradients have no kernel of their own.
    for name, fn, shape in [
        ("Softmax", lambda z: F.softmax(z, 1), (4, 6)),
        ("LogSoftmax", lambda z: F.log_softmax(z, 1), (4, 6)),
        ("GlobalAvgPool", lambda z: F.adaptive_avg_pool2d(z, 1), (2, 3, 4, 5)),
        ("Pad2d", lambda z: F.pad(z, (1, 2, 0, 3), value=0.5), (2, 3, 4, 5)),
        ("ReLU", F.relu, (2, 3, 4, 5)),
    ]:
        x = (torch.randn(*shape, generator=g) * 2).requires_grad_(True)
        y = fn(x)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        cases.append({"op": "layer", "layer": name, "x": t(x), "y": t(y), "dy": t(dy), "dx": t(x.grad)})

    # IF neurons over 12 steps, v_th 1.0, v_reset 0.25, inputs including exact threshold hits.
    T, vth, vreset = 12, 1.0, 0.25
    inp = torch.round(torch.rand(T, 20, generator=g) * 8) / 8
    v = torch.full((20,), vreset)
    spikes = []
    for step in range(T):
        v = v + inp[step]
        s = (v >= vth).float()
        v = torch.where(s > 0, torch.full_like(v, vreset), v)
        spikes.append(s)
    cases.append({"op": "if", "vth": vth, "vreset": vreset, "x": t(inp), "y": t(torch.stack(spikes))})

    # Grouped and depthwise convolutions, from a generator of their own so
    # that the cases above keep their values.
    g2 = torch.Generator().manual_seed(8)
    for cin, cout, groups, stride, pad in [(6, 4, 2, (2, 1), 1), (4, 8, 4, (1, 1), 1)]:
        x = torch.randn(2, cin, 7, 6, generator=g2, requires_grad=True)
        w = torch.randn(cout, cin // groups, 3, 3, generator=g2, requires_grad=True)
        b = torch.randn(cout, generator=g2, requires_grad=True)
        y = F.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
        dy = torch.randn(y.shape, generator=g2)
        y.backward(dy)
        cases.append({"op": "conv", "stride": list(stride), "pads": [pad] * 4, "dilation": [1, 1], "groups": groups,
                      "x": t(x), "w": t(w), "b": t(b), "y": t(y), "dy": t(dy), "dx": t(x.grad), "dw": t(w.grad),
                      "db": t(b.grad)})

    # The layers of the networks users bring (MobileNetV2's ReLU6, a
    # Hardtanh(0, c), ShuffleNetV2's channel shuffle and its split along
    # channels), from a generator of their own so that the cases above keep
    # their values. Each x holds the clip's bounds exactly (no gradient
    # there, as torch's hardtanh_backward has it).
    g3 = torch.Generator().manual_seed(9)

    def shuffle(z, groups):
        b, c, h, w = z.shape
        return z.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)

    for name, fn, shape, extra in [
        ("ReLU6", F.relu6, (2, 3, 4, 5), {"ceiling": 6.0}),
        ("Hardtanh", lambda z: F.hardtanh(z, 0.0, 2.5), (2, 3, 4, 5), {"ceiling": 2.5}),
        ("ChannelShuffle", lambda z: shuffle(z, 3), (2, 6, 3, 4), {"groups": 3}),
        ("ChannelSlice", lambda z: z[:, 2:5], (2, 6, 3, 4), {"channels": [2, 5]}),
    ]:
        x = torch.randn(*shape, generator=g3) * 4
        if "ceiling" in extra:
            x.view(-1)[:3] = torch.tensor([0.0, extra["ceiling"], -0.0])
        x.requires_grad_(True)
        y = fn(x)
        dy = torch.randn(y.shape, generator=g3)
        y.backward(dy)
        cases.append(dict({"op": "layer", "layer": name, "x": t(x), "y": t(y), "dy": t(dy), "dx": t(x.grad)}, **extra))

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "kernels.json")
    with open(out, "w") as f:
        json.dump({"generator": "scripts/make_kernel_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
