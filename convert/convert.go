// Package convert turns a trained ANN into an SNN by data-based weight
// normalisation, the classic ANN-to-SNN conversion that proxy learning is
// compared with: Rueckauer, Lungu, Hu, Pfeiffer and Liu, "Conversion of
// continuous-valued deep networks to efficient event-driven networks for
// image classification", Frontiers in Neuroscience 11:682 (2017), §2.3,
// "robust normalisation".
//
// Each neuron layer l — every ReLU, and the network's last layer, which the
// SNN's output IF layer follows — gets a scale λ_l: the p-th percentile
// (99.9 by default) of its positive activations on training images. The
// layer's input weights are multiplied by λ_{l−1}·θ/λ_l and its biases by
// θ/λ_l (λ_0 = 1: the analog input), where θ = v_th − v_reset, so that an
// activation of λ_l drives its IF neuron to fire at every step and smaller
// ones proportionally less often. The IF neurons keep proxykit's semantics
// (docs/design.md §1: spike when v ≥ v_th, hard reset to v_reset).
//
// Branching networks (residual Add, Concat) convert too: the branches
// that meet carry one scale, and an identity shortcut gets a scaling layer
// (Normalize says how). So do clipped ReLUs (ReLU6): their ceilings are
// scaled with their inputs, and where their IF twin saturates at the
// ceiling (spiking.ClipSaturate) their λ is the ceiling (Normalize).
//
// BatchNorm is folded as far as the scales go: where a convolution or
// linear layer is followed by BatchNorm, the input scale goes into the
// weights and the output scale into γ and β, so the running statistics
// stay valid. With θ = 1 the normalised ANN computes the original one's
// activations divided by λ_l, which is exactly what its SNN's firing rates
// approximate; with another θ the SNN is the same but the normalised ANN
// differs from the original by its biases (see Normalize).
package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// DefaultPercentile is the percentile of positive activations that sets a
// layer's scale: Rueckauer et al. found 99.9 to 99.999 robust to outliers.
const DefaultPercentile = 99.9

// Scale is one neuron layer's normalisation.
type Scale struct {
	// Layer names the ReLU the IF layer replaces, or "output".
	Layer string `json:"layer"`
	// Lambda is the percentile of the layer's positive activations.
	Lambda float64 `json:"lambda"`
	// Positive is how many positive activations the percentile was taken
	// over (all neurons, all calibration images).
	Positive int64 `json:"positive"`
	// Max is the largest activation seen.
	Max float64 `json:"max"`
}

// neuronLayers returns the indices of the layers whose outputs feed IF
// layers in the SNN: every ReLU and the last layer (a trailing softmax
// left out), with their names.
func neuronLayers(layers []nn.Layer) ([]int, []string) {
	var idx []int
	var names []string
	for i, l := range layers {
		if nn.RoleOf(l).Neuron {
			idx, names = append(idx, i), append(names, nn.NameOf(l))
		}
	}
	last := len(layers) - 1
	if len(idx) == 0 || idx[len(idx)-1] != last {
		idx, names = append(idx, last), append(names, "output")
	}
	return idx, names
}

// CheckPercentile refuses a percentile Calibrate cannot take, one outside
// (0, 100], before any work.
func CheckPercentile(p float64) error {
	if !(p > 0 && p <= 100) {
		return fmt.Errorf("percentile must lie in (0, 100], got %g", p)
	}
	return nil
}

// Calibrate runs ann (BatchNorm in eval mode) on be over the first images
// of d, batch at a time, and returns each neuron layer's scale: the
// percentile p of its positive activations, interpolated linearly between
// order statistics as numpy.percentile does. It reads the data twice —
// once for a histogram of each layer's values, once to sort only the
// bucket the percentile falls in — so its memory does not grow with the
// number of images.
func Calibrate(ctx context.Context, be compute.Backend, ann *nn.Network, d *data.Dataset, images, batch int, p float64) ([]Scale, error) {
	if ctx == nil || be == nil || ann == nil || d == nil {
		return nil, fmt.Errorf("calibration: the context, backend, network and data set are required (nil)")
	}
	if err := CheckPercentile(p); err != nil {
		return nil, err
	}
	if images < 1 || images > d.N {
		images = d.N
	}
	if images < 1 {
		return nil, fmt.Errorf("no calibration images")
	}
	if batch < 1 {
		return nil, fmt.Errorf("batch size must be at least 1, got %d", batch)
	}
	body, _ := ann.Body()
	if len(body.Layers) == 0 {
		return nil, fmt.Errorf("the network has no layers")
	}
	if err := ann.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
		return nil, fmt.Errorf("calibration images: %w", err)
	}
	if err := ann.Bind(be); err != nil {
		return nil, err
	}
	ann.Upload()
	scales, err := calibrate(ctx, be, body, d, images, batch, p)
	// The network goes back to host memory, where Normalize changes it.
	if rerr := ann.Release(); err == nil && rerr != nil {
		err = rerr
	}
	return scales, err
}

func calibrate(ctx context.Context, be compute.Backend, body *nn.Network, d *data.Dataset, images, batch int, p float64) ([]Scale, error) {
	idx, names := neuronLayers(body.Layers)
	batch = min(batch, images)
	ex, err := lower.NewExecutor(be, body, lower.Options{Capacity: batch, Keep: idx})
	if err != nil {
		return nil, err
	}
	defer ex.Free()
	in, err := be.Alloc(batch * nn.Numel(body.InputShape))
	if err != nil {
		return nil, err
	}
	defer be.Free(in)
	sz := d.C * d.H * d.W
	host := []float32{}
	// pass runs the network over the calibration images and hands each
	// neuron layer's positive activations to visit.
	pass := func(visit func(layer int, v float32)) error {
		for lo := 0; lo < images; lo += batch {
			if ctx.Err() != nil {
				return train.ErrInterrupted
			}
			hi := min(lo+batch, images)
			buf := in.Slice(0, (hi-lo)*sz)
			be.Upload(buf, d.Images[lo*sz:hi*sz])
			if _, err := ex.Forward(nn.Value{Shape: []int{hi - lo, d.C, d.H, d.W}, Buf: buf}); err != nil {
				return err
			}
			for j, li := range idx {
				out := ex.Output(li)
				host = slices.Grow(host[:0], out.Buf.Len())[:out.Buf.Len()]
				if err := be.Download(host, out.Buf); err != nil {
					return err
				}
				for _, v := range host {
					if v > 0 {
						visit(j, v)
					} else if v != v {
						return fmt.Errorf("layer %q gives NaN on calibration image %d…%d", names[j], lo, hi-1)
					}
				}
			}
		}
		return be.Err()
	}
	// Positive float32 values order as their bit patterns do; the top 16
	// bits make 65,536 buckets of relative width 1/128.
	hist := make([][1 << 16]int64, len(idx))
	scales := make([]Scale, len(idx))
	if err := pass(func(j int, v float32) {
		hist[j][math.Float32bits(v)>>16]++
		scales[j].Positive++
		scales[j].Max = max(scales[j].Max, float64(v))
	}); err != nil {
		return nil, err
	}
	// The percentile interpolates the order statistics lo and lo+1
	// (0-based) of the n positive values, at h = (n−1)·p/100.
	type want struct {
		lo, hi   uint32 // buckets holding ranks lo and lo+1
		before   int64  // values in buckets below lo
		h        float64
		collect  []float32
		fraction float64
	}
	wants := make([]want, len(idx))
	for j := range scales {
		scales[j].Layer = names[j]
		n := scales[j].Positive
		if n == 0 {
			continue
		}
		h := float64(n-1) * p / 100
		rank := int64(math.Floor(h))
		w := &wants[j]
		w.h, w.fraction = h, h-float64(rank)
		var cum int64
		found := false
		for b := range hist[j] {
			c := hist[j][b]
			if !found && cum+c > rank {
				w.lo, w.before, found = uint32(b), cum, true
			}
			if found && cum+c > min(rank+1, n-1) {
				w.hi = uint32(b)
				break
			}
			cum += c
		}
	}
	if err := pass(func(j int, v float32) {
		w := &wants[j]
		if b := math.Float32bits(v) >> 16; b >= w.lo && b <= w.hi {
			w.collect = append(w.collect, v)
		}
	}); err != nil {
		return nil, err
	}
	for j := range scales {
		if scales[j].Positive == 0 {
			continue
		}
		w := &wants[j]
		slices.Sort(w.collect)
		rank := int64(math.Floor(w.h)) - w.before
		a := float64(w.collect[rank])
		b := a
		if rank+1 < int64(len(w.collect)) {
			b = float64(w.collect[rank+1])
		}
		scales[j].Lambda = lerp(a, b, w.fraction)
	}
	return scales, nil
}

// lerp interpolates as numpy does, exact at both ends.
func lerp(a, b, t float64) float64 {
	if t >= 0.5 {
		return b - (b-a)*(1-t)
	}
	return a + (b-a)*t
}

// Options of a conversion (Convert).
type Options struct {
	// Percentile of each layer's positive activations that fires at
	// every step, in (0, 100] (DefaultPercentile is robust).
	Percentile float64
	// Images is the number of training images calibrated on, from the
	// first (0: all); Batch the images per forward pass.
	Images, Batch int
	// SNN is the setting the converted SNN runs with: θ = v_th − v_reset
	// enters the scales.
	SNN spiking.Config
}

// Check refuses, before any work, options Convert cannot take: a batch
// outside 1 to recipe.MaxBatchSize, a negative number of images, an SNN
// setting spiking.Config.Validate refuses, a percentile CheckPercentile
// refuses. An error names the setting as convert-snn's flags do
// (setting.Error).
func (o Options) Check() error {
	if err := recipe.CheckBatchSize("batch-size", o.Batch); err != nil {
		return err
	}
	if o.Images < 0 {
		return setting.Errorf("%s must not be negative (0: all), got %d", setting.Name("calib-images"), o.Images)
	}
	if err := o.SNN.Validate(); err != nil {
		return err
	}
	return CheckPercentile(o.Percentile)
}

// Result says what a conversion did.
type Result struct {
	// Scales are the neuron layers' scales, after Normalize.
	Scales []Scale
	// Inserted names the scaling layers put before joins.
	Inserted []string
	// Images is the number of images calibrated on.
	Images int
}

// Convert calibrates ann on d (Calibrate) and normalises it (Normalize)
// for the SNN setting o.SNN: Rueckauer et al.'s robust normalisation.
func Convert(ctx context.Context, be compute.Backend, ann *nn.Network, d *data.Dataset, o Options) (Result, error) {
	if ctx == nil || be == nil || ann == nil || d == nil {
		return Result{}, fmt.Errorf("conversion: the context, backend, network and data set are required (nil)")
	}
	if err := o.SNN.Validate(); err != nil {
		return Result{}, err
	}
	r := Result{Images: o.Images}
	if r.Images < 1 || r.Images > d.N {
		r.Images = d.N
	}
	scales, err := Calibrate(ctx, be, ann, d, r.Images, o.Batch, o.Percentile)
	if err != nil {
		return r, fmt.Errorf("calibration: %w", err)
	}
	if r.Inserted, err = Normalize(ann, scales, o.SNN); err != nil {
		return r, err
	}
	r.Scales = scales
	return r, nil
}

// Notes describe the conversion of source on dataset's training images
// at percentile, for a checkpoint's notes.
func (r Result) Notes(source, dataset string, percentile float64) map[string]string {
	scales, _ := json.Marshal(r.Scales)
	notes := map[string]string{
		"converted_from": filepath.Base(source),
		"conversion": fmt.Sprintf("Rueckauer et al. 2017 robust normalisation, %gth percentile of positive activations on %d %s training images",
			percentile, r.Images, dataset),
		"scales": string(scales),
	}
	if len(r.Inserted) > 0 {
		notes["shortcut_scaling"] = strings.Join(r.Inserted, ", ")
	}
	return notes
}

// WriteText writes the conversion as a table: each IF layer's λ, its
// activations' maximum and count of positive values, then the scaling
// layers inserted; source and dataset name the model and the data.
func (r Result) WriteText(w io.Writer, source, dataset string, percentile float64) error {
	if w == nil {
		return fmt.Errorf("conversion of %s: no writer to write the text to (nil)", source)
	}
	fmt.Fprintf(w, "%s: %gth percentile of positive activations on %d %s training images\n", source, percentile, r.Images, dataset)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "IF layer\tλ\tmax\tpositive values\t")
	for _, sc := range r.Scales {
		fmt.Fprintf(tw, "%s\t%.4g\t%.4g\t%d\t\n", sc.Layer, sc.Lambda, sc.Max, sc.Positive)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Inserted) > 0 {
		_, err := fmt.Fprintf(w, "shortcut normalisation: %d scaling layer(s) inserted before joins: %s\n", len(r.Inserted), strings.Join(r.Inserted, ", "))
		return err
	}
	return nil
}

// Checkpoint is the converted ann as a checkpoint with the settings s (the
// SNN's among them), without optimizer state: its SNN keeps the ANN's
// BatchNorm statistics, and its notes say how it was converted (Notes).
func (r Result) Checkpoint(ann *nn.Network, s recipe.Settings, source, dataset string, percentile float64) (*checkpoint.Checkpoint, error) {
	snn, err := spiking.New(ann, s.Config)
	if err != nil {
		return nil, err
	}
	ck := checkpoint.New(ann, snn, s)
	ck.Notes = r.Notes(source, dataset, percentile)
	return ck, nil
}
