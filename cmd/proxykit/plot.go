package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/results"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/plots"
)

func newPlotCmd() *cobra.Command {
	var (
		output string
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "plot FILE... -o FIGURE.png",
		Short: "Draw accuracy against T (from eval --json) or a training curve (from a checkpoint or train --json)",
		Long: `plot draws a figure (PNG, SVG or PDF, by -o's extension) and writes its
numbers beside it as CSV (FIGURE.csv).

From the output of eval --timesteps LIST --json, one file per model: accuracy
(ANN, SNN strict, SNN ties), firing rate per IF layer and synaptic operations
per image against T, all models in the same panels — e.g. a converted SNN
beside a proxy-trained one. --label names them (default: the model file).

From a checkpoint written by train, or the lines train --json printed: the
training curve (test and train accuracy, loss) over the epochs.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("-o is required: the figure to write (.png, .svg or .pdf)")
			}
			if err := plots.CheckPath(output); err != nil {
				return err
			}
			if len(labels) > 0 && len(labels) != len(args) {
				return fmt.Errorf("--label: %d labels for %d files", len(labels), len(args))
			}
			var sweeps []results.Sweep
			var history []results.EpochStats
			for i, path := range args {
				sw, hist, err := readPlotInput(path)
				if err != nil {
					return err
				}
				if sw != nil {
					if len(labels) > 0 {
						sw.Model = labels[i]
					} else if sw.Model == "" {
						sw.Model = filepath.Base(path)
					}
					sweeps = append(sweeps, *sw)
				} else {
					history = append(history, hist...)
				}
			}
			if len(sweeps) > 0 && len(history) > 0 {
				return fmt.Errorf("give either evaluations (eval --json) or training logs, not both")
			}
			out := cmd.OutOrStdout()
			if len(sweeps) > 0 {
				if err := plots.Sweeps(output, sweeps); err != nil {
					return err
				}
			} else {
				title := filepath.Base(args[0])
				if len(labels) > 0 {
					title = labels[0]
				}
				if err := plots.Training(output, title, history); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "wrote %s and %s\n", output, plots.CSVPath(output))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "figure to write: .png, .svg or .pdf (its numbers go to the same name with .csv)")
	cmd.Flags().StringSliceVar(&labels, "label", nil, "legend names, one per file, comma-separated")
	return cmd
}

// readPlotInput reads an eval --json sweep, a checkpoint's history or
// train --json's lines.
func readPlotInput(path string) (*results.Sweep, []results.EpochStats, error) {
	dataDir, err := limits.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if checkpoint.Is(dataDir) {
		c, err := checkpoint.Decode(dataDir)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, c.Progress.History, nil
	}
	trimmed := bytes.TrimSpace(dataDir)
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err == nil {
		if _, ok := probe["points"]; ok {
			var sw results.Sweep
			if err := json.Unmarshal(trimmed, &sw); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			return &sw, nil, nil
		}
	}
	var hist []results.EpochStats
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var st results.EpochStats
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return nil, nil, fmt.Errorf("%s line %d: neither eval --json output nor a train --json epoch line: %v", path, line, err)
		}
		hist = append(hist, st)
	}
	if len(hist) == 0 {
		return nil, nil, fmt.Errorf("%s: nothing to plot (want eval --timesteps LIST --json output, a checkpoint or train --json lines)", path)
	}
	return nil, hist, nil
}
