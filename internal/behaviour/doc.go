// Package behaviour pins what proxykit computes, bit for bit, so that a
// change meant to move code (a refactoring, a new planner) cannot change a
// result unnoticed. Its test runs the ANN, the SNN (counts, rates,
// synaptic operations, sweeps, BatchNorm in both modes), two proxy-learning
// steps and the three exports on every layer-kind fixture, the branching
// fixtures, ResNets, SqueezeNet, the tiny network, the paper's network at
// full width and converted networks, on the CPU backend and the emulated
// CUDA device, and compares a SHA-256 of each result with
// testdata/behaviour/golden.json.
//
// A change that is meant to change results (a new kernel that sums in
// another order, say) regenerates the file and says why in its commit:
//
//	go test ./internal/behaviour -run TestBehaviour -update
package behaviour
