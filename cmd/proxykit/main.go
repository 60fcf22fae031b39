// Command proxykit imports ANNs, builds their integrate-and-fire twins and
// runs them: proxy learning for spiking neural networks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/train"
)

func main() {
	os.Exit(runMain(os.Exit))
}

// exitKey holds, in the commands' context, the function that ends the
// process at once: main's os.Exit.
type exitKey struct{}

// runMain runs the command line. Ctrl-C or SIGTERM cancels the commands'
// context: long work stops within a time step or a batch, says what it
// saved and exits with status 130; a second signal stops at once (exit).
// Either way no temporary file is left behind. A data-parallel run that
// stops for good ends the process through exit too.
func runMain(exit func(int)) int {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), exitKey{}, exit))
	go func() {
		<-signals
		cancel()
		<-signals
		atomicfile.RemoveTemporaries()
		fmt.Fprintln(os.Stderr, "proxykit: interrupted twice: stopped at once; nothing more was written")
		exit(130)
	}()
	err := newRootCmd().ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "proxykit:", err)
	if errors.Is(err, train.ErrInterrupted) || ctx.Err() != nil {
		atomicfile.RemoveTemporaries()
		return 130 // as a shell reports a process stopped by Ctrl-C
	}
	return 1
}
