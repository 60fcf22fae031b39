package train

import "testing"

// TestScheduleIsWhatRunDraws: the crop offsets Schedule reports are the ones
// Augment applies in Run's loop.
func TestScheduleIsWhatRunDraws(t *testing.T) {
	s := DefaultSettings()
	s.BatchSize = 7
	n := 30
	order, crops := s.Schedule(n, 3)
	if len(order) != n || len(crops) != n {
		t.Fatalf("schedule of %d and %d entries for %d images", len(order), len(crops), n)
	}
	src := make([]float32, 28*28)
	for i := range src {
		src[i] = float32(i)
	}
	got, want := make([]float32, 28*28), make([]float32, 28*28)
	for b := 0; b*s.BatchSize < n; b++ {
		rng := s.augmentRNG(3, b)
		for i := b * s.BatchSize; i < min((b+1)*s.BatchSize, n); i++ {
			Augment(rng, 1, 28, 28, src, got)
			oy, ox := crops[i][0], crops[i][1]
			clear(want)
			for y := 0; y < 26; y++ {
				for x := 0; x < 26; x++ {
					want[(y+1)*28+x+1] = src[(y+oy)*28+x+ox]
				}
			}
			for j := range want {
				if got[j] != want[j] {
					t.Fatalf("batch %d image %d: Augment cropped elsewhere than offset %v", b, i, crops[i])
				}
			}
		}
	}
	if o2, _ := s.Schedule(n, 3); o2[0] != order[0] {
		t.Fatal("Schedule is not deterministic")
	}
}
