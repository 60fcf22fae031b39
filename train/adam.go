package train

import (
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Adam is PyTorch's Adam with L2 weight decay added to the gradient.
type Adam struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Step counts the updates made so far.
	Step int
	// M and V are the first and second moments, by parameter name.
	M, V map[string][]float32
}

// NewAdam makes an optimizer with the given settings.
func NewAdam(lr, beta1, beta2, eps, weightDecay float64) *Adam {
	return &Adam{LR: lr, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay,
		M: map[string][]float32{}, V: map[string][]float32{}}
}

// Update applies one step to every parameter from its gradient.
func (a *Adam) Update(params []*nn.Param) {
	a.Step++
	for _, p := range params {
		m, ok := a.M[p.Name]
		if !ok {
			m = make([]float32, len(p.Data))
			a.M[p.Name] = m
			a.V[p.Name] = make([]float32, len(p.Data))
		}
		compute.AdamStep(p.Data, p.GradBuf(), m, a.V[p.Name], a.Step, a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay)
	}
}
