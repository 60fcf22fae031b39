// Command proxykit imports ANNs, builds their integrate-and-fire twins and
// runs them: proxy learning for spiking neural networks.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/proxykit/proxykit/train"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "proxykit:", err)
		if errors.Is(err, train.ErrInterrupted) {
			os.Exit(130) // as a shell reports a process stopped by Ctrl-C
		}
		os.Exit(1)
	}
}
