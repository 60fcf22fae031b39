package nn

import "math"

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }
