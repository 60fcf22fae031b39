package compute

import "maps"

// Traffic is what a backend queued: launches of its own kernels with the
// bytes each reads and writes (from the launch's arguments: the data a
// kernel must touch, counted once; device-to-device copies as the kernel
// "copy"), library calls by kind, and the GEMMs' arithmetic.
type Traffic struct {
	Launches map[string]int64 `json:"launches"`
	Read     map[string]int64 `json:"read_bytes"`
	Written  map[string]int64 `json:"written_bytes"`
	// Calls counts library calls: "cublas gemm", "cudnn forward",
	// "cudnn backward data", "cudnn backward filter".
	Calls     map[string]int64 `json:"library_calls"`
	GemmFLOPs int64            `json:"gemm_flops"` // 2·m·n·k per GEMM
}

// NewTraffic is an empty count.
func NewTraffic() Traffic {
	return Traffic{Launches: map[string]int64{}, Read: map[string]int64{}, Written: map[string]int64{}, Calls: map[string]int64{}}
}

// Clone is a copy that later counting leaves as it is.
func (t Traffic) Clone() Traffic {
	return Traffic{Launches: maps.Clone(t.Launches), Read: maps.Clone(t.Read), Written: maps.Clone(t.Written),
		Calls: maps.Clone(t.Calls), GemmFLOPs: t.GemmFLOPs}
}

// Glue is the launches and bytes of the backend's own kernels, leaving
// out those skip names (nil: none).
func (t Traffic) Glue(skip func(kernel string) bool) (launches, bytes int64) {
	for k, n := range t.Launches {
		if skip == nil || !skip(k) {
			launches += n
			bytes += t.Read[k] + t.Written[k]
		}
	}
	return launches, bytes
}

// Counting is a backend that counts its traffic (the CUDA backend, on a
// GPU and on its emulated device).
type Counting interface {
	// Traffic is what was queued since the backend opened or ResetTraffic.
	Traffic() Traffic
	// ResetTraffic starts counting anew.
	ResetTraffic()
}
