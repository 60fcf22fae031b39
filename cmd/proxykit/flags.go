package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
)

// The flag groups the commands share, in flags_*.go (recipe.Settings's
// two, recipe and method, together): each group registers its flags on a
// command and turns them into what the library takes. Here what every
// command uses.

// defaultInWords ends a flag's usage with its default in words — one that
// depends on the model file, say — in place of the value pflag would print
// after it (DefValue, which only help texts read, set to the zero value
// pflag leaves unprinted): one default per flag in --help and docs/cli.md.
func defaultInWords(cmd *cobra.Command, name, words string) {
	f := cmd.Flags().Lookup(name)
	f.Usage += " (default: " + words + ")"
	f.DefValue = "0" // a number's zero
	if f.Value.Type() == "string" {
		f.DefValue = ""
	}
}

// checkAll runs a command's checks of its flags in order, before the model
// is read (it may take seconds): the first error, if any.
func checkAll(checks ...func() error) error {
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// batchSize is recipe.CheckBatchSize of a --batch-size (or similar) flag,
// for checkAll: the error names the flag (spellFlags).
func batchSize(flag string, n int) func() error {
	return func() error { return recipe.CheckBatchSize(setting.Name(flag), n) }
}
