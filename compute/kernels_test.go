package compute

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// The oracle: testdata/kernels.json, PyTorch's outputs written by
// scripts/make_kernel_fixtures.py.

type arr struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

type kernelCase struct {
	Op              string  `json:"op"`
	Stride          []int   `json:"stride"`
	Pads            []int   `json:"pads"`
	Dilation        []int   `json:"dilation"`
	K               int     `json:"k"`
	S               int     `json:"s"`
	P               int     `json:"p"`
	Ceil            bool    `json:"ceil"`
	CountIncludePad bool    `json:"count_include_pad"`
	Eps             float32 `json:"eps"`
	Vth             float32 `json:"vth"`
	Vreset          float32 `json:"vreset"`
	X, W, B, Y      *arr
	DY, DX, DW, DB  *arr
	Gamma, Beta     *arr
	Mean, Var       *arr
	NewMean         *arr `json:"new_mean"`
	NewVar          *arr `json:"new_var"`
	DGamma          *arr `json:"dgamma"`
	DBeta           *arr `json:"dbeta"`
	LogY            *arr `json:"logy"`
	Grads           *arr
	Momentum        float32
	LR              float64   `json:"lr"`
	Betas           []float64 `json:"betas"`
	WeightDecay     float64   `json:"weight_decay"`
}

func loadCases(t *testing.T) []kernelCase {
	t.Helper()
	b, err := os.ReadFile("../testdata/kernels.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []kernelCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// closeTo checks got against want with a relative tolerance on the norm
// and an absolute one per element.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var num, den, worst float64
	for i := range got {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
		worst = math.Max(worst, math.Abs(d))
	}
	rel := math.Sqrt(num / math.Max(den, 1e-30))
	if rel > tol {
		t.Errorf("%s: relative error %.3g > %.3g (worst element off by %.3g)", what, rel, tol, worst)
	}
}

func TestKernelsAgainstPyTorch(t *testing.T) {
	cases := loadCases(t)
	if len(cases) < 10 {
		t.Fatalf("only %d kernel cases", len(cases))
	}
	for i, c := range cases {
		switch c.Op {
		case "conv":
			n := c.X.Shape[0]
			g := ConvGeom{C: c.X.Shape[1], H: c.X.Shape[2], W: c.X.Shape[3], O: c.W.Shape[0], KH: c.W.Shape[2],
				KW: c.W.Shape[3], SH: c.Stride[0], SW: c.Stride[1], PT: c.Pads[0], PL: c.Pads[1], PB: c.Pads[2],
				PR: c.Pads[3], DH: c.Dilation[0], DW: c.Dilation[1]}
			if g.OutH() != c.Y.Shape[2] || g.OutW() != c.Y.Shape[3] {
				t.Fatalf("case %d: conv output %dx%d, torch %v", i, g.OutH(), g.OutW(), c.Y.Shape)
			}
			var bias []float32
			if c.B != nil {
				bias = c.B.Data
			}
			out := make([]float32, len(c.Y.Data))
			Conv2dForward(g, n, c.X.Data, c.W.Data, bias, out)
			closeTo(t, "conv forward", out, c.Y.Data, 1e-5)
			dx := make([]float32, len(c.X.Data))
			dw := make([]float32, len(c.W.Data))
			var db []float32
			if c.B != nil {
				db = make([]float32, len(c.B.Data))
			}
			Conv2dBackward(g, n, c.X.Data, c.W.Data, c.DY.Data, dx, dw, db)
			closeTo(t, "conv dx", dx, c.DX.Data, 1e-5)
			closeTo(t, "conv dw", dw, c.DW.Data, 1e-5)
			if c.B != nil {
				closeTo(t, "conv db", db, c.DB.Data, 1e-5)
			}
		case "maxpool", "avgpool":
			g := PoolGeom{C: c.X.Shape[1], H: c.X.Shape[2], W: c.X.Shape[3], KH: c.K, KW: c.K, SH: c.S, SW: c.S,
				PT: c.P, PL: c.P, PB: c.P, PR: c.P, Ceil: c.Ceil}
			if g.OutH() != c.Y.Shape[2] || g.OutW() != c.Y.Shape[3] {
				t.Fatalf("case %d: %s output %dx%d, torch %v", i, c.Op, g.OutH(), g.OutW(), c.Y.Shape)
			}
			out := make([]float32, len(c.Y.Data))
			dx := make([]float32, len(c.X.Data))
			if c.Op == "maxpool" {
				argmax := make([]int32, len(out))
				MaxPool2dForward(g, c.X.Shape[0], c.X.Data, out, argmax)
				MaxPool2dBackward(g, c.X.Shape[0], argmax, c.DY.Data, dx)
			} else {
				AvgPool2dForward(g, c.X.Shape[0], c.CountIncludePad, c.X.Data, out)
				AvgPool2dBackward(g, c.X.Shape[0], c.CountIncludePad, c.DY.Data, dx)
			}
			closeTo(t, c.Op+" forward", out, c.Y.Data, 1e-6)
			// ties in the max-pool input: the gradient must go to the first maximum, as in PyTorch
			closeTo(t, c.Op+" backward", dx, c.DX.Data, 1e-6)
		case "bn_eval", "bn_train":
			n, ch, hw := c.X.Shape[0], c.X.Shape[1], c.X.Shape[2]*c.X.Shape[3]
			out := make([]float32, len(c.Y.Data))
			mean, invstd := append([]float32(nil), c.Mean.Data...), make([]float32, ch)
			train := c.Op == "bn_train"
			if train {
				variance := make([]float32, ch)
				BatchNormTrainForward(n, ch, hw, c.Eps, c.Gamma.Data, c.Beta.Data, c.X.Data, out, mean, variance, invstd)
				// running statistics: momentum 0.1, unbiased variance
				m := float32(n * hw)
				rm, rv := make([]float32, ch), make([]float32, ch)
				for i := range rm {
					rm[i] = (1-c.Momentum)*c.Mean.Data[i] + c.Momentum*mean[i]
					rv[i] = (1-c.Momentum)*c.Var.Data[i] + c.Momentum*variance[i]*m/(m-1)
				}
				closeTo(t, "bn running mean", rm, c.NewMean.Data, 1e-6)
				closeTo(t, "bn running var", rv, c.NewVar.Data, 1e-6)
			} else {
				BatchNormInference(n, ch, hw, c.Eps, c.Gamma.Data, c.Beta.Data, c.Mean.Data, c.Var.Data, c.X.Data, out)
				for i := range invstd {
					invstd[i] = float32(1 / math.Sqrt(float64(c.Var.Data[i]+c.Eps)))
				}
			}
			closeTo(t, c.Op+" forward", out, c.Y.Data, 1e-6)
			dx, dg, dbeta := make([]float32, len(c.X.Data)), make([]float32, ch), make([]float32, ch)
			BatchNormBackward(n, ch, hw, train, c.Gamma.Data, mean, invstd, c.X.Data, c.DY.Data, dx, dg, dbeta)
			closeTo(t, c.Op+" dx", dx, c.DX.Data, 1e-5)
			closeTo(t, c.Op+" dgamma", dg, c.DGamma.Data, 1e-5)
			closeTo(t, c.Op+" dbeta", dbeta, c.DBeta.Data, 1e-5)
		case "linear":
			out := make([]float32, len(c.Y.Data))
			n, in, outF := c.X.Shape[0], c.X.Shape[1], c.W.Shape[0]
			LinearForward(n, in, outF, c.X.Data, c.W.Data, c.B.Data, out)
			closeTo(t, "linear", out, c.Y.Data, 1e-6)
			dx, dw, db := make([]float32, len(c.X.Data)), make([]float32, len(c.W.Data)), make([]float32, outF)
			LinearBackward(n, in, outF, c.X.Data, c.W.Data, c.DY.Data, dx, dw, db)
			closeTo(t, "linear dx", dx, c.DX.Data, 1e-6)
			closeTo(t, "linear dw", dw, c.DW.Data, 1e-6)
			closeTo(t, "linear db", db, c.DB.Data, 1e-6)
		case "adam":
			p := append([]float32(nil), c.X.Data...)
			m, v := make([]float32, len(p)), make([]float32, len(p))
			k := len(p)
			for step := 0; step < c.Grads.Shape[0]; step++ {
				AdamStep(p, c.Grads.Data[step*k:(step+1)*k], m, v, step+1, c.LR, c.Betas[0], c.Betas[1], float64(c.Eps), c.WeightDecay)
				closeTo(t, "adam step", p, c.Y.Data[step*k:(step+1)*k], 1e-6)
			}
		case "softmax":
			out := make([]float32, len(c.Y.Data))
			SoftmaxForward(c.X.Shape[0], c.X.Shape[1], false, c.X.Data, out)
			closeTo(t, "softmax", out, c.Y.Data, 1e-6)
			SoftmaxForward(c.X.Shape[0], c.X.Shape[1], true, c.X.Data, out)
			closeTo(t, "log-softmax", out, c.LogY.Data, 1e-6)
		case "if":
			steps, n := c.X.Shape[0], c.X.Shape[1]
			v := make([]float32, n)
			for j := range v {
				v[j] = c.Vreset
			}
			s := make([]float32, n)
			for step := 0; step < steps; step++ {
				IFStep(c.X.Data[step*n:(step+1)*n], v, s, c.Vth, c.Vreset)
				for j := range s {
					if s[j] != c.Y.Data[step*n+j] {
						t.Fatalf("IF step %d neuron %d: spike %g, torch %g", step, j, s[j], c.Y.Data[step*n+j])
					}
				}
			}
		case "layer": // layer-level backward passes, checked in package nn
		default:
			t.Fatalf("unknown case op %q", c.Op)
		}
	}
}

func TestGemmSkipsZerosExactly(t *testing.T) {
	// A spike matrix: the sparse path must give the dense result.
	m, n, k := 7, 5, 11
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		if i%3 == 0 {
			a[i] = 1
		}
	}
	for i := range b {
		b[i] = float32(i%7) - 3
	}
	c := make([]float32, m*n)
	GemmAccParallel(m, n, k, a, b, c)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var want float32
			for p := 0; p < k; p++ {
				want += a[i*k+p] * b[p*n+j]
			}
			if c[i*n+j] != want {
				t.Fatalf("C[%d,%d] = %g, want %g", i, j, c[i*n+j], want)
			}
		}
	}
}
