package nn

import "testing"

// TestCheckInput: a network takes its own per-sample shape; one that takes
// a flat vector of k values also takes any sample of k values (an MLP
// pickled with its Flatten first, fed 28x28 images), and nothing else.
func TestCheckInput(t *testing.T) {
	flat, image := &Network{InputShape: []int{784}}, &Network{InputShape: []int{1, 28, 28}}
	for _, c := range []struct {
		net   *Network
		shape []int
		ok    bool
	}{
		{flat, []int{5, 784}, true},
		{flat, []int{5, 1, 28, 28}, true},
		{flat, []int{5, 28, 28}, true},
		{flat, []int{5, 3, 32, 32}, false},
		{flat, []int{5, 783}, false},
		{flat, []int{5, -1, -784}, false},
		{flat, []int{5, 0, 28, 28}, false},
		{image, []int{5, 1, 28, 28}, true},
		{image, []int{5, 784}, false},
		{image, []int{5, 28, 1, 28}, false},
	} {
		if err := c.net.CheckInput(c.shape); (err == nil) != c.ok {
			t.Errorf("network taking %v, input %v: %v, want accepted %v", c.net.InputShape, c.shape, err, c.ok)
		}
	}
}
