package spiking_test

import (
	"reflect"
	"testing"

	"github.com/proxykit/proxykit/spiking"
)

// TestSettingsCoverConfig: Settings has one entry for each field of
// Config, each pointing at its own field, so that Fill, the recorded
// settings (recipe.Settings.Fields) and a program's flags cover a new
// part once it has its entry; Text prints the clip twin in use.
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
	for _, s := range spiking.Settings() {
		if s.Name == "clip-twin" && s.Text(spiking.Config{}) != string(spiking.DefaultClip) {
			t.Errorf("an unset clip twin prints as %q, want the default %q", s.Text(spiking.Config{}), spiking.DefaultClip)
		}
	}
}
