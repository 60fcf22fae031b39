package train_test

import (
	"math/rand/v2"
	"testing"

	"github.com/proxykit/proxykit/train"
)

func TestAugment(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 28*28)
	for i := range src {
		src[i] = float32(i + 1)
	}
	dst := make([]float32, 28*28)
	seen := map[[2]int]bool{}
	for trial := 0; trial < 200; trial++ {
		if err := train.Augment(rng, 1, 28, 28, src, dst); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 28; i++ {
			if dst[i] != 0 || dst[27*28+i] != 0 || dst[i*28] != 0 || dst[i*28+27] != 0 {
				t.Fatal("the one-pixel border is not zero")
			}
		}
		// dst[1,1] is src[oy, ox] for the crop offset
		v := int(dst[28+1]) - 1
		oy, ox := v/28, v%28
		if oy > 2 || ox > 2 {
			t.Fatalf("crop offset %d,%d outside [0,2]", oy, ox)
		}
		for y := 0; y < 26; y++ {
			for x := 0; x < 26; x++ {
				if dst[(y+1)*28+x+1] != src[(y+oy)*28+x+ox] {
					t.Fatal("the crop is not a shifted copy")
				}
			}
		}
		seen[[2]int{oy, ox}] = true
	}
	if len(seen) != 9 {
		t.Errorf("saw %d of the 9 crop offsets in 200 draws", len(seen))
	}
}
