package recipe_test

import (
	"errors"
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
