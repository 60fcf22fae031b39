#!/usr/bin/python3
"""ONNX models in the style of older exporters, for proxykit's importer tests.

Usage: /usr/bin/python3 scripts/make_opset_fixtures.py [--large DIR]

Writes, with Debian's python3-onnx and fixed random weights (onnxruntime
gives the expected outputs at test time):

  testdata/zoo_mnist_opset8.onnx   the layout of the ONNX model zoo's MNIST
      classifier (a CNTK export, opset 8, IR 3): Conv with auto_pad
      SAME_UPPER and no bias, Add of a [C,1,1] bias, Relu, MaxPool, a second
      such block with a 3×3 MaxPool, Reshape of the activation and of the
      dense weight, MatMul, Add; weights listed among the graph inputs, as
      IR 3 requires.
  testdata/bn_pool_opset7.onnx     opset 7: Conv with bias, BatchNormalization
      (spatial=1), Relu, AveragePool with count_include_pad, Flatten, Dropout,
      Gemm with transB.
  testdata/zoo_mnist_opset8.x.npy, testdata/bn_pool_opset7.x.npy  inputs.
  testdata/empty_tensor.onnx       a ReduceSum whose axes are an empty tensor
      (a zero-size dimension), as in ONNX's own conformance cases.

With --large DIR it writes DIR/large_fc.onnx instead: a fully connected
layer of 4096 × 4200 weights (17.2 M, more than the 2^24 elements proxykit
allows a declared activation) stored as an initializer and listed as a graph
input, as VGG's zoo model lists its 4096 × 25088 layer; and
DIR/claims_too_much.onnx, a small file whose graph input claims such a
weight without holding it.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")


def save(model, path, ir):
    model.ir_version = ir
    onnx.checker.check_model(model)
    onnx.save(model, path)


def value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def zoo_mnist(rng):
    """The model zoo's mnist-8 layout (CNTK), batch 1, random weights."""
    w1 = rng.normal(0, 0.3, (8, 1, 5, 5)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (8, 1, 1)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (16, 8, 5, 5)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (16, 1, 1)).astype(np.float32)
    w3 = rng.normal(0, 0.1, (16, 4, 4, 10)).astype(np.float32)
    b3 = rng.normal(0, 0.1, (1, 10)).astype(np.float32)
    shape1 = np.array([1, 256], dtype=np.int64)
    shape2 = np.array([256, 10], dtype=np.int64)
    inits = [numpy_helper.from_array(a, n) for a, n in [(w1, "Parameter5"), (b1, "Parameter6"), (w2, "Parameter87"),
                                                      (b2, "Parameter88"), (w3, "Parameter193"), (b3, "Parameter194"),
                                                      (shape1, "Pooling160_Output_0_reshape0_shape"),
                                                      (shape2, "Parameter193_reshape1_shape")]]
    nodes = [
        helper.make_node("Conv", ["Input3", "Parameter5"], ["Convolution28_Output_0"], name="Convolution28",
                         kernel_shape=[5, 5], strides=[1, 1], auto_pad="SAME_UPPER", group=1, dilations=[1, 1]),
        helper.make_node("Add", ["Convolution28_Output_0", "Parameter6"], ["Plus30_Output_0"], name="Plus30"),
        helper.make_node("Relu", ["Plus30_Output_0"], ["ReLU32_Output_0"], name="ReLU32"),
        helper.make_node("MaxPool", ["ReLU32_Output_0"], ["Pooling66_Output_0"], name="Pooling66",
                         kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], auto_pad="NOTSET"),
        helper.make_node("Conv", ["Pooling66_Output_0", "Parameter87"], ["Convolution110_Output_0"], name="Convolution110",
                         kernel_shape=[5, 5], strides=[1, 1], auto_pad="SAME_UPPER", group=1, dilations=[1, 1]),
        helper.make_node("Add", ["Convolution110_Output_0", "Parameter88"], ["Plus112_Output_0"], name="Plus112"),
        helper.make_node("Relu", ["Plus112_Output_0"], ["ReLU114_Output_0"], name="ReLU114"),
        helper.make_node("MaxPool", ["ReLU114_Output_0"], ["Pooling160_Output_0"], name="Pooling160",
                         kernel_shape=[3, 3], strides=[3, 3], pads=[0, 0, 0, 0], auto_pad="NOTSET"),
        helper.make_node("Reshape", ["Pooling160_Output_0", "Pooling160_Output_0_reshape0_shape"],
                         ["Pooling160_Output_0_reshape0"], name="Times212_reshape0"),
        helper.make_node("Reshape", ["Parameter193", "Parameter193_reshape1_shape"], ["Parameter193_reshape1"],
                         name="Times212_reshape1"),
        helper.make_node("MatMul", ["Pooling160_Output_0_reshape0", "Parameter193_reshape1"], ["Times212_Output_0"],
                         name="Times212"),
        helper.make_node("Add", ["Times212_Output_0", "Parameter194"], ["Plus214_Output_0"], name="Plus214"),
    ]
    inputs = [value("Input3", [1, 1, 28, 28])] + [value(i.name, list(i.dims)) for i in inits if i.data_type == TensorProto.FLOAT]
    inputs += [helper.make_tensor_value_info(i.name, TensorProto.INT64, list(i.dims)) for i in inits if i.data_type == TensorProto.INT64]
    graph = helper.make_graph(nodes, "CNTKGraph", inputs, [value("Plus214_Output_0", [1, 10])], inits)
    return helper.make_model(graph, producer_name="CNTK", producer_version="2.5.1",
                             opset_imports=[helper.make_opsetid("", 8)])


def bn_pool(rng):
    """Opset 7: BatchNormalization (spatial), AveragePool counting padding, Gemm."""
    w = rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 6).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    bias = rng.normal(0, 0.1, 6).astype(np.float32)
    mean = rng.normal(0, 0.1, 6).astype(np.float32)
    var = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    fc = rng.normal(0, 0.1, (10, 6 * 5 * 5)).astype(np.float32)
    fcb = rng.normal(0, 0.1, 10).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (scale, "scale"), (bias, "bias"),
                                                      (mean, "mean"), (var, "var"), (fc, "fc"), (fcb, "fcb")]]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"], name="bn",
                         epsilon=1e-5, momentum=0.9, spatial=1),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Dropout", ["f"], ["d"], name="dropout", ratio=0.5),
        helper.make_node("Gemm", ["d", "fc", "fcb"], ["y"], name="gemm", transB=1),
    ]
    inputs = [value("x", ["N", 3, 10, 10])] + [value(i.name, list(i.dims)) for i in inits]
    graph = helper.make_graph(nodes, "opset7", inputs, [value("y", ["N", 10])], inits)
    return helper.make_model(graph, producer_name="proxykit-fixtures", opset_imports=[helper.make_opsetid("", 7)])


def empty_tensor():
    axes = numpy_helper.from_array(np.zeros(0, dtype=np.int64), "axes")
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum_nothing", keepdims=1)
    graph = helper.make_graph([node], "empty", [value("x", [1, 4])], [value("y", [1, 4])], [axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def large(out):
    rng = np.random.default_rng(7)
    n_in, n_out = 4200, 4096
    w = (rng.standard_normal((n_in, n_out), dtype=np.float32) * 0.01).astype(np.float32)
    b = np.zeros(n_out, dtype=np.float32)
    inits = [numpy_helper.from_array(w, "fc6_w"), numpy_helper.from_array(b, "fc6_b")]
    nodes = [helper.make_node("MatMul", ["x", "fc6_w"], ["m"], name="fc6"),
             helper.make_node("Add", ["m", "fc6_b"], ["y"], name="fc6_bias")]
    inputs = [value("x", [1, n_in]), value("fc6_w", [n_in, n_out]), value("fc6_b", [n_out])]
    graph = helper.make_graph(nodes, "large", inputs, [value("y", [1, n_out])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    save(m, os.path.join(out, "large_fc.onnx"), 3)
    np.save(os.path.join(out, "large_fc.x.npy"), rng.standard_normal((1, n_in), dtype=np.float32))
    # the same graph input declared, its data absent: a header claiming 25088 × 4096 floats
    inits = [numpy_helper.from_array(b, "fc6_b")]
    inputs = [value("x", [1, 25088]), value("fc6_w", [25088, n_out]), value("fc6_b", [n_out])]
    graph = helper.make_graph(nodes, "claims", inputs, [value("y", [1, n_out])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    m.ir_version = 3
    onnx.save(m, os.path.join(out, "claims_too_much.onnx"))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--large":
        large(sys.argv[2])
        return
    rng = np.random.default_rng(2021)
    save(zoo_mnist(rng), os.path.join(ROOT, "zoo_mnist_opset8.onnx"), 3)
    np.save(os.path.join(ROOT, "zoo_mnist_opset8.x.npy"), rng.uniform(0, 1, (1, 1, 28, 28)).astype(np.float32))
    save(bn_pool(rng), os.path.join(ROOT, "bn_pool_opset7.onnx"), 3)
    np.save(os.path.join(ROOT, "bn_pool_opset7.x.npy"), rng.uniform(0, 1, (4, 3, 10, 10)).astype(np.float32))
    save(empty_tensor(), os.path.join(ROOT, "empty_tensor.onnx"), 7)


if __name__ == "__main__":
    main()
