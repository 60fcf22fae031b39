package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

func newBenchCmd() *cobra.Command {
	var (
		arch, dataDir     string
		dataset           string
		df                deviceFlags
		width, batch, inf int
		seconds           float64
		jsonOut           bool
		cfg               = spiking.DefaultConfig()
	)
	cmd := &cobra.Command{
		Use:   "bench --device cpu --arch fmnist [--width 128] --batch-size 100 --timesteps 15",
		Short: "Measure training and SNN inference speed",
		Long: `bench builds a network (the paper's fmnist at --width, or tiny) and reports
images/s for one proxy-learning step (ANN forward and backward, SNN forward
over T steps, BN in training mode, Adam) and for SNN inference, and the
process's peak memory (and the device's, on a GPU). Inputs are random
images, or with --dataset real test images (sparser in spikes).
scripts/bench_cpu.sh and scripts/bench_torch_gpu.py run PyTorch's step
beside it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var net *nn.Network
			var err error
			switch arch {
			case "fmnist":
				net, err = nn.Reference(width, 2020)
			case "tiny":
				net, err = nn.Tiny(2020)
			default:
				return fmt.Errorf("--arch %q: want fmnist or tiny", arch)
			}
			if err != nil {
				return err
			}
			if !(seconds >= 0 && seconds <= 86400) {
				return fmt.Errorf("--seconds must lie between 0 (one measurement) and a day, got %g", seconds)
			}
			if err := checkBatch("batch-size", batch); err != nil {
				return err
			}
			if err := checkBatch("infer-batch-size", inf); err != nil {
				return err
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
			var d *data.Dataset
			if dataset != "" {
				if dataDir == "" {
					if dataDir, err = data.DefaultDir(dataset); err != nil {
						return err
					}
				}
				if d, err = data.Load(dataDir, dataset, false); err != nil {
					return err
				}
			}
			r, err := train.Bench(be, net, cfg, batch, inf, time.Duration(seconds*float64(time.Second)), d)
			if err != nil {
				return err
			}
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			peakMB := float64(ru.Maxrss) / 1024
			var dev map[string]any
			if m, ok := be.(interface{ DeviceMemory() (int64, int64, int64) }); ok {
				_, peak, total := m.DeviceMemory()
				dev = map[string]any{"peak_mb": float64(peak) / (1 << 20), "total_mb": float64(total) / (1 << 20)}
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				b, _ := json.Marshal(map[string]any{"device": df.name, "device_description": device.Describe(be), "arch": arch,
					"width": width, "batch_size": batch, "timesteps": cfg.Timesteps, "cores": runtime.GOMAXPROCS(0),
					"result": r, "peak_memory_mb": peakMB, "device_memory": dev})
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "%s, %s, %d cores, T=%d\n", net.Name, device.Describe(be), runtime.GOMAXPROCS(0), cfg.Timesteps)
			fmt.Fprintf(out, "  training step, batch %d: %.2f images/s (%.4f s per step, %d steps; %.2f GFLOP per image, %.2f TFLOP/s)\n",
				batch, r.TrainImagesPerSec, r.TrainStepSeconds, r.TrainSteps, r.TrainGFLOPPerImage, r.TrainTFLOPS)
			fmt.Fprintf(out, "  SNN inference, batch %d: %.2f images/s (%.2f GFLOP per image, %.2f TFLOP/s)\n", r.InferBatch,
				r.InferImagesPerSec, r.InferGFLOPPerImage, r.InferTFLOPS)
			fmt.Fprintf(out, "  peak memory: %.0f MB (process)", peakMB)
			if dev != nil {
				fmt.Fprintf(out, "; on the device %.0f MB training, %.0f MB inference", r.TrainDeviceMB, r.InferDeviceMB)
				if t := dev["total_mb"].(float64); t > 0 {
					fmt.Fprintf(out, " (of %.0f MB)", t)
				}
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&arch, "arch", "fmnist", "fmnist or tiny")
	f.IntVar(&width, "width", 128, "fmnist: channel width (the paper's: 128)")
	f.IntVar(&batch, "batch-size", 100, "training batch")
	f.IntVar(&inf, "infer-batch-size", 1000, "SNN inference batch")
	f.IntVar(&cfg.Timesteps, "timesteps", cfg.Timesteps, "SNN time steps T")
	f.Float64Var(&seconds, "seconds", 5, "time each measurement for at least this long")
	f.BoolVar(&jsonOut, "json", false, "print JSON")
	f.StringVar(&dataset, "dataset", "", "time on this data set's test images (mnist, fashion-mnist, cifar10) instead of random ones")
	f.StringVar(&dataDir, "data", "", "folder of --dataset's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	df.add(cmd)
	return cmd
}
