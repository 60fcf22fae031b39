package spiking

import (
	"fmt"
	"math"
	"strconv"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/setting"
)

// Config holds the IF neurons' settings and the simulation length. A new
// part has its entry in Settings too.
type Config struct {
	Timesteps int     `json:"timesteps"` // T, the number of time steps
	Threshold float32 `json:"threshold"` // v_th: a neuron spikes when v >= v_th
	Reset     float32 `json:"reset"`     // v_reset: hard-reset value of v
	// InitialCharge is where every IF neuron starts, as the fraction of
	// the way from v_reset to its v_th: v(0) = v_reset + InitialCharge·(v_th −
	// v_reset), in [0, 1). 0, the paper's, starts at v_reset; 0.5 halfway,
	// as Bu et al. (ICLR 2022) start converted SNNs for short T
	// (docs/design.md §1, "Initial charge").
	InitialCharge float32 `json:"initial_charge,omitempty"`
	// Clip is the IF twin of a clipped ReLU (ReLU6, Clip(0, c)); empty
	// means DefaultClip (docs/design.md §1, "ReLU6").
	Clip ClipTwin `json:"clip,omitempty"`
}

// ClipTwin says what a clipped ReLU min(max(x, 0), c) becomes in the SNN.
type ClipTwin string

// The two IF twins of a clipped ReLU. An IF neuron's rate saturates at
// one spike per step; ClipSaturate maps the ceiling c to that saturation
// (the layer's v_th is v_reset + c, so that a constant current of c or
// more fires at every step), ClipAsReLU ignores the ceiling (an IF layer
// as for a ReLU, v_th as set).
const (
	ClipSaturate ClipTwin = "saturate"
	ClipAsReLU   ClipTwin = "relu"
)

// DefaultClip is the twin a Config without one uses: the one of the two
// that converted a ReLU6 network better against T, on MNIST and
// Fashion-MNIST (docs/results.md, "ReLU6").
const DefaultClip = ClipAsReLU

// ClipTwins lists the twins, the default first.
func ClipTwins() []ClipTwin { return []ClipTwin{DefaultClip, other(DefaultClip)} }

func other(t ClipTwin) ClipTwin {
	if t == ClipSaturate {
		return ClipAsReLU
	}
	return ClipSaturate
}

// ClipTwin is the twin the setting uses (DefaultClip where unset).
func (c Config) ClipTwin() ClipTwin {
	if c.Clip == "" {
		return DefaultClip
	}
	return c.Clip
}

// NeuronThreshold is the v_th of the IF layer that replaces neuron layer
// l (a ReLU, a Clip, or the output layer's stand-in): v_reset plus l's
// ceiling for a clipped ReLU with ClipSaturate, else Threshold.
func (c Config) NeuronThreshold(l nn.Layer) float32 {
	if s, ok := l.(nn.Saturating); ok && c.ClipTwin() == ClipSaturate {
		return c.Reset + s.Saturation()
	}
	return c.Threshold
}

// DefaultConfig is the reference's setting: T = 15, v_th = 2, v_reset = 0.
func DefaultConfig() Config { return Config{Timesteps: 15, Threshold: 2, Reset: 0} }

// MaxTimesteps bounds a simulation's length: 2^20 steps. A million steps
// of even the smallest network take hours; a larger T is a typo or a
// hostile file.
const MaxTimesteps = 1 << 20

// Validate checks the settings.
func (c Config) Validate() error {
	if c.Timesteps < 1 || c.Timesteps > MaxTimesteps {
		return fmt.Errorf("timesteps must lie between 1 and %d, got %d", MaxTimesteps, c.Timesteps)
	}
	if math.IsNaN(float64(c.Threshold)) || math.IsInf(float64(c.Threshold), 0) || math.IsNaN(float64(c.Reset)) || math.IsInf(float64(c.Reset), 0) {
		return fmt.Errorf("threshold (%g) and reset (%g) must be finite", c.Threshold, c.Reset)
	}
	if !(c.Threshold > c.Reset) {
		return fmt.Errorf("threshold (%g) must be above the reset potential (%g)", c.Threshold, c.Reset)
	}
	if d := c.Threshold - c.Reset; math.IsInf(float64(d), 0) {
		return fmt.Errorf("threshold (%g) and reset (%g) are too far apart: v_th − v_reset is not a finite float32", c.Threshold, c.Reset)
	}
	if c.Clip != "" && c.Clip != ClipSaturate && c.Clip != ClipAsReLU {
		return fmt.Errorf("the clip twin must be %q or %q, got %q", ClipSaturate, ClipAsReLU, c.Clip)
	}
	if !(c.InitialCharge >= 0 && c.InitialCharge < 1) {
		return fmt.Errorf("the initial charge must be a fraction of v_th − v_reset in [0, 1), got %g (0: start at v_reset; 1 or more fires before any input)", c.InitialCharge)
	}
	return nil
}

// InitialCharge names Config.InitialCharge in errors (setting.Error).
const InitialCharge setting.Name = "initial-charge"

// CheckGiven checks the parts of c that were given — given says which, by
// setting name: "timesteps", "threshold", "reset", "clip-twin", InitialCharge — before
// the others are known (a model file may supply them; Validate checks the
// whole once it is made): a T out of range, a clip twin other than
// ClipAsReLU and ClipSaturate, an initial charge outside [0, 1), a v_th or v_reset that is not finite and,
// when both are given, a v_th not above v_reset. An error names a setting
// by that name (setting.Error).
func (c Config) CheckGiven(given func(setting.Name) bool) error {
	probe := DefaultConfig() // valid: each part given replaces its own
	if given("timesteps") {
		probe.Timesteps = c.Timesteps
	}
	if err := probe.Validate(); err != nil {
		return err
	}
	if given(InitialCharge) {
		if probe.InitialCharge = c.InitialCharge; probe.Validate() != nil {
			return setting.Errorf("%s %g: want a fraction of v_th − v_reset in [0, 1)", InitialCharge, c.InitialCharge)
		}
	}
	if given("clip-twin") {
		if probe.Clip = c.Clip; probe.Validate() != nil {
			return setting.Errorf("%s %q: want %s or %s", setting.Name("clip-twin"), c.Clip, ClipAsReLU, ClipSaturate)
		}
	}
	if given("threshold") && given("reset") {
		probe.Threshold, probe.Reset = c.Threshold, c.Reset
		return probe.Validate()
	}
	for _, v := range []struct {
		name  setting.Name
		value float32
	}{{"threshold", c.Threshold}, {"reset", c.Reset}} {
		if given(v.name) && (math.IsNaN(float64(v.value)) || math.IsInf(float64(v.value), 0)) {
			return setting.Errorf("%s %g: it must be finite", v.name, v.value)
		}
	}
	return nil
}

// Setting is one part of Config as a program sets it by name — a
// command-line flag, a field of a settings file. Settings lists them all,
// so that Fill, recipe.Settings.Fields and a program's flags follow
// Config without a list of their own.
type Setting struct {
	// Name names the part (CheckGiven's and Fill's given, setting.Error).
	Name setting.Name
	// Usage says what it is, in words.
	Usage string
	// Type names its value's type as Set reads it: int, float32 or string.
	Type string

	field func(*Config) any // a pointer to the part
	copy  func(dst, src *Config)
	text  func(Config) string
	set   func(*Config, string) error
}

// part is the Setting of the part of Config that f points to, of type
// typ, read from text by parse.
func part[T any](name setting.Name, typ, usage string, f func(*Config) *T, parse func(string) (T, error)) Setting {
	return Setting{Name: name, Usage: usage, Type: typ,
		field: func(c *Config) any { return f(c) },
		copy:  func(dst, src *Config) { *f(dst) = *f(src) },
		text:  func(c Config) string { return fmt.Sprint(*f(&c)) },
		set: func(c *Config, text string) error {
			v, err := parse(text)
			if err == nil {
				*f(c) = v
			}
			return err
		}}
}

// The parsers of Settings' types: strconv's, as Go's flag packages read
// them (an int in any base Go writes, a float32 rounded from its text).
func parseInt(t string) (int, error) {
	v, err := strconv.ParseInt(t, 0, strconv.IntSize)
	return int(v), err
}

func parseFloat32(t string) (float32, error) {
	v, err := strconv.ParseFloat(t, 32)
	return float32(v), err
}

// Settings lists Config's parts in order: T, v_th, v_reset, the clip
// twin, the initial charge. (A part's checks are Validate's and, before a
// model file is read, CheckGiven's.)
func Settings() []Setting {
	clip := part("clip-twin", "string", fmt.Sprintf("what a clipped ReLU (ReLU6, Clip(0, c)) becomes: %s (an IF layer as for a ReLU, the ceiling ignored) "+
		"or %s (its v_th tied to v_reset + c: one spike per step stands for the ceiling); docs/design.md §1", ClipAsReLU, ClipSaturate),
		func(c *Config) *ClipTwin { return &c.Clip }, func(t string) (ClipTwin, error) { return ClipTwin(t), nil })
	clip.text = func(c Config) string { return string(c.ClipTwin()) } // the twin used, DefaultClip where unset
	return []Setting{
		part("timesteps", "int", "number of time steps T", func(c *Config) *int { return &c.Timesteps }, parseInt),
		part("threshold", "float32", "firing threshold v_th (spike when v >= v_th)", func(c *Config) *float32 { return &c.Threshold }, parseFloat32),
		part("reset", "float32", "reset potential v_reset", func(c *Config) *float32 { return &c.Reset }, parseFloat32),
		clip,
		part(InitialCharge, "float32", "where every IF neuron starts, as the fraction of the way from v_reset to its v_th "+
			"(0.5: halfway, Bu et al. 2022's start for short T; it helped fine-tuning at T = 4 and converted SNNs at T ≤ 4, not training from scratch: docs/results.md); docs/design.md §1", func(c *Config) *float32 { return &c.InitialCharge }, parseFloat32),
	}
}

// Field is a pointer to the part of c the setting names (*int, *float32
// or *ClipTwin).
func (s Setting) Field(c *Config) any { return s.field(c) }

// Text is the setting's value in c as text (fmt.Sprint's; the clip twin
// c uses, DefaultClip where unset).
func (s Setting) Text(c Config) string { return s.text(c) }

// Set sets the setting's part of c from text, read as its Type (strconv's
// error where it does not parse; the value is checked by CheckGiven and
// Validate, not here).
func (s Setting) Set(c *Config, text string) error { return s.set(c, text) }

// Fill is c with each part that was not given — given says which, by
// setting name, as for CheckGiven — taken from own: a model file's
// setting (a checkpoint's, an SNN module's) under the parts a user gave.
func (c Config) Fill(own Config, given func(setting.Name) bool) Config {
	for _, s := range Settings() {
		if !given(s.Name) {
			s.copy(&c, &own)
		}
	}
	return c
}
