package compute

// NewCPUKernels returns a CPU backend that runs the kernel set called name
// ("generic", "avx2" or "avx512"), so that tests cover every dispatch path
// on a machine that has the widest.
func NewCPUKernels(name string) (*CPU, error) {
	ks, err := kernelsNamed(name)
	if err != nil {
		return nil, err
	}
	c := NewCPU()
	c.ks = ks
	return c, nil
}
