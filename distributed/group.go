package distributed

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
)

// BatchNorm statistics in training mode, Options.BatchNorm (the setting
// recipe.Settings.BNStats records).
const (
	// SyncBN normalises with the statistics of the global batch, summed
	// across ranks in the ANN and, per time step, in the SNN: the run is
	// the one-process run, whatever the number of ranks.
	SyncBN = recipe.BNSync
	// RankBN normalises with each rank's share of the batch (PyTorch
	// DDP's default); the running statistics kept are rank 0's.
	RankBN = recipe.BNRank
)

// Options tune a data-parallel run.
type Options struct {
	// Timeout bounds every wait for another rank; a collective that waits
	// longer fails naming the rank. 0 means DefaultTimeout.
	Timeout time.Duration
	// BatchNorm is SyncBN ("" means SyncBN) or RankBN.
	BatchNorm string
	// BucketBytes is the size of the gradient buckets whose all-reduce
	// starts as soon as the backward pass has written them, where the
	// collectives run beside the kernels (NCCL). 0 means 25 MB, PyTorch
	// DDP's default; at most MaxBucketBytes.
	BucketBytes int
	// Report, if set, is told why this rank stops the run for good, before
	// anything may end the process: another rank was lost (told from the
	// rendezvous's goroutine), Abort was called, or the collectives could
	// not be set up under MPI. A program prints the error there.
	Report func(error)
	// Exit, if set, ends the process with the status it is given once this
	// rank has stopped the run for good (after Report): a program's main
	// passes os.Exit. nil leaves the process running: Abort returns (under
	// MPI, MPI_Abort ends the job itself), and the collectives that wait
	// for a lost rank fail, naming it.
	Exit func(code int)
	// Fatal, if set, is called when a wait that cannot be cancelled
	// outlives Timeout — MPI's start-up (MPI_Init_thread), which no
	// timeout of MPI's bounds and which knows no rank to blame —, with an
	// error naming the stage and the timeout; a program's main passes a
	// function that says so and ends the process. Without it (or when it
	// returns) Open returns that error, and the process must end: MPI
	// cannot be used in it any more.
	Fatal func(error)
}

// MaxBucketBytes bounds Options.BucketBytes: 1 TiB, more than any
// network's gradients.
const MaxBucketBytes = 1 << 40

// MaxTimeout bounds Options.Timeout: 30 days.
const MaxTimeout = 30 * 24 * time.Hour

// BucketBytesOfMB is a bucket size given in MB (2^20 bytes), as
// Options.BucketBytes takes it: refused unless from 1 MB to
// MaxBucketBytes, so that the product cannot overflow.
func BucketBytesOfMB(mb int) (int, error) {
	if mb < 1 || mb > MaxBucketBytes>>20 {
		return 0, fmt.Errorf("gradient buckets of %d MB: want 1 to %d MB", mb, MaxBucketBytes>>20)
	}
	return mb << 20, nil
}

// DefaultTimeout is Options.Timeout's default: long enough for rank 0 to
// write a checkpoint and evaluate while the others wait.
const DefaultTimeout = 10 * time.Minute

func (o Options) complete() (Options, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 0 || o.Timeout > MaxTimeout {
		return o, fmt.Errorf("the data-parallel timeout must be positive and at most %s, got %s", MaxTimeout, o.Timeout)
	}
	if o.BatchNorm == "" {
		o.BatchNorm = SyncBN
	}
	if o.BatchNorm != SyncBN && o.BatchNorm != RankBN {
		return o, fmt.Errorf("BatchNorm statistics %q: want %s (the global batch's) or %s (each rank's share)", o.BatchNorm, SyncBN, RankBN)
	}
	if o.BucketBytes == 0 {
		o.BucketBytes = 25 << 20
	}
	if o.BucketBytes < 0 || o.BucketBytes > MaxBucketBytes {
		return o, fmt.Errorf("gradient buckets of %d bytes: want 1 to %d (0: 25 MB)", o.BucketBytes, MaxBucketBytes)
	}
	return o, nil
}

// Group is this process's part of a data-parallel run: its rank, a host
// communicator for the trainer's small collectives, and the collectives
// of its backend for gradients and statistics.
type Group struct {
	opt    Options
	launch Launch
	host   Comm
	coll   compute.Collectives
	be     compute.Backend
	rdv    *rendezvous

	mu   sync.Mutex
	lost error
}

// Open joins the data-parallel run a launcher started (Detect), on be,
// this rank's backend (on the GPU DeviceFor picks). Under mpirun MPI
// carries the host collectives and, on the CPU backend, every sum; on the
// CUDA backend NCCL carries the device sums, its unique id shared through
// MPI. Under torchrun and srun, without MPI, NCCL is bootstrapped through
// the rendezvous at l.Master and carries everything; the CPU backend has
// no collectives there and is refused. When the rendezvous learns that
// another rank was lost, opt.Report and opt.Exit are called.
func Open(l Launch, be compute.Backend, opt Options) (*Group, error) {
	var err error
	if opt, err = opt.complete(); err != nil {
		return nil, err
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	if be == nil {
		return nil, fmt.Errorf("joining a data-parallel run: no backend (nil)")
	}
	switch l.Launcher {
	case LaunchMPI:
		host, err := openMPI(opt.Timeout, opt.Fatal)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Via, err)
		}
		if l.Size > 0 && (host.Size() != l.Size || host.Rank() != l.Rank) {
			host.Close()
			return nil, fmt.Errorf("MPI says rank %d of %d, the launcher's variables (%s) rank %d of %d", host.Rank(), host.Size(), l.Via, l.Rank, l.Size)
		}
		l.Rank, l.Size = host.Rank(), host.Size()
		g, err := New(host, be, opt)
		if err != nil {
			// MPI_Finalize would wait for ranks that wait for this one
			// (in a broadcast, in NCCL's bootstrap): say why and end the job
			opt.stop(fmt.Errorf("rank %d of %d: %w", host.Rank(), host.Size(), err), host.Abort, err)
			return nil, err
		}
		g.launch = l
		return g, nil
	}
	cb, ok := be.(compute.CollectiveBackend)
	if !ok {
		return nil, setting.Errorf("%s without MPI: the %s backend's data-parallel training runs on MPI's collectives; "+
			"start it with Open MPI's mpirun (mpirun -np %d proxykit …), or use %s cuda (NCCL, bootstrapped through MASTER_ADDR:MASTER_PORT)",
			l.Launcher, be.Name(), l.Size, setting.Device)
	}
	g := &Group{opt: opt, launch: l, be: be}
	var id []byte
	if l.Rank == 0 {
		if id, err = cb.CollectiveID(); err != nil {
			return nil, err
		}
	}
	if g.rdv, id, err = rendezvousAt(l.Master, l.Rank, l.Size, id, opt.Timeout, g.peerLost); err != nil {
		return nil, err
	}
	if g.coll, err = cb.JoinCollectives(l.Rank, l.Size, id, nil, opt.Timeout); err != nil {
		g.rdv.fail(err)
		g.rdv.close()
		return nil, fmt.Errorf("rank %d: %w", l.Rank, err)
	}
	g.host = &stagedComm{rank: l.Rank, size: l.Size, be: be, coll: g.coll, abort: g.rdv.fail,
		describe: fmt.Sprintf("%s over %s (bootstrapped at %s)", l.Launcher, g.coll.Describe(), l.Master)}
	return g, nil
}

// New makes a group over a host communicator (OpenMPI's, or one of Local's
// for ranks in one process) on be, this rank's backend. A backend with
// collectives of its own (CUDA: NCCL) joins them with rank 0's token,
// broadcast through host; the others' buffers are summed by host.
func New(host Comm, be compute.Backend, opt Options) (*Group, error) {
	var err error
	if opt, err = opt.complete(); err != nil {
		return nil, err
	}
	if host == nil || be == nil {
		return nil, fmt.Errorf("making a data-parallel group: the host communicator and the backend are required (nil)")
	}
	g := &Group{opt: opt, host: host, be: be,
		launch: Launch{Rank: host.Rank(), Size: host.Size(), LocalRank: host.Rank(), Via: host.Describe()}}
	cb, ok := be.(compute.CollectiveBackend)
	if !ok {
		g.coll = &hostCollectives{c: host}
		return g, nil
	}
	// rank 0's id, its length first; a length of 0 says rank 0 failed to
	// make one, so that the others stop at once instead of waiting
	var id []byte
	var idErr error
	if host.Rank() == 0 {
		id, idErr = cb.CollectiveID()
		if idErr == nil && (len(id) == 0 || len(id) > 255) {
			idErr = fmt.Errorf("the collectives' id has %d bytes", len(id))
		}
		if idErr != nil {
			id = nil
		}
	}
	n := []byte{byte(len(id))}
	if err := host.Broadcast(0, n); err != nil {
		return nil, err
	}
	if idErr != nil {
		return nil, idErr
	}
	if n[0] == 0 {
		return nil, fmt.Errorf("rank %d: rank 0 could not set up the collectives (its error says why)", host.Rank())
	}
	if host.Rank() != 0 {
		id = make([]byte, n[0])
	}
	if err := host.Broadcast(0, id); err != nil {
		return nil, err
	}
	if g.coll, err = cb.JoinCollectives(host.Rank(), host.Size(), id, host, opt.Timeout); err != nil {
		return nil, fmt.Errorf("rank %d: %w", host.Rank(), err)
	}
	return g, nil
}

// errNoGroup is the error of a nil or zero Group's methods.
var errNoGroup = errors.New("not a data-parallel group (nil or zero: make one with Open or New)")

// peerLost records that another rank was lost and stops this one.
func (g *Group) peerLost(err error) {
	g.mu.Lock()
	if g.lost == nil {
		g.lost = err
	}
	g.mu.Unlock()
	g.opt.stop(fmt.Errorf("rank %d of %d: stopping: %w", g.Rank(), g.Size(), err), func(error) {}, err)
}

// stop reports why this rank stops for good (report), tells the others
// (tell, given the cause) and ends the process where Exit says how.
func (o Options) stop(report error, tell func(error), cause error) {
	if o.Report != nil {
		o.Report(report)
	}
	tell(cause)
	if o.Exit != nil {
		o.Exit(1)
	}
}

// Lost is the first lost rank the rendezvous reported, or nil.
func (g *Group) Lost() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lost
}

// Rank is this process's rank; Size the number of ranks.
func (g *Group) Rank() int { return g.launch.Rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.launch.Size }

// Launch is how the run was started.
func (g *Group) Launch() Launch { return g.launch }

// Options are the run's options, defaults filled in.
func (g *Group) Options() Options { return g.opt }

// Host is the communicator for host values.
func (g *Group) Host() Comm { return g.host }

// Collectives are the backend's collectives.
func (g *Group) Collectives() compute.Collectives { return g.coll }

// Describe names the ranks and what carries their sums, for logs.
func (g *Group) Describe() string {
	if g.coll == nil {
		return "no data-parallel group (a zero Group: make one with Open or New)"
	}
	s := fmt.Sprintf("%d ranks: %s", g.Size(), g.coll.Describe())
	if g.launch.Launcher != "" {
		s += ", started by " + g.launch.Launcher
	}
	if g.rdv != nil {
		s += " (bootstrapped at " + g.launch.Master + ")"
		if g.rdv.notice != "" {
			s += " (rank 0 " + g.rdv.notice + ")"
		}
	}
	return s + ", BatchNorm statistics " + map[string]string{SyncBN: "synchronised", RankBN: "per rank"}[g.opt.BatchNorm]
}

// Abort stops every rank after err (this rank's failure): it reports err,
// naming the rank (Options.Report); then under MPI the launcher ends the
// job, under torchrun and srun the rendezvous tells the other ranks, which
// then stop; then Options.Exit ends this process. Without Exit, Abort
// returns where the process survives it, and the group is unusable.
//
// A zero Group has no ranks to stop: Abort does nothing.
func (g *Group) Abort(err error) {
	if err == nil {
		err = errors.New("stopped (no reason given)")
	}
	if g.host == nil && g.rdv == nil {
		return
	}
	g.opt.stop(fmt.Errorf("rank %d of %d: %w; stopping every rank", g.Rank(), g.Size(), err), func(err error) {
		if g.rdv != nil {
			g.rdv.fail(err)
		}
		if g.host != nil {
			g.host.Abort(err)
		}
	}, err)
}

// Close ends this rank's part in the run.
func (g *Group) Close() error {
	if g == nil || g.coll == nil || g.host == nil {
		return errNoGroup
	}
	err := g.coll.Close()
	if g.rdv != nil {
		g.rdv.close()
	}
	if cerr := g.host.Close(); err == nil {
		err = cerr
	}
	return err
}

// Join opens this process's backend with open (given a GPU ordinal) and,
// when l makes it one of several ranks, joins their run (Open): the rank's
// backend, on the GPU DeviceFor picks among gpus() when gpus is not nil,
// and its group; the group is nil for a process alone. The caller closes
// the group, then the backend.
func Join(l Launch, opt Options, open func(gpu int) (compute.Backend, error), gpus func() (int, error)) (compute.Backend, *Group, error) {
	if !l.Parallel() {
		be, err := open(0)
		return be, nil, err
	}
	gpu := 0
	if gpus != nil {
		n, err := gpus()
		if err != nil {
			return nil, nil, err
		}
		if gpu, err = DeviceFor(l, n); err != nil {
			return nil, nil, err
		}
	}
	be, err := open(gpu)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	g, err := Open(l, be, opt)
	if err != nil {
		be.Close()
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	return be, g, nil
}
