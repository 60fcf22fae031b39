package convert_test

import (
	"math"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/spiking"
)

// TestOptionsCheck: what convert-snn refuses before it reads a model, in
// the order it refuses it, each error naming its setting.
func TestOptionsCheck(t *testing.T) {
	ok := convert.Options{Percentile: convert.DefaultPercentile, Images: 0, Batch: 100, SNN: spiking.DefaultConfig()}
	if err := ok.Check(); err != nil {
		t.Fatalf("the defaults are refused: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*convert.Options)
		want string
	}{
		{"batch 0", func(o *convert.Options) { o.Batch = 0 }, "batch-size must lie between 1 and"},
		{"batch 0 and images -1", func(o *convert.Options) { o.Batch, o.Images = 0, -1 }, "batch-size"},
		{"images -1", func(o *convert.Options) { o.Images = -1 }, "calib-images must not be negative (0: all), got -1"},
		{"T 0", func(o *convert.Options) { o.SNN.Timesteps = 0 }, "timesteps must lie between"},
		{"percentile NaN", func(o *convert.Options) { o.Percentile = math.NaN() }, "percentile must lie in (0, 100]"},
		{"percentile 0 and T 0", func(o *convert.Options) { o.Percentile, o.SNN.Timesteps = 0, 0 }, "timesteps"},
	} {
		o := ok
		c.edit(&o)
		if err := o.Check(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q…", c.name, err, c.want)
		}
	}
}
