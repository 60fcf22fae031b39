package contract_test

import (
	"math"
	"os"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/nn"
)

// Entries of distributed.

// group1 is a group of one rank on the CPU, and its backend's share.
func group1(c *C) (*distributed.Group, *distributed.Backend) {
	comms, err := distributed.Local(1, time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	g, err := distributed.New(comms[0], compute.NewCPU(), distributed.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := g.Shard(compute.NewCPU())
	if err != nil {
		c.t.Fatal(err)
	}
	return g, b
}

func init() {
	bad := distributed.Launch{Launcher: distributed.LaunchTorchrun, Rank: 3, Size: 1 << 40, Master: "h:+1"}
	entries["distributed.Detect"] = func(c *C) {
		c.Err("nil", func() error { _, err := distributed.Detect(nil); return err })
		c.Err("WORLD_SIZE=2^62", func() error {
			_, err := distributed.Detect(func(k string) string {
				return map[string]string{"WORLD_SIZE": "4611686018427387904", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}[k]
			})
			return err
		})
		c.Err("RANK=-1", func() error {
			_, err := distributed.Detect(func(k string) string {
				return map[string]string{"WORLD_SIZE": "2", "RANK": "-1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}[k]
			})
			return err
		})
	}
	entries["distributed.LaunchOf"] = func(c *C) {
		c.Err("nil environment", func() error { _, err := distributed.LaunchOf(distributed.LauncherAuto, nil); return err })
		c.Err("empty launcher", func() error { _, err := distributed.LaunchOf("", os.Getenv); return err })
		c.Ok("none", func() error { _, err := distributed.LaunchOf(distributed.LauncherNone, nil); return err })
	}
	entries["distributed.DeviceFor"] = func(c *C) {
		l := distributed.Launch{Launcher: distributed.LaunchTorchrun, Size: 2, LocalRank: -1}
		c.Err("local rank -1", func() error { _, err := distributed.DeviceFor(l, 4); return err })
		l.LocalRank = 0
		c.Err("-1 GPUs", func() error { _, err := distributed.DeviceFor(l, -1); return err })
		c.Err("0 GPUs", func() error { _, err := distributed.DeviceFor(l, 0); return err })
	}
	entries["distributed.Launch.Parallel"] = func(c *C) {
		c.NoPanic("zero launch", func() { c.Check(!distributed.Launch{}.Parallel(), "the zero launch is parallel") })
	}
	entries["distributed.Launch.String"] = func(c *C) {
		c.NoPanic("zero launch, a bad one", func() { _ = distributed.Launch{}.String(); _ = bad.String() })
	}
	entries["distributed.Local"] = func(c *C) {
		c.Err("-1 ranks", func() error { _, err := distributed.Local(-1, time.Second); return err })
		c.Err("0 ranks", func() error { _, err := distributed.Local(0, time.Second); return err })
		c.Err("2^40 ranks", func() error { _, err := distributed.Local(1<<40, time.Second); return err })
		c.Err("timeout -1", func() error { _, err := distributed.Local(2, -1); return err })
	}
	entries["distributed.New"] = func(c *C) {
		comms, _ := distributed.Local(1, time.Second)
		c.Err("nil, nil", func() error { _, err := distributed.New(nil, nil, distributed.Options{}); return err })
		c.Err("nil backend", func() error { _, err := distributed.New(comms[0], nil, distributed.Options{}); return err })
		c.Err("timeout -1", func() error {
			_, err := distributed.New(comms[0], compute.NewCPU(), distributed.Options{Timeout: -1})
			return err
		})
		c.Err("timeout 2^62 ns", func() error {
			_, err := distributed.New(comms[0], compute.NewCPU(), distributed.Options{Timeout: math.MaxInt64})
			return err
		})
		c.Err("buckets of 2^62 bytes", func() error {
			_, err := distributed.New(comms[0], compute.NewCPU(), distributed.Options{BucketBytes: huge})
			return err
		})
		c.Err("BatchNorm statistics \"x\"", func() error {
			_, err := distributed.New(comms[0], compute.NewCPU(), distributed.Options{BatchNorm: "x"})
			return err
		})
	}
	entries["distributed.Open"] = func(c *C) {
		c.Err("zero launch, nil backend", func() error {
			_, err := distributed.Open(distributed.Launch{}, nil, distributed.Options{})
			return err
		})
		c.Err("2^40 ranks", func() error {
			_, err := distributed.Open(bad, compute.NewCPU(), distributed.Options{})
			return err
		})
		c.Err("nil backend", func() error {
			_, err := distributed.Open(distributed.Launch{Launcher: distributed.LaunchTorchrun, Size: 2, Master: "127.0.0.1:1"}, nil, distributed.Options{})
			return err
		})
	}
	entries["distributed.OpenMPI"] = func(c *C) {
		c.Err("timeout -1", func() error { _, err := distributed.OpenMPI(-1); return err })
		c.Err("timeout 0", func() error { _, err := distributed.OpenMPI(0); return err })
	}
	entries["distributed.MPILibrary"] = func(c *C) {
		c.NoPanic("", func() { c.Check(distributed.MPILibrary() != "", "no library named") })
	}
	entries["distributed.Split"] = func(c *C) {
		for _, a := range [][3]int{{-1, 2, 0}, {10, 0, 0}, {10, -4, 1}, {10, 4, 7}, {10, 4, -1}, {huge, huge, huge - 1}, {math.MaxInt, 3, 2}} {
			c.NoPanic("hostile sizes", func() {
				lo, hi := distributed.Split(a[0], a[1], a[2])
				c.Check(0 <= lo && lo <= hi && (a[0] < 0 || hi <= a[0]), "Split(%d, %d, %d) = [%d, %d)", a[0], a[1], a[2], lo, hi)
			})
		}
	}
	entries["distributed.MaxShare"] = func(c *C) {
		for _, a := range [][2]int{{-1, 2}, {10, 0}, {10, -3}, {huge, 1 << 40}} {
			c.NoPanic("hostile sizes", func() {
				m := distributed.MaxShare(a[0], a[1])
				c.Check(m >= 0, "MaxShare(%d, %d) = %d", a[0], a[1], m)
			})
		}
	}
	entries["distributed.ParsePort"] = func(c *C) {
		for _, s := range []string{"", "+80", "-1", "0", "65536", "99999999999999999999999", " 80", "٨٠"} {
			c.Err(s, func() error { _, err := distributed.ParsePort(s); return err })
		}
	}
	entries["distributed.BucketBytesOfMB"] = func(c *C) {
		for _, mb := range []int{-1, 0, 1 << 43, 1 << 44, math.MaxInt} {
			c.Err("hostile sizes", func() error { _, err := distributed.BucketBytesOfMB(mb); return err })
		}
	}
	entries["distributed.Agree"] = func(c *C) {
		c.Err("nil communicator", func() error { return distributed.Agree(nil, nil) })
		comms, _ := distributed.Local(1, time.Second)
		c.Ok("one rank, nil", func() error { return distributed.Agree(comms[0], nil) })
	}
	entries["distributed.Disagreement.Error"] = func(c *C) {
		c.NoPanic("zero value", func() { _ = (&distributed.Disagreement{}).Error() })
		c.NoPanic("ranks without values", func() { _ = (&distributed.Disagreement{Ranks: []int{1, 2}}).Error() })
	}

	// Group: nil receivers of methods with an error; zero values of the others.
	entries["distributed.Group.Close"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*distributed.Group)(nil).Close() })
		c.Err("zero group", func() error { return (&distributed.Group{}).Close() })
		g, _ := group1(c)
		c.Ok("a group of one", func() error { return g.Close() })
	}
	entries["distributed.Group.Shard"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := (*distributed.Group)(nil).Shard(compute.NewCPU()); return err })
		g, _ := group1(c)
		c.Err("nil backend", func() error { _, err := g.Shard(nil); return err })
	}
	entries["distributed.Group.Abort"] = func(c *C) {
		c.NoPanic("zero group, nil", func() { (&distributed.Group{}).Abort(nil) })
		g, _ := group1(c)
		c.NoPanic("a group of one, nil", func() { g.Abort(nil) })
	}
	for _, m := range []string{"Collectives", "Describe", "Host", "Launch", "Lost", "Options", "Rank", "Size"} {
		entries["distributed.Group."+m] = func(c *C) {
			g := &distributed.Group{}
			c.NoPanic("zero group", func() {
				switch m {
				case "Collectives":
					g.Collectives()
				case "Describe":
					c.Check(g.Describe() != "", "no description")
				case "Host":
					g.Host()
				case "Launch":
					g.Launch()
				case "Lost":
					g.Lost()
				case "Options":
					g.Options()
				case "Rank":
					g.Rank()
				case "Size":
					g.Size()
				}
			})
		}
	}

	// Backend: its zero value refuses every kernel through Err; a real
	// one refuses hostile sizes through Err.
	kernels := func(b *distributed.Backend) {
		b.SetShare(-1, -5, huge)
		b.ProxyLossGrad(-1, huge, nil, nil, nil)
		b.BatchNormStats(-1, -1, huge, huge, "sideways", nil, nil, nil)
		b.BatchNormUpdateRunning(-1, huge, 0, float32(math.NaN()), nil, nil, nil, nil)
		b.BatchNormBackward(-1, huge, -1, "sideways", true, -1, nil, nil, nil, nil, nil, nil, nil, nil, false)
		b.Conv2dBackward(compute.ConvGeom{}, -1, nil, nil, nil, nil, nil, nil, false)
		b.LinearBackward(-1, huge, huge, nil, nil, nil, nil, nil, nil, false)
		b.EndShare()
	}
	entries["distributed.Backend.AsElem"] = func(c *C) {
		c.NoPanic("nil and zero backends keep the buffer; a share of the emulated device gives a binary16 view", func() {
			b := compute.NewCPU()
			buf, _ := b.Alloc(4)
			c.Check((*distributed.Backend)(nil).AsElem(buf, compute.F16) == buf, "a nil backend changed the buffer")
			c.Check((&distributed.Backend{}).AsElem(buf, compute.F16) == buf, "a zero backend changed the buffer")
			be, err := cuda.Open(cuda.Options{Emulate: true})
			if err != nil {
				c.t.Fatal(err)
			}
			defer be.Close()
			g, _ := group1(c)
			share, err := g.Shard(be)
			if err != nil {
				c.t.Fatal(err)
			}
			h, _ := be.Alloc(4)
			c.Check(compute.ElemOf(share.AsElem(h, compute.F16)) == compute.F16, "no binary16 view through the share")
		})
	}
	entries["distributed.Backend.Convert"] = func(c *C) {
		c.Err("zero backend, then Err", func() error {
			b := &distributed.Backend{}
			b.Convert(nil, nil)
			return b.Err()
		})
		c.Err("a share of the CPU, which stores float32 only", func() error {
			g, _ := group1(c)
			share, err := g.Shard(compute.NewCPU())
			if err != nil {
				return err
			}
			x, _ := share.Alloc(2)
			share.Convert(x, x)
			return share.Err()
		})
	}
	for _, m := range []string{"SetShare", "EndShare", "ProxyLossGrad", "BatchNormStats", "BatchNormUpdateRunning", "BatchNormBackward", "Conv2dBackward", "LinearBackward"} {
		entries["distributed.Backend."+m] = func(c *C) {
			c.Err("zero backend, hostile sizes, then Err", func() error {
				b := &distributed.Backend{}
				kernels(b)
				return b.Err()
			})
			_, b := group1(c)
			c.Err("hostile sizes, then Err", func() error {
				kernels(b)
				return b.Err()
			})
		}
	}
	entries["distributed.Backend.Err"] = func(c *C) {
		c.Err("zero backend", func() error { return (&distributed.Backend{}).Err() })
		c.Err("nil receiver", func() error { return (*distributed.Backend)(nil).Err() })
	}
	entries["distributed.Backend.ReduceGradients"] = func(c *C) {
		c.Err("zero backend", func() error { return (&distributed.Backend{}).ReduceGradients() })
		c.Err("nil receiver", func() error { return (*distributed.Backend)(nil).ReduceGradients() })
		_, b := group1(c)
		c.Ok("a share of one rank, nothing watched", func() error { return b.ReduceGradients() })
	}
	entries["distributed.Backend.WatchGradients"] = func(c *C) {
		c.Err("zero backend, a nil parameter, then Err", func() error {
			b := &distributed.Backend{}
			b.WatchGradients([]*nn.Param{nil})
			return b.Err()
		})
		_, b := group1(c)
		c.Err("a nil parameter, then Err", func() error {
			b.WatchGradients([]*nn.Param{nil})
			return b.Err()
		})
	}
	for _, m := range []string{"Describe", "FreeScratch", "GradientBytes", "Group", "Inner", "ResetStats", "Stats"} {
		entries["distributed.Backend."+m] = func(c *C) {
			b := &distributed.Backend{}
			c.NoPanic("zero backend", func() {
				switch m {
				case "Describe":
					c.Check(b.Describe() != "", "no description")
				case "FreeScratch":
					b.FreeScratch()
				case "GradientBytes":
					b.GradientBytes()
				case "Group":
					b.Group()
				case "Inner":
					b.Inner()
				case "ResetStats":
					b.ResetStats()
				case "Stats":
					b.Stats()
				}
			})
		}
	}
}
