// Command proxykit imports ANNs, builds their integrate-and-fire twins and
// runs them: proxy learning for spiking neural networks.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "proxykit:", err)
		os.Exit(1)
	}
}
