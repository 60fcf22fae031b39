package recipe_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
)

// TestCheckBatchSize: the bounds are 1 and MaxBatchSize, both taken, and
// the refusal names the setting it was given (a command spells it as its
// flag), as Validate's does for the run's batch.
func TestCheckBatchSize(t *testing.T) {
	for _, n := range []int{1, 100, recipe.MaxBatchSize} {
		if err := recipe.CheckBatchSize("batch-size", n); err != nil {
			t.Errorf("batch of %d refused: %v", n, err)
		}
	}
	for _, n := range []int{0, -1, recipe.MaxBatchSize + 1} {
		err := recipe.CheckBatchSize("infer-batch-size", n)
		var se *setting.Error
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "infer-batch-size must lie between 1 and 65536") {
			t.Errorf("batch of %d: %v, want a setting.Error naming infer-batch-size", n, err)
		}
	}
	s := recipe.Default()
	s.BatchSize = 0
	if got, want := s.Validate(), recipe.CheckBatchSize("batch-size", 0); got == nil || got.Error() != want.Error() {
		t.Errorf("Validate of batch 0: %v, want %v", got, want)
	}
}

// TestValidateExceptSNN: an SNN setting a model file would replace is not
// judged, every other setting is, as Validate judges it.
func TestValidateExceptSNN(t *testing.T) {
	s := recipe.Default()
	s.Timesteps, s.Threshold, s.Reset = 0, 0, 1 // not a valid SNN
	if err := s.Validate(); err == nil {
		t.Fatal("Validate takes T = 0 and v_th below v_reset")
	}
	if err := s.ValidateExceptSNN(); err != nil {
		t.Errorf("ValidateExceptSNN judged the SNN's setting: %v", err)
	}
	s.MaxTest = -1
	got, want := s.ValidateExceptSNN(), "max-test must not be negative (0: all), got -1"
	if got == nil || got.Error() != want {
		t.Errorf("ValidateExceptSNN with max-test -1: %v, want %q", got, want)
	}
}

// TestBetas: SetBetas reads what Betas writes (and Fields prints) back to
// the same numbers, strconv's reading of each; it refuses text that is not
// two numbers, naming the setting, and leaves the betas as they were.
func TestBetas(t *testing.T) {
	for _, c := range []struct {
		text   string
		b1, b2 float64
	}{{"0.8,0.99", 0.8, 0.99}, {" 0.9 , 0.999 ", 0.9, 0.999}, {"0,1e-3", 0, 0.001}, {"1.5,-2", 1.5, -2}} {
		s := recipe.Default()
		if err := s.SetBetas(c.text); err != nil || s.Beta1 != c.b1 || s.Beta2 != c.b2 {
			t.Errorf("SetBetas(%q): %g, %g, %v; want %g, %g", c.text, s.Beta1, s.Beta2, err, c.b1, c.b2)
		}
		back := recipe.Default()
		if err := back.SetBetas(s.Betas()); err != nil || back.Beta1 != s.Beta1 || back.Beta2 != s.Beta2 {
			t.Errorf("SetBetas(Betas() = %q): %g, %g, %v; want %g, %g", s.Betas(), back.Beta1, back.Beta2, err, s.Beta1, s.Beta2)
		}
		for _, f := range s.Fields() {
			if f.Flag == "betas" && f.Value != s.Betas() {
				t.Errorf("Fields prints betas %q, Betas %q", f.Value, s.Betas())
			}
		}
	}
	for _, text := range []string{"", "x", "0.8", "0.8,", "0.8,0.99,0.9", "0.8;0.99", "a,b"} {
		s := recipe.Default()
		err := s.SetBetas(text)
		var se *setting.Error
		if want := "betas " + strconv.Quote(text) + ": want two numbers, e.g. 0.8,0.99"; !errors.As(err, &se) || err.Error() != want {
			t.Errorf("SetBetas(%q): %v, want a setting.Error %q", text, err, want)
		}
		if d := recipe.Default(); s.Beta1 != d.Beta1 || s.Beta2 != d.Beta2 {
			t.Errorf("SetBetas(%q) refused but changed the betas to %g, %g", text, s.Beta1, s.Beta2)
		}
	}
}
