// Package plots draws what proxykit measures — accuracy, firing rates and
// synaptic operations against the simulation length, and training curves —
// as PNG, SVG or PDF figures with gonum.org/v1/plot, and writes the same
// numbers as CSV so that every figure can be redrawn elsewhere.
package plots

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // PNG
	_ "gonum.org/v1/plot/vg/vgpdf" // PDF
	_ "gonum.org/v1/plot/vg/vgsvg" // SVG

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/results"
)

// Formats are the figure formats, by file extension.
var formats = map[string]string{".png": "png", ".svg": "svg", ".pdf": "pdf"}

// CheckPath reports whether path names a figure format this package
// writes, so that a command can refuse a bad name before any work.
func CheckPath(path string) error {
	if _, ok := formats[strings.ToLower(filepath.Ext(path))]; !ok {
		return fmt.Errorf("figure %s: the name must end in .png, .svg or .pdf", path)
	}
	return nil
}

// CSVPath is the CSV file written beside a figure: the same name with
// .csv for its extension.
func CSVPath(figure string) string {
	return strings.TrimSuffix(figure, filepath.Ext(figure)) + ".csv"
}

// palette is Okabe and Ito's colour-blind-safe palette.
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255}, color.RGBA{213, 94, 0, 255}, color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255}, color.RGBA{230, 159, 0, 255}, color.RGBA{86, 180, 233, 255},
	color.RGBA{0, 0, 0, 255}, color.RGBA{240, 228, 66, 255},
}

func colour(i int) color.Color { return palette[i%len(palette)] }

// dashes are the line styles, eight distinct ones (solid first).
var dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)},
	{vg.Points(14), vg.Points(4)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2), vg.Points(2), vg.Points(2)},
	{vg.Points(1), vg.Points(4)}, {vg.Points(14), vg.Points(3), vg.Points(4), vg.Points(3)}}

// line adds a polyline to p with a legend entry.
func line(p *plot.Plot, name string, xs, ys []float64, c color.Color, dash []vg.Length, points bool) error {
	xy := make(plotter.XYs, 0, len(xs))
	for i := range xs {
		if !math.IsNaN(ys[i]) && !math.IsInf(ys[i], 0) {
			xy = append(xy, plotter.XY{X: xs[i], Y: ys[i]})
		}
	}
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = c, vg.Points(1.5), dash
	p.Add(l)
	entry := []plot.Thumbnailer{l}
	if points {
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		s.Color, s.Radius = c, vg.Points(2)
		p.Add(s)
		entry = append(entry, s)
	}
	if name != "" {
		p.Legend.Add(name, entry...)
	}
	return nil
}

// newPlot makes a plot with a title, axis labels and a light grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Add(plotter.NewGrid())
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Left, p.Legend.Top = true, true // in its strip below the panel (save)
	return p
}

// stepsAxis makes p's x axis logarithmic in base 2 with integer labels,
// for simulation lengths from lo to hi.
func stepsAxis(p *plot.Plot, lo, hi int) {
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = pow2Ticks{}
	p.X.Min, p.X.Max = float64(lo)/1.15, float64(hi)*1.15
}

// pow2Ticks marks powers of two.
type pow2Ticks struct{}

// Ticks implements plot.Ticker.
func (pow2Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for v := 1.0; v <= hi; v *= 2 {
		if v >= lo {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return ticks
}

// legendGap is the space between a panel's x axis label and its legend.
const legendGap = 2 * vg.Millimeter

// legendHeight is the height of p's legend, drawn as a strip below the
// panel (0 when it has no entries).
func legendHeight(p *plot.Plot) vg.Length {
	if p == nil {
		return 0
	}
	r := p.Legend.Rectangle(draw.Canvas{})
	if h := r.Max.Y - r.Min.Y; h > 0 {
		return h + legendGap
	}
	return 0
}

// layout places a grid of plots (rows of equal length) on dc, with a
// strip at the bottom of each row's tiles as tall as the row's tallest
// legend: each plot's legend goes in that strip, left-aligned with its
// data area, outside the area where the curves are drawn, so that it
// cannot cover them. It returns each plot's canvas and its legend's.
func layout(rows [][]*plot.Plot, dc draw.Canvas) (plots, legends [][]draw.Canvas) {
	cols := len(rows[0])
	strips := make([]vg.Length, len(rows))
	for i, row := range rows {
		for _, p := range row {
			strips[i] = max(strips[i], legendHeight(p))
		}
	}
	tiles := draw.Tiles{Rows: len(rows), Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	aligned := plot.Align(rows, tiles, dc)
	plots, legends = make([][]draw.Canvas, len(rows)), make([][]draw.Canvas, len(rows))
	for i, row := range rows {
		plots[i], legends[i] = make([]draw.Canvas, cols), make([]draw.Canvas, cols)
		for j, p := range row {
			c := aligned[i][j]
			plots[i][j] = draw.Crop(c, 0, 0, strips[i], 0)
			if p == nil {
				continue
			}
			data := p.DataCanvas(plots[i][j])
			legend := c
			legend.Min.X, legend.Max.Y = data.Min.X, c.Min.Y+strips[i]-legendGap
			legends[i][j] = legend
		}
	}
	return plots, legends
}

// save draws a grid of plots (rows of equal length) into one figure of
// the given size per panel, each panel's legend in a strip below it, the
// format chosen by the file's extension, and writes it and the CSV
// records beside it: both or neither.
func save(path string, rows [][]*plot.Plot, panelW, panelH vg.Length, records [][]string) error {
	format, ok := formats[strings.ToLower(filepath.Ext(path))]
	if !ok {
		return CheckPath(path)
	}
	cols := len(rows[0])
	w, h := panelW*vg.Length(cols), panelH*vg.Length(len(rows))
	for _, row := range rows {
		var strip vg.Length
		for _, p := range row {
			strip = max(strip, legendHeight(p))
		}
		h += strip
	}
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return fmt.Errorf("figure %s: %w", path, err)
	}
	dc := draw.New(c)
	canvases, legendCanvases := layout(rows, dc)
	for i, row := range rows {
		for j, p := range row {
			if p == nil {
				continue
			}
			legend := p.Legend
			p.Legend = plot.NewLegend()
			p.Draw(canvases[i][j])
			p.Legend = legend
			legend.Draw(legendCanvases[i][j])
		}
	}
	var fig, table bytes.Buffer
	if _, err := c.WriteTo(&fig); err != nil {
		return fmt.Errorf("figure %s: %w", path, err)
	}
	if err := csv.NewWriter(&table).WriteAll(records); err != nil {
		return fmt.Errorf("%s: %w", CSVPath(path), err)
	}
	p1, err := atomicfile.Prepare(path, fig.Bytes())
	if err != nil {
		return err
	}
	p2, err := atomicfile.Prepare(CSVPath(path), table.Bytes())
	if err != nil {
		p1.Abort()
		return err
	}
	if err := p1.Commit(); err != nil {
		p2.Abort()
		return err
	}
	return p2.Commit()
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }

// Label is a sweep's name in legends: its Model, or "model i".
func Label(s results.Sweep, i int) string {
	if s.Model != "" {
		return s.Model
	}
	return fmt.Sprintf("model %d", i+1)
}
