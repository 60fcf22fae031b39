package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proxykit/proxykit/recipe"
)

// continueCommand is the command line that continues this run from its
// checkpoint out, as it works when printed: train --resume out, with the
// flags given that the checkpoint does not hold (the data folder, the
// device, --plot, --json …). The model, its structure and the run's
// settings are the checkpoint's.
func continueCommand(cmd *cobra.Command, out string) string {
	held := map[string]bool{"resume": true, "output": true, "arch": true, "like": true}
	for _, f := range recipe.Default().Fields() {
		held[f.Flag] = true
	}
	line := []string{cmd.CommandPath(), "--resume", shellQuote(out)}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch {
		case held[f.Name]:
		case f.Value.Type() == "bool" && f.Value.String() == "true":
			line = append(line, "--"+f.Name)
		case f.Value.Type() == "bool":
			line = append(line, "--"+f.Name+"=false")
		default:
			line = append(line, "--"+f.Name, shellQuote(f.Value.String()))
		}
	})
	return strings.Join(line, " ")
}

// shellQuote is s as a POSIX shell reads it back: as it is when it holds
// only characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
