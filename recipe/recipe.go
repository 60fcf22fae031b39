// Package recipe holds a training run's settings — data set, epochs,
// batch size, Adam's hyper-parameters, the SNN's T, v_th and v_reset,
// BatchNorm's schedule, seed, the method (proxy learning or surrogate
// gradients) — with the reference notebook's recipe as the default, and
// their checks.
package recipe

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// Settings are a training run's hyper-parameters. The defaults are the
// reference's (docs/design.md §1). Checkpoints record them as JSON.
type Settings struct {
	Dataset     string  `json:"dataset"`
	Epochs      int     `json:"epochs"`
	BatchSize   int     `json:"batch_size"`
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	// Config is the SNN's setting: T, v_th and v_reset.
	spiking.Config
	FreezeBNAfter int    `json:"freeze_bn_after"`
	Seed          uint64 `json:"seed"`
	Shuffle       bool   `json:"shuffle"`
	Augment       bool   `json:"augment"`
	MaxTrain      int    `json:"max_train"`
	MaxTest       int    `json:"max_test"`
	// BNStats is where a data-parallel run takes BatchNorm's statistics in
	// training mode: BNSync ("" means it) or BNRank. One process is the
	// same either way; checkpoints record it so that a resumed run keeps
	// it.
	BNStats string `json:"bn_stats"`
	// Method is how the run trains: MethodProxy (proxy learning, the
	// default; a checkpoint that names no method is a proxy run) or
	// MethodSurrogate (surrogate gradients through time, with the setting
	// in Surrogate).
	Method    string     `json:"method,omitempty"`
	Surrogate *Surrogate `json:"surrogate,omitempty"`
}

// BatchNorm statistics of a data-parallel run in training mode
// (Settings.BNStats; package distributed runs them).
const (
	// BNSync normalises with the statistics of the global batch, summed
	// across ranks: the run is the one-process run, whatever the number of
	// ranks (the default: the reference recipe's statistics are those of
	// its batch of 100).
	BNSync = "sync"
	// BNRank normalises with each rank's share of the batch (PyTorch
	// DDP's default); the running statistics kept are rank 0's, as DDP's
	// broadcast of buffers makes them.
	BNRank = "rank"
)

// BatchNormStats is s.BNStats with "" read as BNSync.
func (s Settings) BatchNormStats() string {
	if s.BNStats == "" {
		return BNSync
	}
	return s.BNStats
}

// The training methods (Settings.Method).
const (
	// MethodProxy is proxy learning: the SNN's counts in place of the
	// ANN's output, backpropagation through the ANN (docs/design.md §1).
	MethodProxy = "proxy"
	// MethodSurrogate is surrogate-gradient training: backpropagation
	// through the SNN's time steps, the spike's derivative replaced by a
	// surrogate (docs/design.md §1).
	MethodSurrogate = "surrogate"
)

// Surrogate is a surrogate-gradient run's setting (docs/design.md §1).
type Surrogate struct {
	// Function is the surrogate function: "sigmoid", SpikingJelly's
	// surrogate.Sigmoid, the only one.
	Function string `json:"function"`
	// Alpha is its sharpness: the derivative α·σ(αx)·(1 − σ(αx)).
	Alpha float64 `json:"alpha"`
	// DetachReset leaves the reset's dependence on the spike out of the
	// gradient.
	DetachReset bool `json:"detach_reset"`
}

// DefaultSurrogate is SpikingJelly's IFNode's: the sigmoid with α = 4, the
// reset not detached.
func DefaultSurrogate() Surrogate { return Surrogate{Function: "sigmoid", Alpha: 4} }

// TrainingMethod is s's method, MethodProxy where none is named.
func (s Settings) TrainingMethod() string {
	if s.Method == "" {
		return MethodProxy
	}
	return s.Method
}

// Default is the reference notebook's recipe.
func Default() Settings {
	return Settings{Dataset: data.FashionMNIST, Epochs: 100, BatchSize: 100, LR: 1e-4, Beta1: 0.8, Beta2: 0.99, Eps: 1e-8,
		WeightDecay: 1e-6, Config: spiking.DefaultConfig(), FreezeBNAfter: 1, Seed: 2020, Shuffle: true, Augment: true, BNStats: BNSync,
		Method: MethodProxy}
}

// MaxBatchSize bounds a batch: 2^16 images (memory is checked too, when
// the buffers are planned).
const MaxBatchSize = 1 << 16

// CheckBatchSize refuses a batch of n images, the setting named name
// ("batch-size", say), outside 1 to MaxBatchSize.
func CheckBatchSize(name setting.Name, n int) error {
	if n < 1 || n > MaxBatchSize {
		return setting.Errorf("%s must lie between 1 and %d, got %d", name, MaxBatchSize, n)
	}
	return nil
}

// ValidateExceptSNN is Validate of every setting but the SNN's (Config),
// which a model file may still supply: what a command can check before
// it reads the model.
func (s Settings) ValidateExceptSNN() error {
	s.Config = spiking.DefaultConfig()
	return s.Validate()
}

// Validate checks the settings; an error names a setting as Fields does
// (setting.Error).
func (s Settings) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if s.Epochs < 0 {
		return fmt.Errorf("epochs must not be negative")
	}
	if err := CheckBatchSize("batch-size", s.BatchSize); err != nil {
		return err
	}
	switch {
	case !(s.LR > 0) || !finite(s.LR):
		return fmt.Errorf("learning rate must be positive and finite, got %g", s.LR)
	case !(s.Beta1 >= 0 && s.Beta1 < 1 && s.Beta2 >= 0 && s.Beta2 < 1):
		return fmt.Errorf("betas must lie in [0, 1), got %g, %g", s.Beta1, s.Beta2)
	case !(s.Eps >= 0) || !finite(s.Eps):
		return fmt.Errorf("eps must be finite and not negative, got %g", s.Eps)
	case !(s.WeightDecay >= 0) || !finite(s.WeightDecay):
		return fmt.Errorf("weight decay must be finite and not negative, got %g", s.WeightDecay)
	case s.FreezeBNAfter < 0:
		return fmt.Errorf("freeze-bn-after must not be negative")
	case s.MaxTrain < 0:
		return setting.Errorf("%s must not be negative (0: all), got %d", setting.Name("max-train"), s.MaxTrain)
	case s.MaxTest < 0:
		return setting.Errorf("%s must not be negative (0: all), got %d", setting.Name("max-test"), s.MaxTest)
	case s.BNStats != "" && s.BNStats != BNSync && s.BNStats != BNRank:
		return fmt.Errorf("BatchNorm statistics %q: want %s (the global batch's) or %s (each rank's share)", s.BNStats, BNSync, BNRank)
	}
	if err := s.validateMethod(); err != nil {
		return err
	}
	return s.Config.Validate()
}

// validateMethod checks the method and its surrogate's setting.
func (s Settings) validateMethod() error {
	g := s.Surrogate
	switch s.TrainingMethod() {
	case MethodProxy:
		if g != nil {
			return setting.Errorf("a surrogate gradient is set for %s %s; it applies to %s %s", setting.Name("method"), MethodProxy,
				setting.Name("method"), MethodSurrogate)
		}
		return nil
	case MethodSurrogate:
	default:
		return setting.Errorf("%s %q: want %s or %s", setting.Name("method"), s.Method, MethodProxy, MethodSurrogate)
	}
	switch {
	case g == nil:
		return setting.Errorf("%s %s needs its surrogate gradient's setting", setting.Name("method"), MethodSurrogate)
	case g.Function != "sigmoid":
		return fmt.Errorf("surrogate function %q: proxykit has the sigmoid (\"sigmoid\") only", g.Function)
	case !(g.Alpha > 0) || math.IsInf(g.Alpha, 0) || g.Alpha > math.MaxFloat32:
		return setting.Errorf("%s must be positive and finite, got %g", setting.Name("surrogate-alpha"), g.Alpha)
	}
	return nil
}

// Betas is Adam's betas as the betas field takes them: "b1,b2" (Fields,
// SetBetas).
func (s Settings) Betas() string { return fmt.Sprintf("%g,%g", s.Beta1, s.Beta2) }

// SetBetas sets Adam's betas from text as Betas writes them, "b1,b2"
// (spaces around each number allowed); it refuses other text, naming the
// setting (setting.Error), and leaves s as it was. Validate checks their
// range.
func (s *Settings) SetBetas(text string) error {
	parts := strings.Split(text, ",")
	if len(parts) == 2 {
		b1, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		b2, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err1 == nil && err2 == nil {
			s.Beta1, s.Beta2 = b1, b2
			return nil
		}
	}
	return setting.Errorf("%s %q: want two numbers, e.g. 0.8,0.99", setting.Name("betas"), text)
}

// Field is one setting as train's command-line flag names and prints it.
type Field struct{ Flag, Value string }

// Fields lists the settings, each under its flag, printed as the flag
// takes it (betas as "b1,b2"; --no-shuffle and --no-augment the negations;
// the surrogate's, "none" for proxy learning).
func (s Settings) Fields() []Field {
	v := fmt.Sprint
	alpha, detach := "none", "none" // proxy learning has no surrogate
	if g := s.Surrogate; g != nil {
		alpha, detach = v(g.Alpha), v(g.DetachReset)
	}
	f := []Field{{"dataset", s.Dataset}, {"epochs", v(s.Epochs)}, {"batch-size", v(s.BatchSize)}, {"lr", v(s.LR)},
		{"betas", s.Betas()}, {"eps", v(s.Eps)}, {"weight-decay", v(s.WeightDecay)}}
	for _, snn := range spiking.Settings() { // T, v_th, v_reset ... by their names
		f = append(f, Field{string(snn.Name), snn.Text(s.Config)})
	}
	return append(f, Field{"freeze-bn-after", v(s.FreezeBNAfter)}, Field{"seed", v(s.Seed)}, Field{"no-shuffle", v(!s.Shuffle)},
		Field{"no-augment", v(!s.Augment)}, Field{"max-train", v(s.MaxTrain)}, Field{"max-test", v(s.MaxTest)}, Field{"bn-stats", s.BatchNormStats()},
		Field{"method", s.TrainingMethod()}, Field{"surrogate-alpha", alpha}, Field{"detach-reset", detach})
}
