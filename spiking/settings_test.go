package spiking_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/spiking"
)

// TestSettingsCoverConfig: Settings has one entry for each field of
// Config, each pointing at its own field, so that Fill, the recorded
// settings (recipe.Settings.Fields) and a program's flags cover a new
// part once it has its entry; Set reads what Text prints; Text prints
// the clip twin in use.
func TestSettingsCoverConfig(t *testing.T) {
	var c spiking.Config
	fields := map[uintptr]string{}
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i < v.NumField(); i++ {
		fields[v.Field(i).Addr().Pointer()] = v.Type().Field(i).Name
	}
	seen := map[string]bool{}
	for _, s := range spiking.Settings() {
		name, ok := fields[reflect.ValueOf(s.Field(&c)).Pointer()]
		if !ok || seen[name] {
			t.Errorf("setting %s points at no field of Config, or at one another setting has (%q)", s.Name, name)
		}
		seen[name] = true
		if s.Usage == "" {
			t.Errorf("setting %s: no usage", s.Name)
		}
	}
	if len(seen) != v.NumField() {
		t.Errorf("Settings covers %d of Config's %d fields: %v", len(seen), v.NumField(), seen)
	}
	// Set reads back what Text prints, and refuses text of another type
	want := spiking.Config{Timesteps: 0x1f, Threshold: 1.1, Reset: -0.3, Clip: spiking.ClipSaturate, InitialCharge: 0.1}
	var got spiking.Config
	for _, s := range spiking.Settings() {
		if err := s.Set(&got, s.Text(want)); err != nil {
			t.Errorf("setting %s: Set(%q): %v", s.Name, s.Text(want), err)
		}
		if s.Type != "string" && s.Set(&got, "two") == nil {
			t.Errorf("setting %s (%s): Set(\"two\") gives no error", s.Name, s.Type)
		}
		if s.Name == "clip-twin" && s.Text(spiking.Config{}) != string(spiking.DefaultClip) {
			t.Errorf("an unset clip twin prints as %q, want the default %q", s.Text(spiking.Config{}), spiking.DefaultClip)
		}
	}
	if got != want {
		t.Errorf("Set of each setting's Text: %+v, want %+v", got, want)
	}
}

// TestStartBelowThreshold: an initial charge below 1 whose start float32
// rounds up to v_th (v_reset far from 0, v_th − v_reset small) is refused
// by New, naming the layer; the same charge near 0 is taken.
func TestStartBelowThreshold(t *testing.T) {
	m, err := model.Load(testutil.Path("zoo/relu6net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	far := spiking.Config{Timesteps: 4, Reset: 1e6, Threshold: 1e6 + 1, InitialCharge: 0.99}
	if _, err := spiking.New(m.ANN, far); err == nil || !strings.Contains(err.Error(), `IF layer "act1": initial charge 0.99 starts it at 1.000001e+06`) {
		t.Errorf("v_reset 1e6, v_th 1e6+1, charge 0.99: %v, want a refusal naming the first IF layer", err)
	}
	if _, err := spiking.New(m.ANN, spiking.Config{Timesteps: 4, Threshold: 1, InitialCharge: 0.99}); err != nil {
		t.Errorf("v_reset 0, v_th 1, charge 0.99: %v", err)
	}
}
