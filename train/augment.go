package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/proxykit/proxykit/compute"
)

// Augment writes a randomly augmented copy of one image into dst.
//
// For 28×28 images (MNIST, Fashion-MNIST) it is the reference's: a random
// 26×26 crop, then one pixel of zero padding on every side, back to 28×28.
// For 32×32 colour images (CIFAR-10): 4 pixels of zero padding, a random
// 32×32 crop and a horizontal flip with probability ½.
//
// It refuses a nil rng, sizes below 1 or above compute.MaxValues, and an
// image or a destination shorter than c·h·w values.
func Augment(rng *rand.Rand, c, h, w int, src, dst []float32) error {
	n, err := compute.Elements(c, h, w)
	switch {
	case rng == nil:
		return fmt.Errorf("augmenting an image: no random source (nil)")
	case err != nil || c < 1 || h < 1 || w < 1:
		return fmt.Errorf("augmenting a %d×%d×%d image: sizes must be positive and at most %d values", c, h, w, compute.MaxValues)
	case len(src) < n || len(dst) < n:
		return fmt.Errorf("augmenting a %d×%d×%d image: %d values in, room for %d", c, h, w, len(src), len(dst))
	}
	clear(dst)
	if h == 32 && w == 32 && c == 3 {
		dy, dx := rng.IntN(9)-4, rng.IntN(9)-4 // crop offset in the padded image, minus the padding
		flip := rng.IntN(2) == 1
		for ch := 0; ch < c; ch++ {
			for y := 0; y < h; y++ {
				sy := y + dy
				if sy < 0 || sy >= h {
					continue
				}
				for x := 0; x < w; x++ {
					sx := x + dx
					if sx < 0 || sx >= w {
						continue
					}
					tx := x
					if flip {
						tx = w - 1 - x
					}
					dst[(ch*h+y)*w+tx] = src[(ch*h+sy)*w+sx]
				}
			}
		}
		return nil
	}
	// crop (h−2)×(w−2) at a random offset in [0, 2], then pad 1 all round
	oy, ox := rng.IntN(3), rng.IntN(3)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h-2; y++ {
			for x := 0; x < w-2; x++ {
				dst[(ch*h+y+1)*w+x+1] = src[(ch*h+y+oy)*w+x+ox]
			}
		}
	}
	return nil
}
