#!/usr/bin/python3
"""Print a NIR file's layout as JSON, read with h5py (Debian's python3-h5py).

Usage: /usr/bin/python3 scripts/nir_layout.py GRAPH.nir

Output: {"version", "type", "metadata": {key: string}, "edges": [[src, dst]],
"nodes": {name: {"type", "metadata": {key: string}, "fields": {field:
{"kind": "float"|"int"|"string", "dtype", "shape", "values" (integers: all of
them; floats: the distinct values, at most 16), "distinct" (floats: how many
distinct values)}}}}}. The exporter's tests hold the layout to what NIR's
reader and each consumer's loader need (exporter/nir_consumers_test.go).
"""

import json
import sys

import h5py
import numpy as np


def text(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def field(ds):
    v = ds[()]
    if isinstance(v, bytes):
        return {"kind": "string", "dtype": "string", "shape": [], "values": [v.decode("utf8")]}
    a = np.asarray(v)
    out = {"dtype": str(a.dtype), "shape": list(a.shape)}
    if np.issubdtype(a.dtype, np.integer):
        out.update(kind="int", values=[int(x) for x in a.reshape(-1)])
    elif np.issubdtype(a.dtype, np.floating):
        u = np.unique(a)
        out.update(kind="float", distinct=int(u.size), values=[float(x) for x in u[:16]])
    else:
        out.update(kind="other", values=[])
    return out


def main():
    with h5py.File(sys.argv[1], "r") as f:
        g = f["node"]
        doc = {"version": text(f["version"][()]), "type": text(g["type"][()]),
               "metadata": {k: text(v[()]) for k, v in g["metadata"].items()} if "metadata" in g else {},
               "edges": [[text(a), text(b)] for a, b in g["edges"][()]], "nodes": {}}
        for name, node in g["nodes"].items():
            d = {"type": text(node["type"][()]), "metadata": {}, "fields": {}}
            for k, item in node.items():
                if k == "type":
                    continue
                if k == "metadata":
                    d["metadata"] = {mk: text(mv[()]) for mk, mv in item.items()}
                elif isinstance(item, h5py.Group):
                    d["fields"][k] = {"kind": "group", "dtype": "group", "shape": [], "values": []}
                else:
                    d["fields"][k] = field(item)
            doc["nodes"][name] = d
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
