package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// The flag groups the commands share: each group registers its flags on a
// command and turns them into what the library takes.

// modelFlags read MODEL: --arch and --like give a PyTorch state dict its
// structure.
type modelFlags struct{ opt model.Options }

func (f *modelFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.opt.Arch, "arch", "", "structure of a PyTorch state dict: "+nn.ArchitectureNames()+" (sized after the state dict)")
	cmd.Flags().StringVar(&f.opt.Like, "like", "", "structure of a PyTorch state dict: any model file with the same parameter names")
}

// load reads the model file. What the reader had to assume about a
// PyTorch module (its children applied in order, say) is printed on
// stderr by every command, not by import alone: a wrong guess would
// otherwise go unseen.
func (f *modelFlags) load(cmd *cobra.Command, path string) (*model.Model, error) {
	m, err := model.LoadWith(path, f.opt)
	if err != nil {
		return nil, err
	}
	if m.PT != nil && cmd.Name() != "import" { // import prints them in its table
		for _, n := range m.PT.Notes {
			fmt.Fprintln(cmd.ErrOrStderr(), "note:", printable(n))
		}
	}
	return m, nil
}

// deviceFlags choose the backend.
type deviceFlags struct {
	name string
	opt  device.Options
}

func (f *deviceFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "device", "cpu", "where to compute: "+device.Names)
	cmd.Flags().BoolVar(&f.opt.StrictFP32, "fp32", false, "cuda: matrix products and convolutions in strict FP32 (default: TF32 tensor cores for both; PyTorch >= 1.12 uses TF32 for cuDNN convolutions only)")
	cmd.Flags().BoolVar(&f.opt.NoCuDNN, "no-cudnn", false, "cuda: proxykit's own im2col convolutions even where cuDNN is present")
}

func (f *deviceFlags) open() (compute.Backend, error) { return device.Open(f.name, f.opt) }

// distFlags join the data-parallel run a launcher started (mpirun,
// torchrun, srun: docs/guide.md, data-parallel training).
type distFlags struct {
	launcher string
	opt      distributed.Options
	bucketMB int
}

func (f *distFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.launcher, "launcher", "auto", "data-parallel: auto (join the run that mpirun, torchrun or srun started, read from their environment) or none (run alone whatever the environment)")
	fl.StringVar(&f.opt.BatchNorm, "bn-stats", distributed.SyncBN, "data-parallel: BatchNorm statistics in training mode over the global batch (sync: one process's results) or over each rank's share (rank: PyTorch DDP's default)")
	fl.DurationVar(&f.opt.Timeout, "dist-timeout", distributed.DefaultTimeout, "data-parallel: how long a rank waits for another before stopping every rank, naming the one it waited for")
	fl.IntVar(&f.bucketMB, "bucket-mb", 25, "data-parallel: gradients are all-reduced in buckets of this many MB as the backward pass completes them (NCCL)")
}

// join opens the device and, when a launcher started this process as one
// of several ranks, joins their run: the rank's backend (its GPU: the
// local rank's) and its group, nil when alone. A rank lost later (seen by
// the rendezvous of torchrun and srun) ends this process with a message
// naming it.
// leads says whether this process is the one that writes a run's files:
// alone, or rank 0 of the ranks the launcher's variables name (an unreadable
// launch counts as leading; join reports it).
func (f *distFlags) leads() bool {
	if f.launcher != "auto" {
		return true
	}
	l, err := distributed.Detect(os.Getenv)
	return err != nil || !l.Parallel() || l.Rank == 0
}

func (f *distFlags) join(df *deviceFlags, stderr io.Writer) (compute.Backend, *distributed.Group, error) {
	l := distributed.Launch{Size: 1}
	switch f.launcher {
	case "auto":
		var err error
		if l, err = distributed.Detect(os.Getenv); err != nil {
			return nil, nil, err
		}
	case "none":
	default:
		return nil, nil, fmt.Errorf("--launcher %q: want auto or none", f.launcher)
	}
	bucket, err := distributed.BucketBytesOfMB(f.bucketMB)
	if err != nil {
		return nil, nil, fmt.Errorf("--bucket-mb: %w", err)
	}
	f.opt.BucketBytes = bucket
	if !l.Parallel() {
		be, err := df.open()
		return be, nil, err
	}
	if df.name == "cuda" {
		n, err := device.GPUs()
		if err != nil {
			return nil, nil, err
		}
		if df.opt.GPU, err = distributed.DeviceFor(l, n); err != nil {
			return nil, nil, err
		}
	}
	be, err := df.open()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	g, err := distributed.Open(l, be, f.opt, func(err error) {
		fmt.Fprintf(stderr, "proxykit: rank %d of %d: stopping: %v\n", l.Rank, l.Size, err)
		atomicfile.RemoveTemporaries()
		os.Exit(1)
	})
	if err != nil {
		be.Close()
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	return be, g, nil
}

// abortRun ends a data-parallel run after this rank's error: it says which
// rank failed and stops every rank (under MPI the launcher ends the job).
func abortRun(g *distributed.Group, stderr io.Writer, err error) {
	fmt.Fprintf(stderr, "proxykit: rank %d of %d: %v; stopping every rank\n", g.Rank(), g.Size(), err)
	atomicfile.RemoveTemporaries()
	g.Abort(err)
	os.Exit(1)
}

// snnFlags set the SNN: T, v_th, v_reset. Where the user gives none of
// them, a model file that carries a setting (a checkpoint, an SNN module)
// supplies it. With a sweep, --timesteps takes a list of T.
type snnFlags struct {
	cfg  *spiking.Config
	cmd  *cobra.Command
	list string // --timesteps of a sweep
}

func addSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd}
	cmd.Flags().IntVar(&cfg.Timesteps, "timesteps", cfg.Timesteps, "SNN: number of time steps T (default: the model file's own, else the one shown)")
	f.addNeuron()
	return f
}

// addSweepSNNFlags is addSNNFlags with --timesteps a list (sweep).
func addSweepSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd, list: fmt.Sprint(cfg.Timesteps)}
	cmd.Flags().StringVar(&f.list, "timesteps", f.list, fmt.Sprintf("SNN: number of time steps T, or a list of them read off one simulation: 1,2,4,8 or 1-32 or 8-128:8 (at most %d values, each up to %d; default: the model file's own T)", results.MaxSweepPoints, train.MaxTimesteps))
	f.addNeuron()
	return f
}

func (f *snnFlags) addNeuron() {
	f.cmd.Flags().Float32Var(&f.cfg.Threshold, "threshold", f.cfg.Threshold, "SNN: firing threshold v_th (spike when v >= v_th)")
	f.cmd.Flags().Float32Var(&f.cfg.Reset, "reset", f.cfg.Reset, "SNN: reset potential v_reset (also the initial potential)")
}

// fromModel takes the settings the user did not give from m's file.
func (f *snnFlags) fromModel(m *model.Model) {
	own, ok := m.SNNDefaults()
	if !ok {
		return
	}
	for _, s := range []struct {
		flag string
		set  func()
	}{{"timesteps", func() { f.cfg.Timesteps = own.Timesteps }}, {"threshold", func() { f.cfg.Threshold = own.Threshold }},
		{"reset", func() { f.cfg.Reset = own.Reset }}} {
		if !f.cmd.Flags().Changed(s.flag) {
			s.set()
		}
	}
}

// sweep is the list of T a sweep reads (one, the setting's, unless
// --timesteps gave several); the setting's T becomes the longest.
func (f *snnFlags) sweep() ([]int, error) {
	if !f.cmd.Flags().Changed("timesteps") {
		return []int{f.cfg.Timesteps}, nil
	}
	ts, err := train.ParseTimesteps(f.list)
	if err != nil {
		return nil, err
	}
	f.cfg.Timesteps = ts[len(ts)-1]
	return ts, nil
}

// dataFlags name a data set (into *name, which holds the default) and the
// folder of its files.
type dataFlags struct {
	dir  string
	name *string
	cmd  *cobra.Command
}

func addDataFlags(cmd *cobra.Command, name *string) *dataFlags {
	f := &dataFlags{name: name, cmd: cmd}
	cmd.Flags().StringVar(&f.dir, "data", "", "folder holding the data set's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	cmd.Flags().StringVar(name, "dataset", *name, "mnist, fashion-mnist or cifar10 (default: a checkpoint's own)")
	return f
}

// fromModel takes the data set from m's file (a checkpoint's own) unless
// --dataset names one.
func (f *dataFlags) fromModel(m *model.Model) {
	if m.Checkpoint != nil && !f.cmd.Flags().Changed("dataset") {
		*f.name = m.Checkpoint.Settings.Dataset
	}
}

// load reads a split of the data set from the --data folder, else the data
// set's default one, and checks that its images fit m (nil: no model).
func (f *dataFlags) load(m *model.Model, trainSplit bool) (*data.Dataset, error) {
	name := f.name
	dir := f.dir
	if dir == "" {
		var err error
		if dir, err = data.DefaultDir(*name); err != nil {
			return nil, err
		}
	}
	d, err := data.Load(dir, *name, trainSplit)
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := m.ANN.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return nil, fmt.Errorf("data set %s does not fit %s: %w", d.Name, m.ANN.Name, err)
		}
	}
	return d, nil
}

// checkBatch checks a --batch-size (or similar) flag before any work.
func checkBatch(flag string, n int) error {
	if n < 1 || n > recipe.MaxBatchSize {
		return fmt.Errorf("--%s must lie between 1 and %d, got %d", flag, recipe.MaxBatchSize, n)
	}
	return nil
}

// outputs are the files a command will write, each with the flag that
// named it; check refuses, before any work, a file that cannot be
// written, one that is an input and two that are one file.
type outputs []atomicfile.Output

func (o *outputs) add(flag, path string) {
	if path != "" {
		*o = append(*o, atomicfile.Output{Name: flag, Path: path})
	}
}

func (o outputs) check(inputs ...string) error { return atomicfile.CheckOutputs(o, inputs...) }

// parseBetas reads --betas "b1,b2".
func parseBetas(s string) (float64, float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) == 2 {
		b1, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		b2, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err1 == nil && err2 == nil {
			return b1, b2, nil
		}
	}
	return 0, 0, fmt.Errorf("--betas %q: want two numbers, e.g. 0.8,0.99", s)
}

// recipeFlags set a training run's settings (recipe.Settings); the SNN's
// are snnFlags.
type recipeFlags struct {
	s                    *recipe.Settings
	betas                string
	noShuffle, noAugment bool
}

func addRecipeFlags(cmd *cobra.Command, s *recipe.Settings) *recipeFlags {
	r := &recipeFlags{s: s, betas: fmt.Sprintf("%g,%g", s.Beta1, s.Beta2)}
	f := cmd.Flags()
	f.IntVar(&s.Epochs, "epochs", s.Epochs, "epochs to train (in all, when resuming)")
	f.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "images per proxy step")
	f.Float64Var(&s.LR, "lr", s.LR, "Adam learning rate")
	f.StringVar(&r.betas, "betas", r.betas, "Adam betas")
	f.Float64Var(&s.Eps, "eps", s.Eps, "Adam epsilon")
	f.Float64Var(&s.WeightDecay, "weight-decay", s.WeightDecay, "L2 weight decay added to the gradient")
	f.IntVar(&s.FreezeBNAfter, "freeze-bn-after", s.FreezeBNAfter, "epochs with BatchNorm in training mode before eval mode (0: eval from the start)")
	f.Uint64Var(&s.Seed, "seed", s.Seed, "seed of shuffling and augmentation")
	f.BoolVar(&r.noShuffle, "no-shuffle", false, "keep the data set's order")
	f.BoolVar(&r.noAugment, "no-augment", false, "no data augmentation")
	f.IntVar(&s.MaxTrain, "max-train", 0, "use only the first N training images (0: all)")
	f.IntVar(&s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	return r
}

// complete sets the settings the flags give indirectly (--betas,
// --no-shuffle, --no-augment).
func (r *recipeFlags) complete() error {
	var err error
	r.s.Beta1, r.s.Beta2, err = parseBetas(r.betas)
	r.s.Shuffle, r.s.Augment = !r.noShuffle, !r.noAugment
	return err
}

// archFlags choose and size an architecture of the registry.
type archFlags struct {
	name, input string
	opt         nn.ArchOptions
}

func (f *archFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "arch", "fmnist", "architecture: "+nn.ArchitectureNames())
	fl.IntVar(&f.opt.Width, "width", 0, "channel width (default: the architecture's own: fmnist 128, the paper's; resnet 16, the first stage's)")
	fl.IntVar(&f.opt.Blocks, "blocks", 0, "resnet: basic blocks per stage (default 1: ResNet-8; 3: ResNet-20)")
	fl.StringVar(&f.input, "input", "", "resnet: input shape CxHxW (default 3x32x32; 1x28x28 for MNIST and Fashion-MNIST)")
	fl.Uint64Var(&f.opt.Seed, "seed", 2020, "seed of the weight initialisation")
}

// build makes the network.
func (f *archFlags) build() (*nn.Network, error) {
	a, err := nn.ArchitectureNamed(f.name)
	if err != nil {
		return nil, fmt.Errorf("--arch: %w", err)
	}
	if f.input != "" {
		if f.opt.Input, err = parseInputShape(f.input); err != nil {
			return nil, err
		}
	}
	return a.Build(f.opt)
}

// parseInputShape reads CxHxW.
func parseInputShape(s string) ([]int, error) {
	parts := strings.Split(s, "x")
	if len(parts) == 3 {
		out := make([]int, 3)
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 1 || v > 1<<14 {
				return nil, fmt.Errorf("--input %q: want CxHxW of positive integers, e.g. 3x32x32", s)
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("--input %q: want CxHxW, e.g. 3x32x32", s)
}
