package model_test

import (
	"strings"
	"testing"
	"time"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/spiking"
)

// loadWithin loads path, failing the test if that takes longer than d (a
// hang) instead of returning.
func loadWithin(t *testing.T, path string, d time.Duration) (*model.Model, error) {
	t.Helper()
	type result struct {
		m   *model.Model
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := model.Load(path)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-time.After(d):
		t.Fatalf("loading %s did not return within %v", path, d)
		return nil, nil
	}
}

// TestHostilePyTorchModules loads modules whose attributes PyTorch would
// refuse (testdata/hostile, scripts/make_hostile_fixtures.py): each must
// be refused with an error naming the layer and what is wrong — never a
// panic, a hang or a network that runs.
func TestHostilePyTorchModules(t *testing.T) {
	for file, want := range map[string][]string{
		"conv_stride0.pt":     {`"0"`, "stride must be at least 1"},
		"maxpool_stride0.pt":  {`"3"`, "stride must be at least 1"},
		"avgpool_stride0.pt":  {`"3"`, "stride must be at least 1"},
		"conv_dilation0.pt":   {`"0"`, "dilation must be at least 1"},
		"conv_padding_neg.pt": {`"0"`, "padding must not be negative"},
		"pool_kernel0.pt":     {`"3"`, "kernel size must be at least 1"},
		"bn_eps_neg.pt":       {`"1"`, "eps must be positive"},
		"linear_1d.pt":        {`"5"`, "weight must be 2-D"},
		"conv_2d_weight.pt":   {`"0"`, "weight must be 4-D"},
		"nan_weight.pt":       {"5.weight", "NaN", "finite"},
		"self_module.pt":      {"contains itself"},
		"snn_T_0.pt":          {"T = 0"},
		"snn_T_neg1.pt":       {"T = -1"},
		"snn_T_2.5.pt":        {"T = 2.5"},
		"snn_T_x.pt":          {"T = x"},
		"snn_T_2e40.pt":       {"T = 1099511627776"},
	} {
		path := testutil.Path("hostile/" + file)
		_, err := loadWithin(t, path, 20*time.Second)
		if err == nil {
			t.Errorf("%s: loaded without error", file)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", file, err, w)
			}
		}
	}
}

// TestTimestepsCapped checks that no SNN of more than spiking.MaxTimesteps
// steps can be set up.
func TestTimestepsCapped(t *testing.T) {
	m, err := model.Load(testutil.Path("fmnist_w8_bn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, T := range []int{0, -1, spiking.MaxTimesteps + 1, 1 << 40} {
		if _, err := m.SNN(spiking.Config{Timesteps: T, Threshold: 1}); err == nil || !strings.Contains(err.Error(), "timesteps must lie between 1 and") {
			t.Errorf("T=%d: %v", T, err)
		}
	}
}
