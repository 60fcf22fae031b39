//go:build !amd64

package compute

const useSIMD = false

func axpySIMD(a float32, x, y []float32) { panic("unreachable") }

func dotSIMD(x, y []float32) float32 { panic("unreachable") }
