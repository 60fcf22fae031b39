package nn

import (
	"slices"
	"testing"
)

// TestArchitecturesSizeFromStateDicts: for every registered architecture,
// built at sizes other than its defaults, Sized reads from the tensors'
// shapes alone options under which Build makes a network of the very same
// parameter names and shapes (what --arch does for a PyTorch state dict).
func TestArchitecturesSizeFromStateDicts(t *testing.T) {
	sizes := map[string]ArchOptions{"fmnist": {Width: 8}, "tiny": {}, "resnet": {Width: 4, Blocks: 2, Input: []int{1, 28, 28}}}
	for _, a := range Architectures() {
		o, ok := sizes[a.Name]
		if !ok {
			t.Fatalf("architecture %q has no test size", a.Name)
		}
		net, err := a.Build(o)
		if err != nil {
			t.Fatal(err)
		}
		shapes := map[string][]int{}
		for _, p := range net.Params() {
			shapes[p.Name] = p.Shape
		}
		back, err := a.Sized(shapes)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		again, err := a.Build(back)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Params()) != len(net.Params()) {
			t.Fatalf("%s: %d parameters, rebuilt %d", a.Name, len(net.Params()), len(again.Params()))
		}
		for i, p := range again.Params() {
			if q := net.Params()[i]; p.Name != q.Name || !slices.Equal(p.Shape, q.Shape) {
				t.Errorf("%s: rebuilt %s %v, was %s %v", a.Name, p.Name, p.Shape, q.Name, q.Shape)
			}
		}
		if !slices.Equal(again.InputShape, net.InputShape) {
			t.Errorf("%s: rebuilt input %v, was %v", a.Name, again.InputShape, net.InputShape)
		}
	}
	if _, err := ArchitectureNamed("vgg"); err == nil {
		t.Error("an unknown architecture was found")
	}
}
