package checkpoint_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
)

// Write a network and the setting of its SNN as a checkpoint, and read it
// back: as a checkpoint (its settings and progress) and as a model, which
// every command and model.Load take.
func Example() {
	dir, _ := os.MkdirTemp("", "checkpoint")
	defer os.RemoveAll(dir)
	ann, err := nn.Tiny(1)
	if err != nil {
		log.Fatal(err)
	}
	s := recipe.Default()
	s.Timesteps, s.Threshold = 8, 1
	snn, err := spiking.New(ann, s.Config)
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "tiny.ckpt")
	if err := checkpoint.New(ann, snn, s).Save(path); err != nil {
		log.Fatal(err)
	}

	c, err := checkpoint.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("T =", c.Settings.Timesteps, "v_th =", c.Settings.Threshold, "epochs done:", c.Progress.Epoch)
	m, err := model.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	cfg, _ := m.SNNDefaults()
	fmt.Println(m.Format, "T =", cfg.Timesteps, "v_th =", cfg.Threshold, "v_reset =", cfg.Reset)
	// Output:
	// T = 8 v_th = 1 epochs done: 0
	// checkpoint T = 8 v_th = 1 v_reset = 0
}
