package contract_test

import (
	"errors"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Entries of lower: nil networks, zero SNNs, capacities and steps below
// 1, nodes with nil or zero layers or inputs out of range, rewrite rules
// that lie about their nodes, executors used before they are made.

// tinySNN is the tiny network's body and its SNN as lower reads it.
func tinySNN(c *C) (*nn.Network, lower.SNN) {
	net, snn := tinyNet(c.t)
	body, _ := net.Body()
	return body, snn.Lowering()
}

// tinyExec is an executor of the tiny network with a backward pass, on a
// CPU, and the CPU.
func tinyExec(c *C) (*lower.Executor, compute.Backend) {
	net, _ := tinyNet(c.t)
	be := compute.NewCPU()
	if err := net.Bind(be); err != nil {
		c.t.Fatal(err)
	}
	e, err := lower.NewExecutor(be, net, lower.Options{Capacity: 2, Backward: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return e, be
}

func init() {
	opt := lower.Options{Capacity: 2}
	sopt := func(steps int) lower.SNNOptions { return lower.SNNOptions{Options: opt, Steps: steps} }
	entries["lower.ANN"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil network", func() error { _, err := lower.ANN(nil, opt); return err })
		c.Err("capacity 0", func() error { _, err := lower.ANN(net, lower.Options{}); return err })
		c.Err("zero network", func() error { _, err := lower.ANN(&nn.Network{}, opt); return err })
		c.Err("a nil layer", func() error {
			_, err := lower.ANN(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{nil}}, opt)
			return err
		})
		c.Err("a zero Linear", func() error {
			_, err := lower.ANN(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{&nn.Linear{}}}, opt)
			return err
		})
		c.Err("node 99 to keep", func() error { _, err := lower.ANN(net, lower.Options{Capacity: 1, Keep: []int{99}}); return err })
		c.Err("capacity 2^62", func() error { _, err := lower.ANN(net, lower.Options{Capacity: huge}); return err })
		c.Err("a rule whose nodes go nowhere", func() error {
			bad := lower.Rule{Name: "liar", Graph: func(nodes []lower.Node) ([]lower.Node, []int, int, error) { return nil, nil, 0, nil }}
			_, err := lower.ANN(net, lower.Options{Capacity: 1, Rules: []lower.Rule{bad}})
			return err
		})
		c.Err("a rule that moves a node beyond the nodes", func() error {
			bad := lower.Rule{Name: "liar", Graph: func(nodes []lower.Node) ([]lower.Node, []int, int, error) {
				at := make([]int, len(nodes))
				at[0] = 99
				return nodes, at, 1, nil
			}}
			_, err := lower.ANN(net, lower.Options{Capacity: 1, Rules: []lower.Rule{bad}})
			return err
		})
		c.Ok("the tiny network with its backward pass", func() error { _, err := lower.ANN(net, lower.Options{Capacity: 2, Backward: true}); return err })
	}
	entries["lower.NodesOf"] = func(c *C) {
		c.NoPanic("nil, zero network", func() { c.Check(lower.NodesOf(nil) == nil, "nodes of no network"); lower.NodesOf(&nn.Network{}) })
	}
	entries["lower.Node.Kind"] = func(c *C) { c.NoPanic("zero node", func() { lower.Node{}.Kind() }) }
	entries["lower.Node.Name"] = func(c *C) { c.NoPanic("zero node", func() { lower.Node{}.Name() }) }
	entries["lower.Fold"] = func(c *C) {
		bn := func() *nn.BatchNorm2d {
			return &nn.BatchNorm2d{Gamma: nn.NewParam("g", ones(2), 2), Beta: nn.NewParam("b", ones(2), 2), RunningMean: ones(2), RunningVar: ones(2), Eps: 1e-5}
		}
		c.Err("a nil layer", func() error { _, _, _, err := lower.Fold([]lower.Node{{Inputs: []int{-1}}}); return err })
		c.Err("inputs out of range", func() error {
			_, _, _, err := lower.Fold([]lower.Node{{Layer: &nn.ReLU{}, Inputs: []int{5}}, {Layer: &nn.ReLU{}, Inputs: []int{-7}}})
			return err
		})
		c.Err("a zero BatchNorm", func() error {
			_, _, _, err := lower.Fold([]lower.Node{{Layer: &nn.BatchNorm2d{}, Inputs: []int{-1}}})
			return err
		})
		c.Err("a BatchNorm of ε 0", func() error {
			b := bn()
			b.Eps = 0
			_, _, _, err := lower.Fold([]lower.Node{{Layer: b, Inputs: []int{-1}}})
			return err
		})
		c.NoPanic("a zero convolution, then a BatchNorm (not folded into it: the lowering refuses it)", func() {
			lower.Fold([]lower.Node{{Layer: &nn.Conv2d{}, Inputs: []int{-1}}, {Layer: bn(), Inputs: []int{0}}})
		})
		c.NoPanic("a convolution with a weight shorter than its shape, then a BatchNorm", func() {
			conv := &nn.Conv2d{Weight: nn.NewParam("w", ones(1), 2, 1, 1, 1), SH: 1, SW: 1, DH: 1, DW: 1}
			lower.Fold([]lower.Node{{Layer: conv, Inputs: []int{-1}}, {Layer: bn(), Inputs: []int{0}}})
		})
		c.Ok("nil", func() error { _, _, _, err := lower.Fold(nil); return err })
	}
	entries["lower.FoldSNN"] = func(c *C) {
		_, s := tinySNN(c)
		c.Ok("zero SNN", func() error { _, err := lower.FoldSNN(lower.SNN{}); return err })
		c.Err("a static part longer than the SNN", func() error { _, err := lower.FoldSNN(lower.SNN{Static: 5}); return err })
		c.Err("a static part of -1", func() error { t := s; t.Static = -1; _, err := lower.FoldSNN(t); return err })
		c.Ok("the tiny network's SNN", func() error { _, err := lower.FoldSNN(s); return err })
	}
	entries["lower.SNN.StartPotential"] = func(c *C) {
		_, s := tinySNN(c)
		c.NoPanic("zero SNN, zero node", func() { c.Check(lower.SNN{}.StartPotential(lower.Node{}) == 0, "not 0") })
		c.NoPanic("negative, huge and NaN charges", func() {
			for _, q := range []float32{-1, math.MaxFloat32, float32(math.NaN())} {
				t := s
				t.InitialCharge = q
				t.StartPotential(s.Nodes[len(s.Nodes)-1])
				if _, err := lower.Simulation(t, lower.SNNOptions{Options: lower.Options{Capacity: 2}, Steps: 1}); err != nil {
					c.Check(err.Error() != "", "an empty error")
				}
			}
		})
	}
	entries["lower.FoldBatchNorm"] = func(c *C) {
		c.NoPanic("its Graph on nil", func() { lower.FoldBatchNorm().Graph(nil) })
	}
	entries["lower.Rules"] = func(c *C) { c.NoPanic("", func() { c.Check(len(lower.Rules()) > 0, "no rules") }) }
	entries["lower.Simulation"] = func(c *C) {
		_, s := tinySNN(c)
		c.Err("zero SNN, zero options", func() error { _, err := lower.Simulation(lower.SNN{}, lower.SNNOptions{}); return err })
		c.Err("steps 0", func() error { _, err := lower.Simulation(s, sopt(0)); return err })
		c.Err("steps beyond T", func() error { _, err := lower.Simulation(s, sopt(huge)); return err })
		c.Err("nodes with a nil layer", func() error {
			t := s
			t.Nodes = append([]lower.Node{{IF: false, Inputs: []int{-1}}}, s.Nodes[1:]...)
			_, err := lower.Simulation(t, sopt(1))
			return err
		})
		c.Err("an IF node of two inputs", func() error {
			t := s
			t.Nodes = []lower.Node{{Layer: &nn.ReLU{}, IF: true, Inputs: []int{-1, -1}}}
			_, err := lower.Simulation(t, sopt(1))
			return err
		})
		c.Err("capacity 2^62", func() error {
			_, err := lower.Simulation(s, lower.SNNOptions{Options: lower.Options{Capacity: huge}, Steps: 1})
			return err
		})
		c.Ok("the tiny network's SNN, rates and synaptic operations", func() error {
			_, err := lower.Simulation(s, lower.SNNOptions{Options: opt, Steps: 3, Rates: true, SynOps: true})
			return err
		})
	}
	for _, f := range []string{"Step", "Predict", "StepListing", "StepPrograms"} {
		call := func(body *nn.Network, s lower.SNN, o lower.SNNOptions) error {
			var err error
			switch f {
			case "Step":
				_, err = lower.Step(body, s, o)
			case "Predict":
				_, err = lower.Predict(body, s, o)
			case "StepListing":
				_, err = lower.StepListing(body, s, o)
			case "StepPrograms":
				_, _, err = lower.StepPrograms(body, s, o)
			}
			return err
		}
		entries["lower."+f] = func(c *C) {
			body, s := tinySNN(c)
			c.Err("nil network", func() error { return call(nil, s, sopt(1)) })
			c.Err("zero network, zero SNN", func() error { return call(&nn.Network{}, lower.SNN{}, lower.SNNOptions{}) })
			c.Err("a network whose output is not classes", func() error {
				return call(&nn.Network{InputShape: []int{1, 28, 28}, Layers: []nn.Layer{&nn.ReLU{}}}, s, sopt(1))
			})
			c.Ok("the tiny network", func() error { return call(body, s, sopt(5)) })
		}
	}
	entries["lower.Plan"] = func(c *C) {
		net, snn := tinyNet(c.t)
		c.Err("nil network, training", func() error { _, _, err := lower.Plan(nil, snn.Lowering(), true, 1, 1, nil); return err })
		c.Err("zero SNN, inference", func() error { _, _, err := lower.Plan(net, lower.SNN{}, false, 1, 1, nil); return err })
		c.Err("batch -1", func() error { _, _, err := lower.Plan(net, snn.Lowering(), false, -1, 1, nil); return err })
		c.Ok("steps -5 (one at a time)", func() error { _, _, err := lower.Plan(net, snn.Lowering(), false, 2, -5, nil); return err })
		c.Ok("training", func() error { _, _, err := lower.Plan(net, snn.Lowering(), true, 2, 3, nil); return err })
		c.Ok("training, surrogate", func() error {
			_, _, err := lower.Plan(net, snn.Lowering(), true, 2, 3, &lower.Surrogate{Alpha: 4})
			return err
		})
		c.Err("zero SNN, surrogate", func() error {
			_, _, err := lower.Plan(net, lower.SNN{}, true, 2, 3, &lower.Surrogate{Alpha: 4})
			return err
		})
	}
	entries["lower.Optimizer"] = func(c *C) {
		c.Err("nil moments, nil settings, a nil parameter: its runs fail", func() error {
			l := lower.Optimizer([]*nn.Param{nil, nn.NewParam("w", ones(2), 2)}, nil, nil)
			return runLowered(l.Program)
		})
		c.Ok("nothing", func() error { _, err := lower.Optimizer(nil, nil, nil).Plan(); return err })
	}

	// Lowered
	zeroL := func() *lower.Lowered { return &lower.Lowered{} }
	entries["lower.Lowered.List"] = func(c *C) {
		c.Err("zero lowered", func() error { _, err := zeroL().List(1); return err })
		c.Err("batch beyond capacity", func() error {
			_, s := tinySNN(c)
			l, err := lower.Simulation(s, sopt(3))
			if err != nil {
				return nil
			}
			_, err = l.List(huge)
			return err
		})
	}
	entries["lower.Lowered.Repeats"] = func(c *C) {
		c.NoPanic("zero lowered; an SNN of 0 steps at once", func() {
			zeroL().Repeats(0)
			(&lower.Lowered{SNN: &lower.SNNSlots{Timesteps: 5}}).Repeats(0)
		})
	}
	entries["lower.Lowered.Runs"] = func(c *C) {
		c.NoPanic("zero lowered; an SNN of 0 steps at once (it looped forever)", func() {
			zeroL().Runs(1)
			(&lower.Lowered{Program: &program.Program{Passes: []program.Pass{{}}}, SNN: &lower.SNNSlots{Timesteps: 5}}).Runs(1)
		})
	}

	// Executor
	zeroE := func() *lower.Executor { return &lower.Executor{} }
	nilE := (*lower.Executor)(nil)
	entries["lower.NewExecutor"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil backend", func() error { _, err := lower.NewExecutor(nil, net, opt); return err })
		c.Err("nil network", func() error { _, err := lower.NewExecutor(compute.NewCPU(), nil, opt); return err })
		c.Err("capacity 2^40", func() error {
			_, err := lower.NewExecutor(compute.NewCPU(), net, lower.Options{Capacity: 1 << 40})
			return err
		})
	}
	entries["lower.Executor.Forward"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilE.Forward(nn.Value{}); return err })
		c.Err("zero executor", func() error { _, err := zeroE().Forward(nn.Value{}); return err })
		e, be := tinyExec(c)
		c.Err("zero value", func() error { _, err := e.Forward(nn.Value{}); return err })
		c.Err("a value without a buffer", func() error { _, err := e.Forward(nn.Value{Shape: []int{1, 1, 28, 28}}); return err })
		c.Err("a value of another shape", func() error {
			b, _ := be.Alloc(2 * 784)
			_, err := e.Forward(nn.Value{Shape: []int{2, 784}, Buf: b})
			return err
		})
		c.Err("a batch beyond capacity", func() error {
			b, _ := be.Alloc(3 * 784)
			_, err := e.Forward(nn.Value{Shape: []int{3, 1, 28, 28}, Buf: b})
			return err
		})
		c.Err("a buffer shorter than the batch", func() error {
			b, _ := be.Alloc(784)
			_, err := e.Forward(nn.Value{Shape: []int{2, 1, 28, 28}, Buf: b})
			return err
		})
		c.Ok("two images", func() error {
			b, _ := be.Alloc(2 * 784)
			_, err := e.Forward(nn.Value{Shape: []int{2, 1, 28, 28}, Buf: b})
			return err
		})
	}
	entries["lower.Executor.Backward"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilE.Backward(nn.Value{}) })
		c.Err("zero executor", func() error { return zeroE().Backward(nn.Value{}) })
		e, be := tinyExec(c)
		c.Err("before any forward pass", func() error { return e.Backward(nn.Value{Shape: []int{1, 10}}) })
		b, _ := be.Alloc(2 * 784)
		y, _ := e.Forward(nn.Value{Shape: []int{2, 1, 28, 28}, Buf: b})
		c.Err("a gradient of another batch", func() error { return e.Backward(nn.Value{Shape: []int{1, 10}, Buf: y.Buf}) })
		c.Err("a gradient of another shape", func() error { return e.Backward(nn.Value{Shape: []int{2, 5}, Buf: y.Buf}) })
		c.Ok("the output as its gradient", func() error { return e.Backward(y) })
	}
	for _, m := range []string{"Capacity", "OutputShape", "NodeShape", "Output", "InputGrad", "Program", "Free"} {
		entries["lower.Executor."+m] = func(c *C) {
			e, _ := tinyExec(c)
			for _, x := range []*lower.Executor{zeroE(), e} {
				c.NoPanic("zero executor and one of the tiny network, nodes out of range", func() {
					switch m {
					case "Capacity":
						x.Capacity()
					case "OutputShape":
						x.OutputShape()
					case "NodeShape":
						c.Check(x.NodeShape(99) == nil && x.NodeShape(-5) != nil == (x == e), "NodeShape out of range")
					case "Output":
						x.Output(-1)
						x.Output(99)
						x.Output(0)
					case "InputGrad":
						x.InputGrad(-1)
						x.InputGrad(99)
						x.InputGrad(0)
					case "Program":
						x.Program()
					case "Free":
						x.Free()
						x.Free()
					}
				})
			}
		}
	}
	entries["lower.Forward"] = func(c *C) {
		net, _ := tinyNet(c.t)
		x, _ := nn.NewTensor(3, 1, 28, 28)
		c.Err("nil everything", func() error { _, err := lower.Forward(nil, nil, nil, -1); return err })
		c.Err("nil backend", func() error { _, err := lower.Forward(nil, net, x, 0); return err })
		c.Err("nil network", func() error { _, err := lower.Forward(compute.NewCPU(), nil, x, 0); return err })
		c.Err("a tensor of another shape", func() error {
			y, _ := nn.NewTensor(3, 784)
			_, err := lower.Forward(compute.NewCPU(), net, y, 0)
			return err
		})
		c.Err("a tensor whose data is not its shape's", func() error {
			_, err := lower.Forward(compute.NewCPU(), net, &nn.Tensor{Shape: []int{3, 1, 28, 28}}, 2)
			return err
		})
		c.Ok("three images, batch -1 (all at once)", func() error { _, err := lower.Forward(compute.NewCPU(), net, x, -1); return err })
	}
}

// runLowered loads p on a CPU and runs its first pass for one sample.
func runLowered(p *program.Program) error {
	if p == nil {
		return errors.New("no program")
	}
	cpu := compute.NewCPU()
	m := program.NewMachine(cpu)
	if err := m.Load(p); err != nil {
		return err
	}
	if err := m.Run(p, 0, program.Dims{N: 1, Steps: 1}); err != nil {
		return err
	}
	return cpu.Err()
}
