#!/usr/bin/python3
"""Check a NIR file's layout with h5py and simulate its graph with NumPy.

Usage: /usr/bin/python3 scripts/nir_sim.py GRAPH.nir INPUT.npy COUNTS.npy [POTENTIALS.npy]

First the layout, field by field, as NIR's own reader (nir.read, with type
checking) needs it: which fields each node type has, that each is a dataset
(not a group; only `metadata` is a group), its element type and its shape
(IF parameters shaped like their layer, Flatten's `input_type` a plain
integer array). A file proxykit once wrote passed an h5py-only check yet
failed in nir.read ("unhashable type: 'slice'") because Flatten's
input_type was a group; this check fails on that.

Then the simulation, written from NIR's node definitions (neuromorphs/NIR),
independently of proxykit's Go code, with dt = 1:
  Input/Output   pass their input through
  Conv2d         y = conv(x, weight, stride, padding (symmetric), dilation, groups) + bias
  Affine         y = W x + b;   Linear: y = W x
  SumPool2d      y = window sums;   AvgPool2d: window means
  Threshold      y = (x > threshold)
  Flatten        per-sample flattening from start_dim to end_dim
  IF             v += r * x; spike where v > v_threshold (NIR's rule, strictly
                 greater, whatever the metadata says), then v = v_reset there
The input is presented at every step (graph metadata "timesteps" steps) and
COUNTS is the Output node's input summed over the steps; POTENTIALS, if
given, the final membrane potentials of the IF node that feeds the Output
node. It exits non-zero
if the layout differs from what NIR reads (docs/design.md §3).
"""

import sys

import h5py
import numpy as np


# Each node type's fields as NIR's reader takes them: (kind, ndim), kind
# "f" float array, "i" integer, "s" string; ndim None for any.
SCHEMA = {
    b"Input": {"shape": ("i", 1)},
    b"Output": {"shape": ("i", 1)},
    b"Conv2d": {"weight": ("f", 4), "bias": ("f", 1), "stride": ("i", 1), "padding": ("i", 1),
                "dilation": ("i", 1), "groups": ("i", 0), "input_shape": ("i", 1)},
    b"Affine": {"weight": ("f", 2), "bias": ("f", 1)},
    b"Linear": {"weight": ("f", 2)},
    b"IF": {"r": ("f", None), "v_threshold": ("f", None), "v_reset": ("f", None)},
    b"SumPool2d": {"kernel_size": ("i", 1), "stride": ("i", 1), "padding": ("i", 1)},
    b"AvgPool2d": {"kernel_size": ("i", 1), "stride": ("i", 1), "padding": ("i", 1)},
    b"Threshold": {"threshold": ("f", None)},
    b"Flatten": {"start_dim": ("i", 0), "end_dim": ("i", 0), "input_type": ("i", 1)},
}


def check_layout(f):
    """Fail unless every field is what NIR's reader expects."""
    assert isinstance(f["version"], h5py.Dataset) and isinstance(f["version"][()], bytes), "version: a string dataset"
    g = f["node"]
    assert isinstance(g, h5py.Group), "node: a group"
    for name, node in g["nodes"].items():
        typ = node["type"][()]
        assert isinstance(typ, bytes), f"{name}: type must be a string dataset"
        assert typ in SCHEMA, f"{name}: node type {typ!r} is not one NIR's reader maps"
        fields = SCHEMA[typ]
        for k, item in node.items():
            if k in ("type",):
                continue
            if k == "metadata":
                assert isinstance(item, h5py.Group), f"{name}: metadata must be a group"
                for mk, mv in item.items():
                    assert isinstance(mv, h5py.Dataset), f"{name}: metadata {mk} must be a dataset"
                continue
            assert k in fields, f"{name} ({typ.decode()}): field {k!r} is not one NIR reads"
            assert isinstance(item, h5py.Dataset), f"{name} ({typ.decode()}): {k} must be a dataset, not a group"
        for k, (kind, ndim) in fields.items():
            assert k in node, f"{name} ({typ.decode()}): field {k!r} missing"
            v = node[k][()]
            arr = np.asarray(v)
            if kind == "f":
                assert arr.dtype == np.float32, f"{name}: {k} is {arr.dtype}, want float32"
            elif kind == "i":
                assert np.issubdtype(arr.dtype, np.integer), f"{name}: {k} is {arr.dtype}, want an integer type"
            if ndim is not None:
                assert arr.ndim == ndim, f"{name}: {k} has {arr.ndim} dimensions, want {ndim}"
        if typ == b"Conv2d":
            for k in ("stride", "padding", "dilation", "input_shape"):
                assert node[k].shape == (2,), f"{name}: {k} must hold 2 values"
            assert node["bias"].shape == (node["weight"].shape[0],), f"{name}: one bias per output channel"
        if typ == b"IF":
            shapes = {node[k].shape for k in ("r", "v_threshold", "v_reset")}
            assert len(shapes) == 1, f"{name}: r, v_threshold and v_reset differ in shape: {shapes}"
    edges = g["edges"][()]
    assert edges.ndim == 2 and edges.shape[1] == 2, f"edges: shape {edges.shape}, want (E, 2)"
    names = set(g["nodes"].keys())
    for a, b in edges:
        assert a.decode() in names and b.decode() in names, f"edge {a!r} -> {b!r} names a missing node"


def read(f):
    g = f["node"]
    assert isinstance(f["version"][()], bytes), "version must be a string dataset"
    assert g["type"][()] == b"NIRGraph", g["type"][()]
    edges = g["edges"][()]
    assert edges.ndim == 2 and edges.shape[1] == 2, edges.shape
    nodes = {}
    for name, node in g["nodes"].items():
        d = {"type": node["type"][()]}
        assert isinstance(d["type"], bytes), f"{name}: type must be a string"
        for k, v in node.items():
            if k == "type":
                continue
            if isinstance(v, h5py.Group):
                d[k] = {kk: vv[()] for kk, vv in v.items()}
            else:
                d[k] = v[()]
        nodes[name] = d
    meta = {k: v[()] for k, v in g["metadata"].items()} if "metadata" in g else {}
    return nodes, [(a.decode(), b.decode()) for a, b in edges], meta


def topological(nodes, edges):
    """The nodes in an order where every edge goes forward, from input to output."""
    preds = {n: [] for n in nodes}
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} names a missing node"
        preds[b].append(a)
    order, done = [], set()
    while len(order) < len(nodes):
        ready = [n for n in nodes if n not in done and all(p in done for p in preds[n])]
        assert ready, f"the graph has a cycle among {set(nodes) - done}"
        for n in sorted(ready):
            order.append(n)
            done.add(n)
    assert order[0] == "input" and order[-1] == "output", f"the graph must run from input to output: {order}"
    return order, preds


def conv2d(x, w, b, stride, pad, dil, groups=1):
    """NIR's Conv2d: input channels in groups of c/groups, each feeding its o/groups outputs."""
    if groups > 1:
        cg, og = x.shape[1] // groups, w.shape[0] // groups
        return np.concatenate([conv2d(x[:, j * cg:(j + 1) * cg], w[j * og:(j + 1) * og], b[j * og:(j + 1) * og],
                                      stride, pad, dil) for j in range(groups)], axis=1)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dil[0]: i * dil[0] + stride[0] * (oh - 1) + 1: stride[0],
                       j * dil[1]: j * dil[1] + stride[1] * (ow - 1) + 1: stride[1]]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + b.reshape(1, -1, 1, 1)


def pool(x, k, s, p, mean):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(k[0]):
        for j in range(k[1]):
            y += xp[:, :, i: i + s[0] * (oh - 1) + 1: s[0], j: j + s[1] * (ow - 1) + 1: s[1]]
    return y / (k[0] * k[1]) if mean else y


def main():
    path, inp, outp = sys.argv[1:4]
    outv = sys.argv[4] if len(sys.argv) > 4 else None
    with h5py.File(path, "r") as f:
        check_layout(f)
        nodes, edges, meta = read(f)
    order, preds = topological(nodes, edges)
    steps = int(meta[b"timesteps"] if b"timesteps" in meta else meta["timesteps"])
    x = np.load(inp).astype(np.float64)
    v = {}
    counts = 0
    for _ in range(steps):
        outs = {}
        for name in order:
            d = nodes[name]
            t = d["type"]
            if t == b"Input":
                assert list(d["shape"]) == list(x.shape[1:]), (d["shape"], x.shape)
                outs[name] = x
                continue
            # NIR: a node's input is the sum of its incoming edges
            cur = sum(outs[p] for p in preds[name])
            if t == b"Output":
                outs[name] = cur
                continue
            if t == b"Conv2d":
                assert d["weight"].dtype == np.float32 and d["weight"].ndim == 4
                assert list(d["input_shape"]) == list(cur.shape[2:]), (name, d["input_shape"], cur.shape)
                groups = int(d["groups"])
                # NIR's reader (commit 7232ada) takes a Conv2d's input channels
                # from weight.shape[1], ignoring groups: only groups = 1 loads
                assert groups == 1, f"{name}: groups = {groups}; NIR's reader refuses grouped Conv2d nodes"
                assert cur.shape[1] == d["weight"].shape[1], (name, d["weight"].shape, cur.shape)
                cur = conv2d(cur, d["weight"].astype(np.float64), d["bias"].astype(np.float64), d["stride"], d["padding"],
                             d["dilation"], groups)
            elif t in (b"Affine", b"Linear"):
                cur = cur @ d["weight"].astype(np.float64).T
                if t == b"Affine":
                    cur = cur + d["bias"]
            elif t in (b"SumPool2d", b"AvgPool2d"):
                cur = pool(cur, d["kernel_size"], d["stride"], d["padding"], t == b"AvgPool2d")
            elif t == b"Threshold":
                assert d["threshold"].shape == cur.shape[1:], (name, d["threshold"].shape, cur.shape)
                cur = (cur > d["threshold"]).astype(np.float64)
            elif t == b"Flatten":
                # NIR's dims index the per-sample shape (input_type); a
                # negative one counts from its end, as Python's do
                shape = list(cur.shape[1:])
                assert list(d["input_type"]) == shape, (name, d["input_type"], shape)
                s0, s1 = int(d["start_dim"]), int(d["end_dim"])
                s0, s1 = s0 + len(shape) if s0 < 0 else s0, s1 + len(shape) if s1 < 0 else s1
                assert 0 <= s0 <= s1 < len(shape), (name, d["start_dim"], d["end_dim"], shape)
                cur = cur.reshape(cur.shape[0], *shape[:s0], int(np.prod(shape[s0:s1 + 1])), *shape[s1 + 1:])
            elif t == b"IF":
                for k in ("r", "v_threshold", "v_reset"):
                    assert d[k].shape == cur.shape[1:], f"{name}: {k} has shape {d[k].shape}, the layer {cur.shape[1:]}"
                    assert d[k].dtype == np.float32
                if name not in v:
                    v[name] = np.broadcast_to(d["v_reset"], cur.shape).astype(np.float64)
                # proxykit computes in float32; so does this simulation of its membrane
                u = (v[name].astype(np.float32) + (d["r"] * cur).astype(np.float32)).astype(np.float32)
                s = u > d["v_threshold"]  # NIR's rule
                v[name] = np.where(s, d["v_reset"], u)
                cur = s.astype(np.float64)
            else:
                raise SystemExit(f"unknown node type {t!r} in {name}")
            outs[name] = cur
        counts = counts + outs["output"]
    np.save(outp, np.asarray(counts, dtype=np.float32))
    if outv:
        src = preds["output"]
        assert len(src) == 1 and nodes[src[0]]["type"] == b"IF", f"the Output node reads {src}, not one IF node"
        np.save(outv, np.asarray(v[src[0]], dtype=np.float32))


if __name__ == "__main__":
    main()
