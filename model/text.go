package model

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// Printable escapes the control characters of text read from a file
// (\x1b and the like), so that a hostile file cannot drive a terminal.
func Printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Notes are what the reader had to assume about the file (a PyTorch
// module's children applied in order, say), or found worth saying.
func (m *Model) Notes() []string {
	switch {
	case m.ONNX != nil:
		return m.ONNX.Notes
	case m.PT != nil:
		return m.PT.Notes
	case m.NIR != nil:
		return m.NIR.Notes
	}
	return nil
}

// WriteSummary writes what the file at path holds — its format and
// producer, a checkpoint's run and notes — then its layers (WriteLayers)
// and the reader's notes, text from the file escaped (Printable).
func (m *Model) WriteSummary(w io.Writer, path string) error {
	if m == nil {
		return errNoModel
	}
	if w == nil {
		return fmt.Errorf("%s: no writer to write the summary to (nil)", path)
	}
	if o := m.ONNX; o != nil {
		fmt.Fprintf(w, "%s: ONNX opset %d, IR version %d, producer %s %s\n", path, o.Opset, o.IRVersion,
			Printable(fmt.Sprintf("%q", o.Producer)), Printable(o.ProducerVersion))
	}
	if p := m.PT; p != nil {
		fmt.Fprintf(w, "%s: PyTorch checkpoint, %s %s", path, p.Kind, Printable(p.Root))
		if p.Kind == "snn-module" {
			fmt.Fprintf(w, " (T=%d, v_th=%g, v_reset=%g; its BN statistics are the SNN's)", p.SNN.Timesteps, p.SNN.Threshold, p.SNN.Reset)
		}
		fmt.Fprintln(w)
	}
	if n := m.NIR; n != nil {
		producer := n.Producer
		if producer == "" {
			producer = "an unnamed producer"
		}
		fmt.Fprintf(w, "%s: NIR graph, version %s, from %s (v_th=%g, v_reset=%g", path, Printable(n.Version), Printable(producer), n.SNN.Threshold, n.SNN.Reset)
		if n.SNN.Timesteps > 0 {
			fmt.Fprintf(w, ", T=%d", n.SNN.Timesteps)
		}
		fmt.Fprintln(w, "): the ANN whose SNN it is")
	}
	if c := m.Checkpoint; c != nil {
		s := c.Settings
		charge := ""
		if s.InitialCharge != 0 {
			charge = fmt.Sprintf(", initial charge %g", s.InitialCharge)
		}
		fmt.Fprintf(w, "%s: proxykit checkpoint after %d epochs (%s, T=%d, v_th=%g, v_reset=%g%s)\n", path,
			c.Progress.Epoch, Printable(s.Dataset), s.Timesteps, s.Threshold, s.Reset, charge)
		for _, k := range slices.Sorted(maps.Keys(c.Notes)) {
			fmt.Fprintf(w, "  %s: %s\n", Printable(k), Printable(c.Notes[k]))
		}
	}
	if err := WriteLayers(w, m.ANN); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, n := range m.Notes() {
		if _, err := fmt.Fprintln(w, "note:", Printable(n)); err != nil {
			return err
		}
	}
	return nil
}

// WriteLayers writes a network's layers as a table: operation, inputs (of
// a branching network), output shape, parameters, what each becomes in
// the SNN.
func WriteLayers(w io.Writer, net *nn.Network) error {
	if w == nil {
		return fmt.Errorf("no writer to write the layers to (nil)")
	}
	shapes, err := net.Shapes()
	if err != nil {
		return err
	}
	out, err := net.OutputShape()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "input [B %s\n\n", nn.ShapeString(net.InputShape)[1:])
	roles := spiking.Role(net)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	graph := !net.IsChain()
	reads := func(i int) string { // a branching network's inputs of layer i
		if !graph {
			return ""
		}
		var s []string
		for _, j := range net.InputsOf(i) {
			if j < 0 {
				s = append(s, "input")
			} else {
				s = append(s, fmt.Sprint(j))
			}
		}
		return strings.Join(s, ",") + "\t"
	}
	if graph {
		fmt.Fprintln(tw, "#\tlayer\top\treads\toutput\tparams\tSNN\tdetails")
	} else {
		fmt.Fprintln(tw, "#\tlayer\top\toutput\tparams\tSNN\tdetails")
	}
	for i, l := range net.Layers {
		np := 0
		for _, p := range l.Params() {
			np += len(p.Data)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s%s\t%d\t%s\t%s\n", i, Printable(nn.NameOf(l)), nn.KindOf(l), reads(i), nn.ShapeString(shapes[i]), np, roles[i], l.Info().Summary)
	}
	last := ""
	if graph {
		last = fmt.Sprint(len(net.Layers)-1) + "\t"
	}
	fmt.Fprintf(tw, "%d\toutput\t\t%s%s\t0\tIF (counts over T)\t\n", len(net.Layers), last, nn.ShapeString(out))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%d layers, %d parameters\n", len(net.Layers), net.ParamCount())
	return err
}

// Metadata says where the model comes from, for the files exported from
// it: proxykit.source (path) and, from a checkpoint, the training settings
// (JSON) and the epochs trained.
func (m *Model) Metadata(path string) map[string]string {
	meta := map[string]string{"proxykit.source": path}
	if ck := m.Checkpoint; ck != nil {
		b, _ := json.Marshal(ck.Settings) // read from JSON: they encode again
		meta["proxykit.training_settings"] = string(b)
		meta["proxykit.epochs_trained"] = fmt.Sprint(ck.Progress.Epoch)
	}
	return meta
}

// Input reads a batch of the model's inputs [B,C,H,W] from a .npy file:
// float32 or float64 values, or uint8 pixels with scaleUint8 (divided by
// 255; used raw, 0–255 would silently be the wrong input). It refuses
// another type, a shape the network does not take and values that are
// not finite.
func (m *Model) Input(path string, scaleUint8 bool) (*nn.Tensor, error) {
	if m == nil {
		return nil, errNoModel
	}
	x, err := npy.ReadFile(path, scaleUint8)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(x.Dtype, "f4") || strings.HasSuffix(x.Dtype, "f8"):
	case strings.HasSuffix(x.Dtype, "u1") && !scaleUint8:
		return nil, setting.Errorf("%s holds uint8 values: pass %s to divide them by 255 (pixels to [0, 1]), or save float32", path, setting.ScaleUint8)
	case !strings.HasSuffix(x.Dtype, "u1"):
		return nil, setting.Errorf("%s holds %s values; the input is float32 or float64 (or uint8 with %s)", path, x.Dtype, setting.ScaleUint8)
	}
	if err := m.ANN.CheckInput(x.Shape); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := nn.CheckFinite("the input "+path, x.Data); err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: x.Shape, Data: x.Data}, nil
}
