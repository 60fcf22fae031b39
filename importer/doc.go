// Package importer reads ANNs — architecture and weights — into nn
// networks: ONNX files through github.com/owulveryck/onnx-go (LoadONNX),
// PyTorch checkpoints (torch.save files) through
// github.com/nlpodyssey/gopickle (LoadPT). Package model chooses between
// them by a file's contents.
package importer
