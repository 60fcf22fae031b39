#!/usr/bin/python3
"""Generate testdata/hostile/: PyTorch files that are valid pickles of invalid networks.

Usage: /usr/bin/python3 scripts/make_hostile_fixtures.py   (Debian's python3-torch)

Each file is torch.save of a small module whose attributes PyTorch itself
would refuse at construction, set after the fact; proxykit must refuse each
with an error naming the module and the attribute (tests: model/hostile_test.go):

  conv_stride0.pt, maxpool_stride0.pt, avgpool_stride0.pt   stride 0
  conv_dilation0.pt                                         dilation 0
  conv_padding_neg.pt                                       padding -3
  pool_kernel0.pt                                           kernel_size 0
  bn_eps_neg.pt                                             BatchNorm eps -1
  linear_1d.pt                                              a 1-D Linear weight
  conv_2d_weight.pt                                         a 2-D Conv weight
  nan_weight.pt                                             a NaN in a weight
  self_module.pt                                            a Sequential that contains itself
  snn_T_<v>.pt                                              SNN modules (SpikingJelly's IFNode) with
                                                            T = 0, -1, 2.5, "x", 2**40
  concat_bomb.onnx                                          ONNX: ConstantOfShape of 2^24 floats fed to 39
                                                            Concats, gigabytes of constants from 2 KB
  softmax_dim0.pt                                           a Softmax over dim 0 (across the batch)
  softmax_mid.pt                                            a Softmax in the middle of the network
  groups_mismatch.pt                                        a Conv2d whose groups do not fit its weight
  custom_shortcut.pt                                        a custom module whose forward adds a shortcut
                                                            (a pickle records no forward: proxykit warns)
  self_edge.onnx, two_producers.onnx, dead_node.onnx        ONNX graphs wired as no exporter writes: a node
                                                            reading its own output, a value with two
                                                            producers, a node nothing reads
  huge_storage.pkl                                          the data.pkl of a state dict whose one tensor
                                                            declares 2**38 floats (1 TiB); the test wraps it
                                                            in a zip whose directory claims 1 TiB for the
                                                            storage and holds 16 bytes
"""

import collections
import io
import os
import pickle
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pt_fixtures import spikingjelly_modules  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "hostile")


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * 14 * 14, 10))


def save(m, name):
    torch.save(m, os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    m = small(); m[0].stride = (0, 0); save(m, "conv_stride0.pt")
    m = small(); m[3].stride = 0; save(m, "maxpool_stride0.pt")
    m = small(); m[3] = nn.AvgPool2d(2); m[3].stride = 0; save(m, "avgpool_stride0.pt")
    m = small(); m[0].dilation = (0, 0); save(m, "conv_dilation0.pt")
    m = small(); m[0].padding = (-3, -3); save(m, "conv_padding_neg.pt")
    m = small(); m[3].kernel_size = 0; save(m, "pool_kernel0.pt")
    m = small(); m[1].eps = -1.0; save(m, "bn_eps_neg.pt")
    m = small(); m[5].weight = nn.Parameter(torch.zeros(10)); save(m, "linear_1d.pt")
    m = small(); m[0].weight = nn.Parameter(torch.zeros(2, 9)); save(m, "conv_2d_weight.pt")
    m = small()
    with torch.no_grad():
        m[5].weight[3, 7] = float("nan")
    save(m, "nan_weight.pt")
    m = nn.Sequential(nn.Linear(4, 4))
    m.add_module("again", m)
    save(m, "self_module.pt")
    IFNode, ATan = spikingjelly_modules()
    for label, t in (("0", 0), ("neg1", -1), ("2.5", 2.5), ("x", "x"), ("2e40", 2 ** 40)):
        torch.manual_seed(0)
        snn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=ATan()),
                            nn.Flatten(), nn.Linear(2 * 28 * 28, 10), IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=ATan()))
        snn.T = t
        save(snn, "snn_T_%s.pt" % label)
    huge_storage()
    concat_bomb()
    m = small(); m.add_module("softmax", nn.Softmax(dim=0)); save(m, "softmax_dim0.pt")
    torch.manual_seed(0)
    save(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Softmax(dim=1), nn.Flatten(), nn.Linear(2 * 28 * 28, 10)), "softmax_mid.pt")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))
    m[1].groups = 3
    save(m, "groups_mismatch.pt")
    torch.manual_seed(0)
    save(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Shortcut(), nn.Flatten(), nn.Linear(2 * 28 * 28, 10)), "custom_shortcut.pt")
    wiring()


class Shortcut(nn.Module):
    """A residual block: its forward adds the input to the branch, which a pickle does not record."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(x)))


def wiring():
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    for name, nodes in (
            ("self_edge", [helper.make_node("Relu", ["x"], ["h"], name="first"), helper.make_node("Add", ["h", "y"], ["y"], name="loop")]),
            ("two_producers", [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Relu", ["x"], ["y"], name="two")]),
            ("dead_node", [helper.make_node("Relu", ["x"], ["y"], name="used"), helper.make_node("Relu", ["x"], ["z"], name="unused")])):
        g = helper.make_graph(nodes, name, [x], [y])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(OUT, name + ".onnx"))


class HugePickler(pickle.Pickler):
    """torch.save's pickling of a state dict, with a storage size of our choosing."""

    def persistent_id(self, obj):
        if isinstance(obj, torch.storage.TypedStorage) or torch.is_storage(obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 2 ** 38)
        return None


def concat_bomb():
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [1], [1 << 24])),
             helper.make_node("ConstantOfShape", ["shape"], ["c0"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))]
    for i in range(1, 40):
        nodes.append(helper.make_node("Concat", ["c0", "c0", "c0"], ["k%d" % i], axis=0))
    nodes.append(helper.make_node("Relu", ["x"], ["y"]))
    g = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(OUT, "concat_bomb.onnx"))


def huge_storage():
    t = torch.zeros(4)
    sd = collections.OrderedDict(w=t)
    buf = io.BytesIO()
    HugePickler(buf, protocol=2).dump(sd)
    with open(os.path.join(OUT, "huge_storage.pkl"), "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
