package plots

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/results"
)

// Read reads what plot draws from a file: an evaluation against T (eval
// --timesteps LIST --json's output), or a training history (a checkpoint,
// or the lines train --json printed). Exactly one of sweep and history is
// set.
func Read(path string) (sweep *results.Sweep, history []results.EpochStats, err error) {
	b, err := limits.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if checkpoint.Is(b) {
		c, err := checkpoint.Decode(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := CheckHistory(c.Progress.History); err != nil {
			return nil, nil, fmt.Errorf("%s: the checkpoint's history: %w", path, err)
		}
		return nil, c.Progress.History, nil
	}
	trimmed := bytes.TrimSpace(b)
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err == nil {
		if _, ok := probe["points"]; ok {
			var sw results.Sweep
			if err := json.Unmarshal(trimmed, &sw); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			if err := CheckSweep(sw); err != nil {
				return nil, nil, fmt.Errorf("%s: not a sweep of the SNN over T as JSON: %w", path, err)
			}
			return &sw, nil, nil
		}
	}
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
		err := dec.Decode(&st)
		if err == nil {
			err = hasEveryField(text, st)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s line %d: neither a sweep over T nor an epoch's statistics as JSON: %v", path, line, err)
		}
		history = append(history, st)
	}
	if len(history) == 0 {
		return nil, nil, fmt.Errorf("%s: nothing to plot (want a sweep over T as JSON, a checkpoint or epochs' statistics as JSON lines)", path)
	}
	if err := CheckHistory(history); err != nil {
		return nil, nil, fmt.Errorf("%s: not a training log (epochs' statistics as JSON lines): %w", path, err)
	}
	return nil, history, nil
}

// hasEveryField checks that a JSON object names every field v's type has
// (so that "{}" or "null" is not read as an epoch of zeros).
func hasEveryField(text string, v any) error {
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &got); err != nil || got == nil {
		return fmt.Errorf("not a JSON object")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(b, &want); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[k]; !ok {
			return fmt.Errorf("field %q is missing", k)
		}
	}
	return nil
}

// Files draws the figure path from files (Read): their sweeps over T in
// the same panels, each named by labels[i] if given, else by its own model
// name, else by its file's name; or the training curve of the one run a
// file logs, titled labels[0] or the file's name. It refuses both kinds
// together and two training logs.
func Files(path string, files, labels []string) error {
	if len(labels) > 0 && len(labels) != len(files) {
		return fmt.Errorf("%d labels for %d files", len(labels), len(files))
	}
	var sweeps []results.Sweep
	var history []results.EpochStats
	for i, f := range files {
		sw, hist, err := Read(f)
		if err != nil {
			return err
		}
		if sw == nil {
			if history != nil {
				return fmt.Errorf("%s is a second training log: a training curve shows one run; draw each into its own figure", f)
			}
			history = hist
			continue
		}
		if sw.Model == "" || len(labels) > 0 {
			sw.Model = filepath.Base(f)
			if len(labels) > 0 {
				sw.Model = labels[i]
			}
		}
		sweeps = append(sweeps, *sw)
	}
	switch {
	case len(sweeps) > 0 && len(history) > 0:
		return fmt.Errorf("give either sweeps over T or training logs, not both")
	case len(sweeps) > 0:
		return Sweeps(path, sweeps)
	}
	title := filepath.Base(files[0])
	if len(labels) > 0 {
		title = labels[0]
	}
	return Training(path, title, history)
}
