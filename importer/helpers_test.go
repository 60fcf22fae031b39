package importer_test

import (
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
)

func readArray(path string) (*nn.Tensor, error) {
	a, err := npy.ReadFile(path, false)
	if err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: a.Shape, Data: a.Data}, nil
}
