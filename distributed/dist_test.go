package distributed

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxykit/proxykit/setting"
)

// onRanks runs f on every rank of comms, each in a goroutine, and returns
// their errors.
func onRanks(comms []Comm, f func(c Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(c)
		}()
	}
	wg.Wait()
	return errs
}

// treeSum is the batch reduction tree over xs in order (docs/design.md
// §4): sum[lo, hi) = sum[lo, mid) + sum[mid, hi), mid = lo + (hi−lo)/2.
func treeSum[T number](xs []T) T {
	if len(xs) == 1 {
		return xs[0]
	}
	mid := len(xs) / 2
	return treeSum(xs[:mid]) + treeSum(xs[mid:])
}

// TestAllReduceOrder: on 1 to 9 ranks every rank gets the same bits; with a
// power-of-two number of ranks they are the batch tree's over the ranks in
// order — for float32 values whose sums round differently in other orders
// — for vectors shorter than the number of ranks too.
func TestAllReduceOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for size := 1; size <= 9; size++ {
		for _, n := range []int{1, 3, 1000} {
			in := make([][]float32, size)
			in64 := make([][]float64, size)
			for r := range in {
				in[r], in64[r] = make([]float32, n), make([]float64, n)
				for i := range in[r] {
					e := rng.IntN(40) - 20
					in[r][i] = float32(rng.NormFloat64() * math.Ldexp(1, e))
					in64[r][i] = rng.NormFloat64() * math.Ldexp(1, e)
				}
			}
			got := make([][]float32, size)
			got64 := make([][]float64, size)
			errs := onRanks(local(t, size, 10*time.Second), func(c Comm) error {
				r := c.Rank()
				got[r], got64[r] = append([]float32(nil), in[r]...), append([]float64(nil), in64[r]...)
				if err := c.AllReduceF32(got[r]); err != nil {
					return err
				}
				return c.AllReduceF64(got64[r])
			})
			for r, err := range errs {
				if err != nil {
					t.Fatalf("%d ranks, rank %d: %v", size, r, err)
				}
			}
			pow2 := size&(size-1) == 0
			reordered := 0
			for i := 0; i < n; i++ {
				col := make([]float32, size)
				col64 := make([]float64, size)
				for r := range in {
					col[r], col64[r] = in[r][i], in64[r][i]
				}
				for r := range got {
					if math.Float32bits(got[r][i]) != math.Float32bits(got[0][i]) || math.Float64bits(got64[r][i]) != math.Float64bits(got64[0][i]) {
						t.Fatalf("%d ranks, n %d: rank %d's sum of value %d differs from rank 0's", size, n, r, i)
					}
				}
				if pow2 {
					if got[0][i] != treeSum(col) || got64[0][i] != treeSum(col64) {
						t.Fatalf("%d ranks, n %d: value %d is %g, the tree's %g", size, n, i, got[0][i], treeSum(col))
					}
					var seq float32
					for _, v := range col {
						seq += v
					}
					if seq != got[0][i] {
						reordered++
					}
				}
			}
			if pow2 && size >= 4 && n == 1000 && reordered == 0 {
				t.Errorf("%d ranks: no sum differs from the sequential one; the test cannot tell orders apart", size)
			}
		}
	}
}

// TestSplitIsTheBatchTree: for a power-of-two number of ranks the shares
// are consecutive, cover the batch and are the tree's nodes (so a tree
// over the shares' tree sums is the tree over the batch); otherwise they
// are consecutive and balanced.
func TestSplitIsTheBatchTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{1, 2, 3, 4, 5, 8, 16} {
		for n := 0; n <= 70; n++ {
			next := 0
			xs := make([]float32, n)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			var parts []float32
			for r := 0; r < size; r++ {
				lo, hi := Split(n, size, r)
				if lo != next || hi < lo {
					t.Fatalf("Split(%d, %d, %d) = [%d, %d), want it to start at %d", n, size, r, lo, hi, next)
				}
				if hi-lo > MaxShare(n, size) || (n >= size && hi == lo) {
					t.Fatalf("Split(%d, %d, %d) = [%d, %d): empty or above MaxShare %d", n, size, r, lo, hi, MaxShare(n, size))
				}
				next = hi
				if hi > lo {
					parts = append(parts, treeSum(xs[lo:hi]))
				} else {
					parts = append(parts, 0)
				}
			}
			if next != n {
				t.Fatalf("Split(%d, %d, ·) covers [0, %d)", n, size, next)
			}
			if size&(size-1) == 0 && n >= size && treeSum(parts) != treeSum(xs) {
				t.Fatalf("%d ranks, batch %d: the tree over the shares' sums is not the batch tree", size, n)
			}
		}
	}
}

// TestBroadcast: every rank gets the root's bytes, from any root.
func TestBroadcast(t *testing.T) {
	for _, size := range []int{1, 2, 3, 5, 8} {
		for root := 0; root < size; root++ {
			got := make([][]byte, size)
			errs := onRanks(local(t, size, 10*time.Second), func(c Comm) error {
				b := make([]byte, 37)
				if c.Rank() == root {
					for i := range b {
						b[i] = byte(i + root)
					}
				}
				got[c.Rank()] = b
				return c.Broadcast(root, b)
			})
			for r := range got {
				if errs[r] != nil {
					t.Fatalf("%d ranks, root %d, rank %d: %v", size, root, r, errs[r])
				}
				if !bytes.Equal(got[r], got[root]) {
					t.Fatalf("%d ranks, root %d: rank %d got %v", size, root, r, got[r][:4])
				}
			}
		}
	}
}

// TestTimeoutNamesTheRank: a rank that never joins a collective makes the
// others' waits fail after the timeout, naming it.
func TestTimeoutNamesTheRank(t *testing.T) {
	comms := local(t, 4, 200*time.Millisecond)
	start := time.Now()
	errs := onRanks(comms, func(c Comm) error {
		if c.Rank() == 2 {
			return nil // stuck elsewhere
		}
		return c.AllReduceF32(make([]float32, 10))
	})
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the ranks took %s to give up", el)
	}
	for r, err := range errs {
		if r == 2 {
			continue
		}
		if err == nil || !errors.Is(err, ErrTimeout) {
			t.Fatalf("rank %d: %v, want a timeout", r, err)
		}
		t.Logf("rank %d: %v", r, err)
	}
	// rank 3 waits for rank 2 first: its partner at distance 1
	if !strings.Contains(errs[3].Error(), "rank 3 got no answer from rank 2 within 200ms") {
		t.Errorf("rank 3: %v, want it to name rank 2", errs[3])
	}
}

// TestAbortStopsEveryRank: a rank's Abort ends the others' waits with its
// error.
func TestAbortStopsEveryRank(t *testing.T) {
	comms := local(t, 3, time.Minute)
	errs := onRanks(comms, func(c Comm) error {
		if c.Rank() == 1 {
			c.Abort(fmt.Errorf("training diverged"))
			return nil
		}
		return c.AllReduceF64(make([]float64, 4))
	})
	for _, r := range []int{0, 2} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "rank 1 stopped every rank: training diverged") {
			t.Errorf("rank %d: %v", r, errs[r])
		}
	}
}

// env makes a getenv from pairs.
// local is Local's communicators, failing t if Local refuses.
func local(t testing.TB, n int, timeout time.Duration) []Comm {
	t.Helper()
	comms, err := Local(n, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return comms
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestDetect: each launcher's variables, as its documentation gives them.
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name string
		env  func(string) string
		want Launch
		err  string
	}{
		{"alone", env(), Launch{Size: 1}, ""},
		{"mpirun", env("OMPI_COMM_WORLD_SIZE", "4", "OMPI_COMM_WORLD_RANK", "3", "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
			Launch{Launcher: LaunchMPI, Rank: 3, Size: 4, LocalRank: 1, LocalSize: 2, Via: "OMPI_COMM_WORLD_*"}, ""},
		{"mpirun -np 1", env("OMPI_COMM_WORLD_SIZE", "1", "OMPI_COMM_WORLD_RANK", "0"), Launch{Size: 1}, ""},
		{"srun --mpi=pmix", env("PMIX_RANK", "5", "SLURM_STEP_NUM_TASKS", "8", "SLURM_LOCALID", "1", "SLURM_PROCID", "5"),
			Launch{Launcher: LaunchMPI, Rank: 5, Size: 8, LocalRank: 1, Via: "PMIX_RANK"}, ""},
		{"mpich", env("PMI_RANK", "0", "PMI_SIZE", "2"), Launch{}, "other than Open MPI's"},
		{"torchrun", env("RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "2", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500"),
			Launch{Launcher: LaunchTorchrun, Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, Master: "10.0.0.1:29500", Via: "RANK, WORLD_SIZE, LOCAL_RANK"}, ""},
		{"torchrun, no master", env("RANK", "1", "WORLD_SIZE", "2"), Launch{}, "MASTER_ADDR and MASTER_PORT are not both set"},
		{"torchrun, rank too big", env("RANK", "2", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1"), Launch{}, "rank 2 of 2"},
		{"torchrun, bad port", env("RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "http"), Launch{}, "MASTER_PORT"},
		{"torchrun, bad size", env("RANK", "0", "WORLD_SIZE", "two"), Launch{}, "WORLD_SIZE=\"two\""},
		{"srun", env("SLURM_PROCID", "2", "SLURM_STEP_NUM_TASKS", "4", "SLURM_LOCALID", "0", "SLURM_NTASKS", "4", "MASTER_ADDR", "node01", "MASTER_PORT", "29500"),
			Launch{Launcher: LaunchSlurm, Rank: 2, Size: 4, Master: "node01:29500", Via: "SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID"}, ""},
		{"sbatch script, no srun", env("SLURM_PROCID", "0", "SLURM_NTASKS", "4"), Launch{Size: 1}, ""},
	} {
		got, err := Detect(c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

// TestLaunchOf: auto is Detect's reading of the environment, none is one
// process whatever the environment, anything else is refused naming the
// setting.
func TestLaunchOf(t *testing.T) {
	torchrun := env("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1")
	want, err := Detect(torchrun)
	if err != nil || !want.Parallel() {
		t.Fatalf("Detect: %+v, %v", want, err)
	}
	if got, err := LaunchOf(LauncherAuto, torchrun); err != nil || got != want {
		t.Errorf("auto: %+v, %v; want Detect's %+v", got, err, want)
	}
	if got, err := LaunchOf(LauncherNone, torchrun); err != nil || got != (Launch{Size: 1}) || got.Parallel() {
		t.Errorf("none: %+v, %v; want one process", got, err)
	}
	_, err = LaunchOf("mpi", torchrun)
	var se *setting.Error
	if !errors.As(err, &se) || err.Error() != `launcher "mpi": want auto or none` {
		t.Errorf("mpi: %v, want a setting.Error naming the launcher", err)
	}
}

// TestDeviceFor: local rank → GPU, one GPU per process, too few GPUs.
func TestDeviceFor(t *testing.T) {
	l := Launch{Launcher: LaunchTorchrun, Rank: 5, Size: 8, LocalRank: 1}
	if d, err := DeviceFor(l, 4); d != 1 || err != nil {
		t.Errorf("local rank 1 of 4 GPUs: %d, %v", d, err)
	}
	if d, err := DeviceFor(l, 1); d != 0 || err != nil {
		t.Errorf("one visible GPU: %d, %v", d, err)
	}
	l.LocalRank = 4
	if _, err := DeviceFor(l, 4); err == nil || !strings.Contains(err.Error(), "local rank 4 has no GPU of its own: 4 visible") {
		t.Errorf("local rank 4 of 4 GPUs: %v", err)
	}
	// two ranks of a node and one GPU: shared, unless each process was
	// given its own (CUDA_VISIBLE_DEVICES)
	l.LocalRank, l.LocalSize = 1, 2
	t.Setenv("CUDA_VISIBLE_DEVICES", "")
	if _, err := DeviceFor(l, 1); err == nil || !strings.Contains(err.Error(), "2 ranks on this node share its one visible GPU") {
		t.Errorf("2 local ranks, one GPU: %v", err)
	}
	t.Setenv("CUDA_VISIBLE_DEVICES", "3")
	if d, err := DeviceFor(l, 1); d != 0 || err != nil {
		t.Errorf("2 local ranks, each given its GPU: %d, %v", d, err)
	}
}

// TestDetectEdges: a PMIx launch without SLURM's task count is parallel
// (MPI_Init tells the size); sizes beyond MaxRanks are refused, not
// allocated.
func TestDetectEdges(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	l, err := Detect(env("PMIX_RANK", "1"))
	if err != nil || l.Launcher != LaunchMPI || !l.Parallel() {
		t.Errorf("PMIX_RANK alone: %+v, %v; want an MPI launch, parallel", l, err)
	}
	for _, big := range []string{"9223372036854775807", "1048577"} {
		if _, err := Detect(env("WORLD_SIZE", big, "RANK", "0", "MASTER_ADDR", "h", "MASTER_PORT", "1")); err == nil ||
			!strings.Contains(err.Error(), "WORLD_SIZE") {
			t.Errorf("WORLD_SIZE=%s: %v", big, err)
		}
	}
}

// freeAddr is a localhost address with a free port.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRendezvous: rank 0's bytes reach every rank; a rank whose process
// ends without closing is reported lost to every other rank, by number;
// a rank that never comes is named in rank 0's timeout.
func TestRendezvous(t *testing.T) {
	addr := freeAddr(t)
	const size = 4
	zs := make([]*rendezvous, size)
	got := make([][]byte, size)
	errs := make([]error, size)
	lost := make([]chan error, size)
	var wg sync.WaitGroup
	for r := size - 1; r >= 0; r-- { // rank 0 last: the others wait for it
		lost[r] = make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var payload []byte
			if r == 0 {
				payload = []byte("nccl unique id")
			}
			zs[r], got[r], errs[r] = rendezvousAt(addr, r, size, payload, 10*time.Second, func(err error) { lost[r] <- err })
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	for r := range zs {
		if errs[r] != nil || string(got[r]) != "nccl unique id" {
			t.Fatalf("rank %d: %q, %v", r, got[r], errs[r])
		}
	}
	zs[2].up.Close() // rank 2's process dies: its connection closes without a goodbye
	for _, r := range []int{0, 1, 3} {
		select {
		case err := <-lost[r]:
			if !strings.Contains(err.Error(), "rank 2's process ended without finishing") {
				t.Errorf("rank %d learnt: %v", r, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("rank %d did not learn that rank 2 was lost", r)
		}
	}
	for _, z := range zs {
		z.close()
	}

	// a rank that never comes
	addr = freeAddr(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := rendezvousAt(addr, 0, 3, []byte("id"), 300*time.Millisecond, nil)
		done <- err
	}()
	z1, _, err := rendezvousAt(addr, 1, 3, nil, 5*time.Second, nil)
	if err == nil {
		t.Fatal("rank 1 got an answer from a rendezvous missing rank 2")
	}
	if z1 != nil {
		z1.close()
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "rank(s) 2 did not reach the rendezvous") || !errors.Is(err, ErrTimeout) {
		t.Errorf("rank 0: %v, want a timeout naming rank 2", err)
	}
}

// TestOpenMPIABI compiles a C program against Open MPI's own mpi.h
// (Debian's libopenmpi-dev) that checks what mpi.go declares by hand:
// handles are pointers, the predefined ones the addresses of the
// library's ompi_mpi_* objects, MPI_STATUS_IGNORE is NULL and
// MPI_THREAD_SERIALIZED is 2.
func TestOpenMPIABI(t *testing.T) {
	mpicc, err := exec.LookPath("mpicc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mpicc not found in CI (CI=true): scripts/setup.sh installs Debian's libopenmpi-dev")
		}
		t.Skip("mpicc not found: apt-get install libopenmpi-dev")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "abi.c")
	os.WriteFile(src, []byte(`#include <mpi.h>
#include <stdio.h>
_Static_assert(sizeof(MPI_Comm) == sizeof(void*), "MPI_Comm is a pointer");
_Static_assert(sizeof(MPI_Datatype) == sizeof(void*), "MPI_Datatype is a pointer");
_Static_assert(sizeof(MPI_Request) == sizeof(void*), "MPI_Request is a pointer");
_Static_assert(sizeof(MPI_Errhandler) == sizeof(void*), "MPI_Errhandler is a pointer");
_Static_assert(MPI_THREAD_SERIALIZED == 2, "MPI_THREAD_SERIALIZED");
_Static_assert(MPI_SUCCESS == 0, "MPI_SUCCESS");
int main(void) {
	int ok = (void*)MPI_COMM_WORLD == (void*)&ompi_mpi_comm_world && (void*)MPI_BYTE == (void*)&ompi_mpi_byte &&
		(void*)MPI_ERRORS_RETURN == (void*)&ompi_mpi_errors_return && MPI_STATUS_IGNORE == NULL;
	printf("%s\n", ok ? "ok" : "mismatch");
	return !ok;
}
`), 0o644)
	bin := filepath.Join(dir, "abi")
	if out, err := exec.Command(mpicc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("mpicc: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("Open MPI's handles are not what mpi.go declares: %v %s", err, out)
	}
}

// TestMPITransport runs this test binary under mpirun with 4 and 3 ranks:
// through Open MPI every rank gets the batch tree's bits over the ranks
// (4; a fixed order with 3), vectors above one message's limit of the
// transport included, and rank 2's broadcast.
func TestMPITransport(t *testing.T) {
	if os.Getenv("PROXYKIT_MPI_WORKER") == "1" {
		if err := mpiWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mpirun not found in CI (CI=true): scripts/setup.sh installs Debian's openmpi-bin")
		}
		t.Skip("mpirun not found: apt-get install openmpi-bin")
	}
	for _, n := range []int{4, 3} {
		cmd := exec.Command(mpirun, "--oversubscribe", "-np", fmt.Sprint(n), "-x", "PROXYKIT_MPI_WORKER", os.Args[0], "-test.run=^TestMPITransport$")
		cmd.Env = append(os.Environ(), "PROXYKIT_MPI_WORKER=1")
		if os.Geteuid() == 0 {
			cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mpirun -np %d: %v\n%s", n, err, out)
		}
	}
}

// mpiWorker is one rank of TestMPITransport.
func mpiWorker() error {
	c, err := OpenMPI(time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	c.(*p2pComm).t.(*mpiTransport).chunk = 4096 // messages of 4 KB: the large vector goes in chunks
	size, rank := c.Size(), c.Rank()
	input := func(r, n int) []float32 {
		rng := rand.New(rand.NewPCG(uint64(r), 7))
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20))
		}
		return x
	}
	for _, n := range []int{5, 100003} {
		x := input(rank, n)
		if err := c.AllReduceF32(x); err != nil {
			return err
		}
		all := make([][]float32, size)
		for r := range all {
			all[r] = input(r, n)
		}
		for i := range x {
			col := make([]float32, size)
			for r := range all {
				col[r] = all[r][i]
			}
			want := treeSum(col)
			if size&(size-1) != 0 { // the fold: rank r+q's values into rank r's first
				q := 2
				for j := 0; j+q < size; j++ {
					col[j] += col[j+q]
				}
				want = treeSum(col[:q])
			}
			if math.Float32bits(x[i]) != math.Float32bits(want) {
				return fmt.Errorf("rank %d of %d: value %d of %d is %g, want %g", rank, size, i, n, x[i], want)
			}
		}
	}
	b := make([]byte, 1000)
	if rank == 2 {
		for i := range b {
			b[i] = byte(i)
		}
	}
	if err := c.Broadcast(2, b); err != nil {
		return err
	}
	for i := range b {
		if b[i] != byte(i) {
			return fmt.Errorf("rank %d: broadcast byte %d is %d", rank, i, b[i])
		}
	}
	return nil
}

// TestRendezvousSilentConnection: a connection that never says hello (a
// port scanner, a health check) is given up after a quarter of the
// timeout; the ranks that come after it still meet.
func TestRendezvousSilentConnection(t *testing.T) {
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() {
		z, _, err := rendezvousAt(addr, 0, 2, []byte("id"), 4*time.Second, nil)
		if z != nil {
			z.close()
		}
		done <- err
	}()
	var silent net.Conn
	for i := 0; silent == nil && i < 100; i++ {
		silent, _ = net.Dial("tcp", addr)
		if silent == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if silent == nil {
		t.Fatal("rank 0 does not listen")
	}
	defer silent.Close()
	time.Sleep(100 * time.Millisecond) // rank 0 now waits for the silent connection's hello
	z1, got, err := rendezvousAt(addr, 1, 2, nil, 4*time.Second, nil)
	if err != nil || string(got) != "id" {
		t.Fatalf("rank 1 behind a silent connection: %q, %v", got, err)
	}
	z1.close()
	if err := <-done; err != nil {
		t.Errorf("rank 0 behind a silent connection: %v", err)
	}
}
