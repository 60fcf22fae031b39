package distributed

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/proxykit/proxykit/setting"
)

// Launchers proxykit recognises, as Launch.Launcher names them.
const (
	// LaunchMPI: Open MPI's mpirun (or mpiexec, prterun): MPI carries every
	// collective on the CPU and bootstraps NCCL on CUDA.
	LaunchMPI = "mpirun"
	// LaunchTorchrun: torchrun, or any launcher that sets PyTorch's
	// variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
	LaunchTorchrun = "torchrun"
	// LaunchSlurm: SLURM's srun without MPI (SLURM_PROCID, SLURM_LOCALID,
	// SLURM_STEP_NUM_TASKS), with MASTER_ADDR and MASTER_PORT set by the
	// job script.
	LaunchSlurm = "srun"
)

// Launch is how this process was started: by which launcher, as which of
// how many ranks, on which device of its node.
type Launch struct {
	// Launcher is LaunchMPI, LaunchTorchrun, LaunchSlurm, or "" for a
	// process started alone.
	Launcher string
	// Rank is this process's index from 0; Size the number of processes.
	Rank, Size int
	// LocalRank is its index among the processes on its node: the GPU it
	// uses. LocalSize counts them (0 where the launcher does not say).
	LocalRank, LocalSize int
	// Master is the host:port where rank 0 serves the rendezvous
	// (torchrun, srun: NCCL's bootstrap without MPI).
	Master string
	// Via names the variables that told, for messages.
	Via string
}

// Parallel says whether more than one process takes part, or may (a
// size of −1: an MPI launch whose size MPI_Init tells).
func (l Launch) Parallel() bool { return l.Size > 1 || l.Size < 0 }

// MaxRanks bounds the number of ranks a launcher's variables may name.
const MaxRanks = 1 << 20

// String describes the launch, e.g. "rank 1 of 4 (mpirun, local rank 1)".
func (l Launch) String() string {
	switch {
	case l.Size <= 1:
		return "one process"
	case l.Launcher == "":
		return fmt.Sprintf("rank %d of %d", l.Rank, l.Size)
	}
	return fmt.Sprintf("rank %d of %d (%s, local rank %d)", l.Rank, l.Size, l.Launcher, l.LocalRank)
}

// The launcher settings LaunchOf takes.
const (
	// LauncherAuto joins the run a launcher started, as Detect reads it.
	LauncherAuto = "auto"
	// LauncherNone runs alone whatever the environment says.
	LauncherNone = "none"
)

// LaunchOf is how this process was started under the launcher setting:
// as the launcher's variables say (LauncherAuto: Detect, getenv is
// os.Getenv), or alone (LauncherNone). An error names the setting
// ("launcher").
func LaunchOf(launcher string, getenv func(string) string) (Launch, error) {
	switch launcher {
	case LauncherAuto:
		return Detect(getenv)
	case LauncherNone:
		return Launch{Size: 1}, nil
	}
	return Launch{}, setting.Errorf("%s %q: want %s or %s", setting.Name("launcher"), launcher, LauncherAuto, LauncherNone)
}

// Detect reads the launcher's environment (getenv is os.Getenv), first
// match wins:
//
//  1. Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, _RANK, _LOCAL_RANK and
//     _LOCAL_SIZE; srun --mpi=pmix starting Open MPI sets PMIX_RANK with
//     SLURM's variables. Either is an MPI launch (MPI_Init then confirms
//     rank and size).
//  2. MPICH's and Intel MPI's launchers set PMI_RANK and PMI_SIZE: refused,
//     their libmpi has another ABI than Open MPI's.
//  3. torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//     MASTER_ADDR and MASTER_PORT.
//  4. srun sets SLURM_PROCID, SLURM_LOCALID and, for the job step it
//     launches, SLURM_STEP_NUM_TASKS (SLURM_NTASKS alone is also set in a
//     batch script, which runs once); MASTER_ADDR and MASTER_PORT must come
//     from the job script.
//  5. Otherwise one process.
//
// A launch of one process (a world of size 1) is the same as none.
func Detect(getenv func(string) string) (Launch, error) {
	if getenv == nil {
		return Launch{}, fmt.Errorf("detecting the launcher: no environment to read (getenv is nil; os.Getenv reads the process's)")
	}
	num := func(name string, min int) (int, error) {
		s := getenv(name)
		v, ok := parseDecimal(s, MaxRanks)
		if !ok || v < min {
			return 0, fmt.Errorf("launcher variable %s=%q: want an integer from %d to %d", name, s, min, MaxRanks)
		}
		return v, nil
	}
	opt := func(name string, min int) (int, error) {
		if getenv(name) == "" {
			return 0, nil
		}
		return num(name, min)
	}
	var l Launch
	var err error
	switch {
	case getenv("OMPI_COMM_WORLD_SIZE") != "":
		l.Launcher, l.Via = LaunchMPI, "OMPI_COMM_WORLD_*"
		if l.Size, err = num("OMPI_COMM_WORLD_SIZE", 1); err != nil {
			return l, err
		}
		if l.Rank, err = num("OMPI_COMM_WORLD_RANK", 0); err != nil {
			return l, err
		}
		if l.LocalRank, err = opt("OMPI_COMM_WORLD_LOCAL_RANK", 0); err != nil {
			return l, err
		}
		if l.LocalSize, err = opt("OMPI_COMM_WORLD_LOCAL_SIZE", 1); err != nil {
			return l, err
		}
	case getenv("PMIX_RANK") != "":
		l.Launcher, l.Via = LaunchMPI, "PMIX_RANK"
		if l.Rank, err = num("PMIX_RANK", 0); err != nil {
			return l, err
		}
		l.Size = -1 // MPI_Init says
		if getenv("SLURM_STEP_NUM_TASKS") != "" {
			if l.Size, err = num("SLURM_STEP_NUM_TASKS", 1); err != nil {
				return l, err
			}
		}
		if l.LocalRank, err = opt("SLURM_LOCALID", 0); err != nil {
			return l, err
		}
	case getenv("PMI_RANK") != "" || getenv("PMI_SIZE") != "":
		return l, fmt.Errorf("started by an MPI launcher other than Open MPI's (PMI_RANK and PMI_SIZE are MPICH's and Intel MPI's): " +
			"proxykit speaks Open MPI's ABI; use Open MPI's mpirun, or torchrun's variables (see docs/guide.md, data-parallel training)")
	case getenv("WORLD_SIZE") != "" || getenv("RANK") != "":
		l.Launcher, l.Via = LaunchTorchrun, "RANK, WORLD_SIZE, LOCAL_RANK"
		if l.Size, err = num("WORLD_SIZE", 1); err != nil {
			return l, err
		}
		if l.Rank, err = num("RANK", 0); err != nil {
			return l, err
		}
		if l.LocalRank, err = opt("LOCAL_RANK", 0); err != nil {
			return l, err
		}
		if l.LocalSize, err = opt("LOCAL_WORLD_SIZE", 1); err != nil {
			return l, err
		}
	case getenv("SLURM_STEP_NUM_TASKS") != "" && getenv("SLURM_PROCID") != "":
		l.Launcher, l.Via = LaunchSlurm, "SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID"
		if l.Size, err = num("SLURM_STEP_NUM_TASKS", 1); err != nil {
			return l, err
		}
		if l.Rank, err = num("SLURM_PROCID", 0); err != nil {
			return l, err
		}
		if l.LocalRank, err = opt("SLURM_LOCALID", 0); err != nil {
			return l, err
		}
	default:
		return Launch{Rank: 0, Size: 1}, nil
	}
	// a rank beyond the size is refused before a size of 1 is taken for
	// one process: WORLD_SIZE=1 RANK=7 is a mistake, not rank 0
	if l.Size > 0 && l.Rank >= l.Size {
		return l, fmt.Errorf("%s: rank %d of %d ranks (%s): a rank lies from 0 to the size minus 1", l.Launcher, l.Rank, l.Size, l.Via)
	}
	if l.Size == 1 {
		return Launch{Rank: 0, Size: 1}, nil
	}
	if l.Launcher == LaunchTorchrun || l.Launcher == LaunchSlurm {
		addr, port := getenv("MASTER_ADDR"), getenv("MASTER_PORT")
		if addr == "" || port == "" {
			return l, fmt.Errorf("%s started %d ranks but MASTER_ADDR and MASTER_PORT are not both set: they name the host and port where rank 0 "+
				"serves the rendezvous (torchrun sets them; in a SLURM job script: export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) MASTER_PORT=29500)",
				l.Launcher, l.Size)
		}
		p, err := ParsePort(port)
		if err != nil {
			return l, fmt.Errorf("MASTER_PORT=%q: %w", port, err)
		}
		l.Master = net.JoinHostPort(addr, strconv.Itoa(p))
	}
	return l, nil
}

// ParsePort reads a TCP port strictly: decimal digits only (no sign, no
// spaces: strconv.Atoi would take "+80" for 80), from 1 to 65535.
func ParsePort(s string) (int, error) {
	p, ok := parseDecimal(s, 65535)
	if !ok || p < 1 {
		return 0, fmt.Errorf("want a TCP port, 1 to 65535, in decimal digits")
	}
	return p, nil
}

// parseDecimal reads a number of decimal digits only, at most max.
func parseDecimal(s string, max int) (int, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// check refuses a Launch that Detect cannot have returned for a run of
// several ranks: an unknown launcher, a size or rank out of range, a
// rendezvous address that is not host:port.
func (l Launch) check() error {
	switch l.Launcher {
	case LaunchMPI:
		if l.Size == 0 || l.Size < -1 {
			return fmt.Errorf("launch %q of %d ranks: want a size from 2 to %d (or -1: MPI tells it)", l.Launcher, l.Size, MaxRanks)
		}
	case LaunchTorchrun, LaunchSlurm:
		if l.Size < 2 {
			return fmt.Errorf("launch %q of %d ranks: want a size from 2 to %d", l.Launcher, l.Size, MaxRanks)
		}
		host, port, err := net.SplitHostPort(l.Master)
		if err != nil || host == "" {
			return fmt.Errorf("launch %q: rendezvous address %q: want host:port", l.Launcher, l.Master)
		}
		if _, err := ParsePort(port); err != nil {
			return fmt.Errorf("launch %q: rendezvous address %q: %w", l.Launcher, l.Master, err)
		}
	default:
		return fmt.Errorf("no launcher started this process as one of several ranks (launcher %q)", l.Launcher)
	}
	switch {
	case l.Size > MaxRanks:
		return fmt.Errorf("launch of %d ranks: at most %d", l.Size, MaxRanks)
	case l.Rank < 0 || l.Size > 0 && l.Rank >= l.Size || l.Rank > MaxRanks:
		return fmt.Errorf("launch: rank %d of %d ranks", l.Rank, l.Size)
	case l.LocalRank < 0 || l.LocalRank > MaxRanks || l.LocalSize < 0 || l.LocalSize > MaxRanks:
		return fmt.Errorf("launch: local rank %d of %d", l.LocalRank, l.LocalSize)
	}
	return nil
}

// DeviceFor is the GPU ordinal rank l uses among visible GPUs: its local
// rank, or 0 where the launcher made one GPU visible to each process
// (CUDA_VISIBLE_DEVICES, as srun --gpus-per-task does). It refuses a
// local rank without a GPU of its own.
func DeviceFor(l Launch, visible int) (int, error) {
	switch {
	case !l.Parallel():
		return 0, nil
	case visible < 1:
		return 0, fmt.Errorf("%s: no GPU visible (%d)", l, visible)
	case l.LocalRank < 0:
		return 0, fmt.Errorf("%s: local rank %d", l, l.LocalRank)
	case visible == 1 && l.LocalSize > 1 && os.Getenv("CUDA_VISIBLE_DEVICES") == "":
		return 0, fmt.Errorf("%s: %d ranks on this node share its one visible GPU; start one rank per GPU "+
			"(or give each process its own GPU with CUDA_VISIBLE_DEVICES, as srun --gpus-per-task=1 does)", l, l.LocalSize)
	case visible == 1:
		return 0, nil
	case l.LocalRank < visible:
		return l.LocalRank, nil
	}
	return 0, fmt.Errorf("%s: local rank %d has no GPU of its own: %d visible on this node; start at most %d ranks per node, one per GPU",
		l, l.LocalRank, visible, visible)
}
