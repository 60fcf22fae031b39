#!/usr/bin/python3
"""Run ONNX's own operator conformance cases through `proxykit infer`.

Usage: /usr/bin/python3 scripts/onnx_conformance.py PROXYKIT [OUTDIR]

The cases come from the installed onnx package (Debian's python3-onnx
1.12): its generator writes, per case, a folder with model.onnx and
test_data_set_*/{input,output}_N.pb, PyTorch-independent expected outputs
written by ONNX's reference implementations. Every `node` and `simple`
case is given to proxykit (`infer --network ann` on input_0, as float32
.npy; the case's other inputs become initializers holding their values,
since proxykit takes weights as initializers); each ends as one of:

  pass     proxykit's output equals the expected one (relative error ≤ 1e-4
           in the norm, or exactly equal for integer results)
  refused  proxykit stops with a one-line error (an operator, a shape or a
           second graph input it does not support): fine
  wrong    proxykit returns a result that is not the expected one
  crash    a panic, a stack trace, a signal or a time-out

It prints the counts and the wrong and crashed cases, and exits non-zero
if any case is wrong or crashed. Generating the cases takes about 20 s;
running them about a minute on 2 cores.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

# onnx 1.12's generator uses aliases that NumPy 1.24 removed.
for _alias, _type in (("float", float), ("int", int), ("bool", bool), ("object", object)):
    if _alias not in np.__dict__:
        setattr(np, _alias, _type)

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from onnx.backend.test import cmd_tools  # noqa: E402


def generate(out):
    argv = sys.argv
    sys.argv = ["onnx-backend-test", "generate-data", "-o", out]
    try:
        cmd_tools.main()
    finally:
        sys.argv = argv


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def freeze(case, work):
    """The case's model with every graph input after the first turned into
    an initializer holding the case's value for it: proxykit takes one
    input, the image batch, and weights as initializers."""
    m = onnx.load(os.path.join(case, "model.onnx"))
    ds = os.path.join(case, "test_data_set_0")
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    for k, i in enumerate(inputs[1:], start=1):
        path = os.path.join(ds, f"input_{k}.pb")
        if not os.path.exists(path):
            return None
        t = onnx.TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        t.name = i.name
        m.graph.initializer.append(t)
    out = os.path.join(work, "model.onnx")
    onnx.save(m, out)
    return out


def classify(proxykit, case, work):
    ds = os.path.join(case, "test_data_set_0")
    inp = os.path.join(ds, "input_0.pb")
    want_path = os.path.join(ds, "output_0.pb")
    if not os.path.exists(inp) or not os.path.exists(want_path):
        return "skipped", "no input_0 or output_0"
    try:
        x = load_pb(inp)
        want = load_pb(want_path)
        model = freeze(case, work)
    except Exception as e:  # a sequence or optional input: not a tensor
        return "skipped", f"not a tensor: {e}"
    if model is None:
        return "skipped", "an input without a value"
    xin = os.path.join(work, "x.npy")
    yout = os.path.join(work, "y.npy")
    if os.path.exists(yout):
        os.remove(yout)
    np.save(xin, x.astype(np.float32) if x.dtype == np.float64 else x)
    try:
        r = subprocess.run([proxykit, "infer", model, "--input", xin, "--output", yout,
                            "--network", "ann"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "crash", "time-out after 60 s"
    err = r.stderr.strip()
    if r.returncode != 0:
        if r.returncode < 0 or "panic" in err or "goroutine " in err or "runtime error" in err or r.returncode != 1:
            return "crash", f"exit {r.returncode}: {err[:300]}"
        if len(err.splitlines()) != 1:
            return "crash", f"a multi-line error: {err[:300]}"
        if os.path.exists(yout):
            return "crash", "failed, yet wrote its output"
        return "refused", err
    got = np.load(yout)
    if got.shape != want.shape and got.size == want.size:
        got = got.reshape(want.shape)
    if got.shape != want.shape:
        return "wrong", f"shape {got.shape}, want {want.shape}"
    w = want.astype(np.float64)
    g = got.astype(np.float64)
    if np.issubdtype(want.dtype, np.integer) or want.dtype == np.bool_:
        return ("pass", "") if np.array_equal(g, w) else ("wrong", "integer results differ")
    if np.isnan(w).any() or np.isnan(g).any():
        same = np.array_equal(np.isnan(w), np.isnan(g)) and np.allclose(g[~np.isnan(g)], w[~np.isnan(w)], rtol=1e-4, atol=1e-5)
        return ("pass", "") if same else ("wrong", "NaNs differ")
    den = max(np.linalg.norm(w), 1e-30)
    rel = np.linalg.norm(g - w) / den
    if rel <= 1e-4 or np.allclose(g, w, rtol=1e-4, atol=1e-6):
        return "pass", ""
    return "wrong", f"relative error {rel:.3g}"


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    proxykit = os.path.abspath(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="onnx-cases-")
    if not os.path.isdir(os.path.join(out, "node")):
        generate(out)
    counts = {"pass": 0, "refused": 0, "wrong": 0, "crash": 0, "skipped": 0}
    bad = []
    passed = []
    with tempfile.TemporaryDirectory() as work:
        for kind in ("node", "simple"):
            root = os.path.join(out, kind)
            for name in sorted(os.listdir(root)):
                result, why = classify(proxykit, os.path.join(root, name), work)
                counts[result] += 1
                if result in ("wrong", "crash"):
                    bad.append(f"{result}: {kind}/{name}: {why}")
                elif result == "pass":
                    passed.append(name)
    print(f"ONNX conformance cases through proxykit infer: {counts['pass']} pass, {counts['refused']} refused, "
          f"{counts['wrong']} wrong, {counts['crash']} crash ({counts['skipped']} without a tensor input and output)")
    print("passed:", " ".join(passed))
    for b in bad:
        print(b)
    sys.exit(1 if counts["wrong"] or counts["crash"] else 0)


if __name__ == "__main__":
    main()
