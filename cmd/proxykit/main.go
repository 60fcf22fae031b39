// Command proxykit imports ANNs, builds their integrate-and-fire twins and
// runs them: proxy learning for spiking neural networks.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "proxykit:", err)
		var intr errInterrupted
		if errors.As(err, &intr) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}
