package contract_test

import (
	"testing"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// huge is a size no call may allocate: 2^62.
const huge = 1 << 62

// tinyNet is nn.Tiny's network and its SNN.
func tinyNet(t *testing.T) (*nn.Network, *spiking.Network) {
	t.Helper()
	net, err := nn.Tiny(1)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(net, spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return net, snn
}

// tinySet is a data set of n 1×28×28 images of 10 classes.
func tinySet(t *testing.T, n int) *data.Dataset {
	t.Helper()
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % 10)
	}
	d, err := data.New("tiny", make([]float32, n*28*28), labels, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
