package nn

import "testing"

// TestTransposed2D: the tiled transpose of a MatMul weight is the
// transpose, for sizes that are and are not multiples of its tile.
func TestTransposed2D(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {3, 70}, {64, 32}, {37, 101}} {
		r, c := sz[0], sz[1]
		k := &ONNXConst{Shape: []int{r, c}, F: make([]float32, r*c)}
		for i := range k.F {
			k.F[i] = float32(i)
		}
		tr, err := k.transposed2D()
		if err != nil {
			t.Fatal(err)
		}
		if tr.Shape[0] != c || tr.Shape[1] != r {
			t.Fatalf("%dx%d: shape %v", r, c, tr.Shape)
		}
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				if tr.F[j*r+i] != k.F[i*c+j] {
					t.Fatalf("%dx%d: element (%d,%d) is %g, want %g", r, c, j, i, tr.F[j*r+i], k.F[i*c+j])
				}
			}
		}
	}
}
