package compute

import "golang.org/x/sys/cpu"

// useSIMD selects the AVX2/FMA kernels of vec_amd64.s.
var useSIMD = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// axpySIMD is Axpy for len(y) a multiple of 8, len(x) == len(y).
//
//go:noescape
func axpySIMD(a float32, x, y []float32)

// dotSIMD is Dot for len(x) a multiple of 8, len(x) == len(y).
//
//go:noescape
func dotSIMD(x, y []float32) float32
