package setting_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/proxykit/proxykit/setting"
)

// TestSpell: an Error prints its settings as their Names, or as a program
// spells them, wherever they appear in the text, and wraps what %w wraps.
func TestSpell(t *testing.T) {
	driver := errors.New("libcuda.so.1 not found")
	err := setting.Errorf("%s cuda: %w; %[1]s cuda-emu runs on the CPU (%[3]s)", setting.Device, driver, setting.DataDir)
	if got, want := err.Error(), "device cuda: libcuda.so.1 not found; device cuda-emu runs on the CPU (data folder)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	flags := func(n setting.Name) string { return map[setting.Name]string{setting.Device: "--device"}[n] }
	if got, want := err.Spell(flags), "--device cuda: libcuda.so.1 not found; --device cuda-emu runs on the CPU ()"; got != want {
		t.Errorf("Spell = %q, want %q", got, want)
	}
	if !errors.Is(err, driver) {
		t.Error("the Error does not wrap what %w wrapped")
	}
	var se *setting.Error
	if !errors.As(fmt.Errorf("rank 1: %w", err), &se) || se != err {
		t.Error("errors.As does not find the Error under another error")
	}
	if errors.Unwrap(setting.Errorf("%s: required", setting.DataDir)) != nil {
		t.Error("an Error without %w wraps something")
	}
}
