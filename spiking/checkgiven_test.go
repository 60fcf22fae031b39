package spiking_test

import (
	"errors"
	"math"
	"testing"

	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// TestCheckGiven: a part not given is not judged (a model file may
// replace it); a part given is, alone or, for v_th and v_reset, together;
// a refusal of a clip twin or of a value that is not finite names its
// setting (setting.Error).
func TestCheckGiven(t *testing.T) {
	bad := spiking.Config{Timesteps: 0, Threshold: float32(math.NaN()), Reset: 5, Clip: "round"}
	given := func(names ...setting.Name) func(setting.Name) bool {
		return func(n setting.Name) bool {
			for _, g := range names {
				if g == n {
					return true
				}
			}
			return false
		}
	}
	if err := bad.CheckGiven(given()); err != nil {
		t.Errorf("nothing given: %v", err)
	}
	for _, c := range []struct {
		cfg     spiking.Config
		given   []setting.Name
		want    string
		setting bool
	}{
		{bad, []setting.Name{"timesteps", "clip-twin"}, "timesteps must lie between 1 and 1048576, got 0", false},
		{bad, []setting.Name{"clip-twin"}, `clip-twin "round": want relu or saturate`, true},
		{bad, []setting.Name{"threshold"}, "threshold NaN: it must be finite", true},
		{bad, []setting.Name{"reset", "timesteps"}, "timesteps must lie between 1 and 1048576, got 0", false},
		{spiking.Config{Timesteps: 1, Threshold: 1, Reset: float32(math.Inf(-1))}, []setting.Name{"reset"}, "reset -Inf: it must be finite", true},
		{spiking.Config{Timesteps: 1, Threshold: 1, Reset: 5}, []setting.Name{"reset", "threshold"}, "threshold (1) must be above the reset potential (5)", false},
		{spiking.Config{InitialCharge: 1}, []setting.Name{spiking.InitialCharge}, "initial-charge 1: want a fraction of v_th − v_reset in [0, 1)", true},
		{spiking.Config{InitialCharge: -0.5}, []setting.Name{spiking.InitialCharge}, "initial-charge -0.5: want a fraction of v_th − v_reset in [0, 1)", true},
		{spiking.Config{InitialCharge: float32(math.NaN())}, []setting.Name{spiking.InitialCharge}, "initial-charge NaN: want a fraction of v_th − v_reset in [0, 1)", true},
	} {
		err := c.cfg.CheckGiven(given(c.given...))
		var se *setting.Error
		if err == nil || err.Error() != c.want || errors.As(err, &se) != c.setting {
			t.Errorf("%+v given %v: %v, want %q (a setting.Error: %v)", c.cfg, c.given, err, c.want, c.setting)
		}
	}
	ok := spiking.Config{Timesteps: 8, Threshold: 1, Reset: 5, Clip: spiking.ClipSaturate} // v_reset above v_th, but only v_reset given
	if err := ok.CheckGiven(given("timesteps", "reset", "clip-twin")); err != nil {
		t.Errorf("the parts given are valid: %v", err)
	}
}

// TestFill: each part not given comes from the model file's setting, each
// part given stays, whatever the others; nothing given is the file's
// setting, everything given the user's.
func TestFill(t *testing.T) {
	user := spiking.Config{Timesteps: 8, Threshold: 1.5, Reset: 0.5, Clip: spiking.ClipSaturate, InitialCharge: 0.25}
	own := spiking.Config{Timesteps: 30, Threshold: 2, Reset: -1, Clip: spiking.ClipAsReLU, InitialCharge: 0.5}
	names := []setting.Name{"timesteps", "threshold", "reset", "clip-twin", spiking.InitialCharge}
	for mask := 0; mask < 1<<len(names); mask++ {
		given := func(n setting.Name) bool {
			for i, g := range names {
				if g == n {
					return mask&(1<<i) != 0
				}
			}
			t.Fatalf("Fill asked about setting %q", n)
			return false
		}
		pick := func(i int, u, o any) any {
			if mask&(1<<i) != 0 {
				return u
			}
			return o
		}
		got := user.Fill(own, given)
		want := spiking.Config{Timesteps: pick(0, user.Timesteps, own.Timesteps).(int), Threshold: pick(1, user.Threshold, own.Threshold).(float32),
			Reset: pick(2, user.Reset, own.Reset).(float32), Clip: pick(3, user.Clip, own.Clip).(spiking.ClipTwin),
			InitialCharge: pick(4, user.InitialCharge, own.InitialCharge).(float32)}
		if got != want {
			t.Errorf("given %05b: %+v, want %+v", mask, got, want)
		}
	}
	if got := user.Fill(spiking.Config{}, func(setting.Name) bool { return false }); got != (spiking.Config{}) {
		t.Errorf("nothing given, a zero setting: %+v, want the zero setting (Validate judges it)", got)
	}
}
