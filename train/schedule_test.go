package train

import (
	"context"
	"slices"
	"testing"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
)

// TestScheduleIsWhatRunDraws runs Run on images whose pixels encode their
// index and position, and checks that every batch it trains on is the
// sample order and the crop offsets Schedule reports, epoch after epoch.
func TestScheduleIsWhatRunDraws(t *testing.T) {
	const n, size = 30, 28 * 28
	d := &data.Dataset{Name: data.MNIST, Images: make([]float32, n*size), Labels: make([]uint8, n), N: n, C: 1, H: 28, W: 28, Classes: 10}
	for i := 0; i < n; i++ {
		d.Labels[i] = uint8(i % 10)
		for p := 0; p < size; p++ {
			d.Images[i*size+p] = float32(i*1024+p) / 32768 // exact: image i, position p
		}
	}
	s := recipe.Default()
	s.Dataset, s.BatchSize, s.Epochs, s.Timesteps = data.MNIST, 7, 3, 2
	ann, err := nn.Tiny(1)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(s, ann, snn, d, d.Subset(5))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	batches := 0
	tr.observe = func(epoch, b int, x *nn.Tensor, labels []uint8) {
		batches++
		order, crops, err := Schedule(s, n, epoch)
		if err != nil {
			t.Fatal(err)
		}
		for k := range labels {
			pos := b*s.BatchSize + k
			// pixel (1, 1) of the augmented image is pixel (oy, ox) of the source
			v := int(x.Data[k*size+28+1]*32768 + 0.5)
			i, oy, ox := v/1024, (v%1024)/28, (v%1024)%28
			if i != order[pos] || labels[k] != d.Labels[i] || [2]int{oy, ox} != crops[pos] {
				t.Fatalf("epoch %d batch %d image %d: Run drew image %d cropped at %d,%d; Schedule says image %d at %v",
					epoch, b, k, i, oy, ox, order[pos], crops[pos])
			}
		}
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := 3 * 5; batches != want {
		t.Fatalf("Run trained on %d batches, want %d", batches, want)
	}
	o0, _, err0 := Schedule(s, n, 0)
	o1, _, err1 := Schedule(s, n, 1)
	if err0 != nil || err1 != nil {
		t.Fatal(err0, err1)
	}
	if slices.Equal(o0, o1) {
		t.Error("epochs 0 and 1 have the same order: the order does not depend on the epoch")
	}
}
