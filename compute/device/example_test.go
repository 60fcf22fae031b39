package device_test

import (
	"fmt"
	"log"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
)

// Open a backend by name ("cpu", "cuda" in a -tags cuda build, or
// "cuda-emu": the CUDA backend's code on an emulated device) and run a
// network on it; parameters move to the backend and back as needed.
func ExampleOpen() {
	ann, err := nn.Tiny(1)
	if err != nil {
		log.Fatal(err)
	}
	x, _ := nn.NewTensor(4, 1, 28, 28) // a fixed shape: no error
	for i := range x.Data {
		x.Data[i] = float32(i%13) / 13
	}
	emu, err := device.Open("cuda-emu", device.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()
	y, err := lower.Forward(emu, ann, x, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := ann.Release(); err != nil { // bring the parameters home
		log.Fatal(err)
	}
	want, err := lower.Forward(compute.NewCPU(), ann, x, 0)
	if err != nil {
		log.Fatal(err)
	}
	worst := 0.0
	for i := range y.Data {
		worst = math.Max(worst, math.Abs(float64(y.Data[i]-want.Data[i])))
	}
	fmt.Println(device.Describe(emu), "agrees with the CPU:", worst < 1e-5)
	// Output:
	// emulated CUDA device (host CPU) agrees with the CPU: true
}
