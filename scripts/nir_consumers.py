#!/usr/bin/python3
"""Run a proxykit NIR file in NIR's reader, norse, sinabs and snnTorch, batched,
and count the output spike counts that differ from proxykit's.

A check by hand, never run by the tests: the consumers are not installable
where CI runs. Fetch their sources (neuromorphs/NIR, neuromorphs/NIRTorch,
norse/norse, synsense/sinabs, jeshraghian/snntorch) and put the folders on
PYTHONPATH; Debian's python3-torch 1.13, numpy and h5py suffice, except that
sinabs imports `pbr.version` and `pylab` at start-up: two empty stand-ins
(a `pbr/version.py` whose VersionInfo(name).release_string() returns a
string, an empty `pylab.py`) let it import. docs/nir.md has the results.

Usage:
  PYTHONPATH=... /usr/bin/python3 scripts/nir_consumers.py GRAPH.nir X.npy COUNTS.npy [--raw]

COUNTS is proxykit's output for X (`proxykit infer MODEL --network snn`).
Each consumer is loaded as its documentation says and then given exactly the
settings docs/nir.md lists (with --raw: none of them, the out-of-the-box
result). The image is presented unchanged at every one of T steps (T from
the graph's metadata "timesteps"), the whole batch at once, and the output
spikes are summed over the steps.
"""

import argparse
import functools
import traceback

import numpy as np
import torch

import nir
import nirtorch


def run_stepwise(net, x, steps):
    """A nirtorch GraphModule: one call per step, its state carried."""
    state, total = None, 0
    for _ in range(steps):
        out, state = net(x, state)
        total = total + out
    return total


def norse_counts(g, x, steps, raw):
    import norse.torch
    import norse.torch.functional.threshold as th
    if not hasattr(torch.autograd.Function, "setup_context"):
        # norse's SuperSpike is written for torch >= 2.0 (forward without
        # ctx, setup_context); on torch 1.13 it raises a TypeError. Its
        # forward is heaviside(x) = (x > 0), which is all inference uses.
        th.superspike_fn = lambda v, alpha: th.heaviside(v)
    net = norse.torch.from_nir(g)  # IF -> IAFCell: fires on v > v_th, resets to 0, starts at 0
    return run_stepwise(net, x, steps)


def snntorch_if(node):
    """An IF node as snnTorch's Leaky without leak, reset to zero, its state kept inside."""
    import snntorch
    vth = np.unique(node.v_threshold)
    assert vth.size == 1 and np.all(node.r == 1)
    return snntorch.Leaky(beta=1.0, threshold=float(vth[0]), reset_mechanism="zero", init_hidden=True,
                          reset_delay=False)


def snntorch_counts(g, x, steps, raw):
    import snntorch
    from snntorch.import_nir import import_from_nir
    if raw:
        # IF -> Leaky(beta=0.9, reset by subtraction, init_hidden=False): it
        # returns (spikes, membrane), which nirtorch passes on as one value
        net = import_from_nir(g)
    else:
        # import_from_nir(g) is nirtorch.nir_to_torch(g, its node map); the
        # same, with IF mapped as an IF neuron
        import snntorch.import_nir as si
        m = functools.partial(si._nir_to_snntorch_module, init_hidden=True)
        node_map = {t: m for t in (nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.AvgPool2d)}
        node_map[nir.IF] = snntorch_if
        net = nirtorch.nir_to_torch(g, node_map)
    for mod in net.modules():
        if isinstance(mod, snntorch.SpikingNeuron):
            mod.mem = torch.zeros(0)  # a fresh state for this batch
    return run_stepwise(net, x, steps)


def sinabs_settings(net):
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, SingleSpike
    for m in net.modules():
        if isinstance(m, sl.IAF):
            m.spike_fn = SingleSpike           # one spike per step at most (default: several)
            m.reset_fn = MembraneReset()       # reset to 0 (default: subtract the threshold)
            m.min_v_mem = None                 # no floor (default: -v_threshold)


def sinabs_input(x, steps):
    """sinabs's Squeeze layers take [batch·T, ...], batch-major."""
    return x.repeat_interleave(steps, dim=0)


def sinabs_sum(out, n, steps):
    return out.reshape(n, steps, *out.shape[1:]).sum(1)


def sinabs_counts(g, x, steps, raw):
    import sinabs
    net = sinabs.from_nir(g, batch_size=x.shape[0])
    if not raw:
        sinabs_settings(net)
    out = net(sinabs_input(x, steps))
    if isinstance(out, tuple):
        out = out[0]
    return sinabs_sum(out, x.shape[0], steps)


def sinabs_nirtorch_counts(g, x, steps, raw):
    """sinabs's own node mapping, wired by nirtorch's interpreter (which orders a graph with joins)."""
    import sinabs.nir
    conv = functools.partial(sinabs.nir._import_sinabs_module, batch_size=x.shape[0], num_timesteps=steps)
    node_map = {t: conv for t in (nir.Affine, nir.Conv2d, nir.IF, nir.SumPool2d, nir.Flatten)}
    net = nirtorch.nir_to_torch(g, node_map)  # AvgPool2d from nirtorch's defaults
    if not raw:
        sinabs_settings(net)
    out, _ = net(sinabs_input(x, steps))
    return sinabs_sum(out, x.shape[0], steps)


CONSUMERS = [("norse", norse_counts), ("snnTorch", snntorch_counts), ("sinabs (sinabs.from_nir)", sinabs_counts),
             ("sinabs (nirtorch.nir_to_torch, sinabs's node map)", sinabs_nirtorch_counts)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("x")
    ap.add_argument("counts")
    ap.add_argument("--raw", action="store_true", help="no settings: each consumer as it loads")
    ap.add_argument("-v", action="store_true", help="print tracebacks")
    ap.add_argument("--save", metavar="PREFIX", help="save each consumer's counts as PREFIX.<consumer>.npy")
    a = ap.parse_args()
    g = nir.read(a.graph)  # with type checking
    steps = int(g.metadata["timesteps"])
    x = torch.from_numpy(np.load(a.x).astype(np.float32))
    want = np.load(a.counts)
    print(f"{a.graph}: nir.read loads it ({len(g.nodes)} nodes, {len(g.edges)} edges), T = {steps}, "
          f"{x.shape[0]} images, {want.size} counts")
    for name, fn in CONSUMERS:
        try:
            with torch.no_grad():
                got = fn(nir.read(a.graph), x, steps, a.raw).numpy()
            if got.shape != want.shape:
                print(f"  {name}: loads; output shape {got.shape}, want {want.shape}")
                continue
            print(f"  {name}: loads and runs batched; {int((got != want).sum())} of {want.size} counts differ")
            if a.save:
                np.save(f"{a.save}.{fn.__name__[:-len('_counts')]}.npy", got.astype(np.float32))
        except Exception as e:  # report and go on to the next consumer
            print(f"  {name}: fails: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if a.v:
                traceback.print_exc()


if __name__ == "__main__":
    main()
