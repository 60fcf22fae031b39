// Package results holds what proxykit's runs measure — accuracies of the
// ANN and the SNN, per-epoch training statistics, sweeps over the
// simulation length, benchmark speeds — in the forms the commands print as
// JSON and plot reads back.
package results

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Accuracy is a test-set evaluation of both networks.
type Accuracy struct {
	N int `json:"n"`
	// ANN is the ANN's accuracy (argmax of its outputs).
	ANN float64 `json:"ann"`
	// SNNStrict counts a sample correct when the first maximum of the
	// counts is its label (the reference's per-epoch figure).
	SNNStrict float64 `json:"snn_strict"`
	// SNNTies counts it correct when the label's count equals the maximum
	// (the reference's final figure): a silent SNN scores 100 %.
	SNNTies float64 `json:"snn_ties"`
	// SNNMembrane counts it correct when MembraneMax is its label: the
	// most spikes, ties broken by the output layer's final membrane
	// potential, then by the lowest index (docs/design.md §1 Metrics).
	SNNMembrane float64 `json:"snn_membrane"`
	// TieShare is the share of samples whose maximum count is shared by
	// two classes or more.
	TieShare float64 `json:"tie_share"`
	// SilentShare is the share of samples on which the output layer did
	// not fire at all (every count 0: a tie of every class).
	SilentShare float64 `json:"silent_share"`
}

// Warning says in words when SNNTies flatters the SNN — half or more of
// the predictions are ties, or the output layer is silent on half or more
// of the images — and is empty otherwise. Print it wherever SNNTies (the
// reference notebook's final rule) is printed.
func (a Accuracy) Warning() string {
	return warning(a.N, a.TieShare, a.SilentShare, a.SNNTies, a.SNNStrict, a.SNNMembrane)
}

// FlatteryShare is the share of tied predictions, or of images on which
// the output layer is silent, from which on Warning speaks.
const FlatteryShare = 0.5

// warning is Accuracy.Warning for any reading of n images.
func warning(n int, tieShare, silentShare, ties, strict, membrane float64) string {
	if tieShare < FlatteryShare && silentShare < FlatteryShare {
		return ""
	}
	images := "the test images"
	if n > 0 {
		images = fmt.Sprintf("the %d test images", n)
	}
	var what string
	switch {
	case silentShare >= FlatteryShare:
		what = fmt.Sprintf("the SNN is silent on %.1f%% of %s (its output layer never fired, so every class ties)", 100*silentShare, images)
		if tieShare > silentShare {
			what += fmt.Sprintf(", and %.1f%% of its predictions are ties", 100*tieShare)
		}
	default:
		what = fmt.Sprintf("%.1f%% of the SNN's predictions on %s are ties (the SNN is silent on %.1f%%)", 100*tieShare, images, 100*silentShare)
	}
	return fmt.Sprintf("%s: the ties figure (%.2f%%, the reference notebook's final rule) counts every tie as correct and rewards silence; "+
		"strict (%.2f%%) and membrane (%.2f%%) do not", what, 100*ties, 100*strict, 100*membrane)
}

// Report is an evaluation in detail: the accuracies, per class, and the
// confusion matrices (rows: the label; columns: the prediction).
type Report struct {
	Accuracy
	Classes []ClassAccuracy `json:"classes"`
	// ConfusionANN counts, per label, the ANN's predictions (argmax).
	ConfusionANN [][]int `json:"confusion_ann"`
	// ConfusionSNN counts, per label, the SNN's strict predictions (the
	// first maximum of the counts).
	ConfusionSNN [][]int `json:"confusion_snn"`
	// ConfusionSNNMembrane counts, per label, its predictions with ties
	// broken by the membrane potential (MembraneMax).
	ConfusionSNNMembrane [][]int `json:"confusion_snn_membrane"`
	// Paper sets the SNN's accuracy beside the paper's, under the
	// reference notebook's rules, where the paper reports the data set.
	Paper *PaperComparison `json:"paper,omitempty"`
}

// ClassAccuracy is one class's share of the test set and its accuracies.
type ClassAccuracy struct {
	Name        string  `json:"name"`
	N           int     `json:"n"`
	ANN         float64 `json:"ann"`
	SNNStrict   float64 `json:"snn_strict"`
	SNNTies     float64 `json:"snn_ties"`
	SNNMembrane float64 `json:"snn_membrane"`
}

// EpochStats is one finished epoch.
type EpochStats struct {
	// Epoch is the epoch's index, from 0 (in JSON and in checkpoints, as
	// PyTorch loops count); text and figures count from 1, as people do:
	// index 0 is "epoch 1".
	Epoch  int    `json:"epoch"`
	BNMode string `json:"bn_mode"` // "train" or "eval"
	// Method is the training method where it is not proxy learning
	// ("surrogate": the ANN does not run in training, and TrainANN is 0).
	Method       string   `json:"method,omitempty"`
	TrainLoss    float64  `json:"train_loss"`
	TrainANN     float64  `json:"train_ann_acc"`
	TrainSNN     float64  `json:"train_snn_acc"`
	Test         Accuracy `json:"test"`
	Seconds      float64  `json:"seconds"`
	ImagesPerSec float64  `json:"images_per_sec"`
	// Paper is Test beside the paper's figure, under the reference
	// notebook's rules, where the paper reports the data set.
	Paper *PaperComparison `json:"paper,omitempty"`
}

// MaxSweepPoints bounds the values of T one sweep reads: a figure's panel
// is about a thousand pixels wide, so more points cannot be told apart.
const MaxSweepPoints = 1000

// Sweep is an evaluation of the SNN at several simulation lengths, read
// off one simulation of the longest: accuracy, firing rates and synaptic
// operations against T, beside the ANN's accuracy.
type Sweep struct {
	// Model names the evaluated file, for legends; the caller sets it.
	Model string `json:"model,omitempty"`
	// N is the number of test images.
	N int `json:"n"`
	// ANN is the ANN's accuracy (BatchNorm in eval mode).
	ANN float64 `json:"ann"`
	// Threshold and Reset are the IF neurons' v_th and v_reset;
	// InitialCharge is where they start (spiking.Config.InitialCharge).
	Threshold     float32 `json:"threshold"`
	Reset         float32 `json:"reset"`
	InitialCharge float32 `json:"initial_charge,omitempty"`
	// IFLayers names the IF layers (the ReLUs they replace, then
	// "output"), in the order of SweepPoint.Rates.
	IFLayers []string `json:"if_layers"`
	// SynOpLayers names the layers with weights run at every step, in the
	// order of SweepPoint.LayerSynOps.
	SynOpLayers []string `json:"synop_layers"`
	// ANNMACs is the ANN's multiply-accumulates per image; StaticMACs
	// those of the SNN's static input layer, run once per image.
	ANNMACs    int64 `json:"ann_macs_per_image"`
	StaticMACs int64 `json:"static_macs_per_image"`
	// Points holds one entry per simulation length, ascending.
	Points []SweepPoint `json:"points"`
}

// SweepPoint is the SNN after T steps.
type SweepPoint struct {
	T int `json:"t"`
	// SNNStrict, SNNTies, SNNMembrane and TieShare are as in Accuracy.
	SNNStrict   float64 `json:"snn_strict"`
	SNNTies     float64 `json:"snn_ties"`
	SNNMembrane float64 `json:"snn_membrane"`
	TieShare    float64 `json:"tie_share"`
	// SilentShare is as in Accuracy: the output layer has not fired on
	// these images after T steps.
	SilentShare float64 `json:"silent_share"`
	// Rates is each IF layer's firing rate: spikes per neuron per step,
	// averaged over the T steps and the test images.
	Rates []float64 `json:"rates"`
	// SynOps is the synaptic operations per image over the T steps (see
	// spiking.Simulator.CountSynOps); LayerSynOps splits it by layer.
	SynOps      float64   `json:"synops_per_image"`
	LayerSynOps []float64 `json:"layer_synops_per_image"`
}

// Warning is Accuracy.Warning for the point, over the sweep's n images.
func (p SweepPoint) Warning(n int) string {
	return warning(n, p.TieShare, p.SilentShare, p.SNNTies, p.SNNStrict, p.SNNMembrane)
}

// Reach is the first T at which the SNN's strict accuracy reaches frac of
// the ANN's, if any point does.
func (s Sweep) Reach(frac float64) (int, bool) {
	return s.reach(frac, func(p SweepPoint) float64 { return p.SNNStrict })
}

// ReachMembrane is Reach for the accuracy with ties broken by the
// membrane potential (SNNMembrane).
func (s Sweep) ReachMembrane(frac float64) (int, bool) {
	return s.reach(frac, func(p SweepPoint) float64 { return p.SNNMembrane })
}

func (s Sweep) reach(frac float64, acc func(SweepPoint) float64) (int, bool) {
	for _, p := range s.Points {
		if acc(p) >= frac*s.ANN {
			return p.T, true
		}
	}
	return 0, false
}

// BenchResult is what Bench measured.
type BenchResult struct {
	TrainImagesPerSec float64 `json:"train_images_per_sec"`
	TrainStepSeconds  float64 `json:"train_step_seconds"`
	InferImagesPerSec float64 `json:"infer_images_per_sec"`
	InferBatch        int     `json:"infer_batch"`
	TrainSteps        int     `json:"train_steps"`
	// TrainGFLOPPerImage and InferGFLOPPerImage count the multiply-adds
	// (×2) of the convolutions and linear layers, as dense arithmetic: a
	// proxy step's ANN forward and backward (3× the forward) and its SNN's
	// T steps; SNN inference alone.
	TrainGFLOPPerImage float64 `json:"train_gflop_per_image"`
	InferGFLOPPerImage float64 `json:"infer_gflop_per_image"`
	// TrainTFLOPS and InferTFLOPS are those counts over the measured times.
	TrainTFLOPS float64 `json:"train_tflops"`
	InferTFLOPS float64 `json:"infer_tflops"`
	// TrainDeviceMB and InferDeviceMB are the most device memory the
	// training step and the inference held (backends with device memory).
	TrainDeviceMB float64 `json:"train_device_mb,omitempty"`
	InferDeviceMB float64 `json:"infer_device_mb,omitempty"`
	// StepTraffic and InferTraffic are one training step's and one
	// inference batch's launches, bytes and library calls, on backends
	// that count them (compute.Counting: the CUDA backend).
	StepTraffic  *compute.Traffic `json:"step_traffic,omitempty"`
	InferTraffic *compute.Traffic `json:"infer_traffic,omitempty"`
	// IFLayers and FiringRates are the SNN's IF layers and each one's
	// firing rate on the inference batch; InferWork is what the product
	// kernels did in one inference batch, on backends that count it (the
	// CPU's event-driven kernels: how much of the dense work they skipped).
	IFLayers    []string             `json:"if_layers,omitempty"`
	FiringRates []float64            `json:"firing_rates,omitempty"`
	InferWork   []compute.KernelWork `json:"infer_work,omitempty"`
	// Data-parallel runs (Ranks > 1; train.BenchRanks): each training step
	// is a global batch split across the ranks, and TrainImagesPerSec the
	// global batch's rate. RankTrainImagesPerSec is each rank's share's,
	// RankInferImagesPerSec each rank's inference alone (InferImagesPerSec
	// is their sum). AllReduceBytes is what each rank sums per step (its
	// gradients); AllReduceSeconds the time per step the sums add to it
	// (not hidden behind the backward pass), rank 0's.
	Ranks                 int       `json:"ranks,omitempty"`
	RankTrainImagesPerSec []float64 `json:"rank_train_images_per_sec,omitempty"`
	RankInferImagesPerSec []float64 `json:"rank_infer_images_per_sec,omitempty"`
	AllReduceBytes        int64     `json:"allreduce_bytes_per_step,omitempty"`
	AllReduceSeconds      float64   `json:"allreduce_seconds_per_step,omitempty"`
	// TrainActivationMB is the proxy step's planned activation memory: its
	// program's buffers at the batch (a rank's share).
	TrainActivationMB float64 `json:"train_activation_mb,omitempty"`
	// Surrogate, in a bench of surrogate-gradient training, is its step
	// measured the same way, beside the proxy step above.
	Surrogate *StepBench `json:"surrogate,omitempty"`
}

// StepBench is one training method's step, timed (BatchNorm in training
// mode, with the optimizer's update).
type StepBench struct {
	ImagesPerSec float64 `json:"images_per_sec"`
	StepSeconds  float64 `json:"step_seconds"`
	Steps        int     `json:"steps"`
	// GFLOPPerImage is the step program's matrix-product arithmetic per
	// image (2 per multiply-add, dense; program.Listing's count), TFLOPS
	// that over the measured time.
	GFLOPPerImage float64 `json:"gflop_per_image"`
	TFLOPS        float64 `json:"tflops"`
	// ActivationMB is the step program's planned activation memory (its
	// buffers at the batch); DeviceMB the most device memory the step held
	// (backends with device memory).
	ActivationMB float64 `json:"activation_mb"`
	DeviceMB     float64 `json:"device_mb,omitempty"`
	// StepTraffic is one step's launches and bytes (compute.Counting).
	StepTraffic *compute.Traffic `json:"step_traffic,omitempty"`
}
