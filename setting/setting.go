// Package setting lets a library error name the settings it is about —
// the device, the architecture, the data folder — in words, never as
// command-line flags: a program with flags spells each setting its own way
// when it prints the error (cmd/proxykit spells them as its flags).
package setting

import (
	"errors"
	"fmt"
)

// Name is a setting as an error names it by default.
type Name string

// The settings proxykit's library errors name besides the fields of
// recipe.Settings (named as recipe.Settings.Fields names them).
const (
	// Device is the backend to compute on (device.Open's name: cpu,
	// cuda, cuda-emu).
	Device Name = "device"
	// Arch is the architecture of the registry that gives a PyTorch state
	// dict its structure (model.Options.Arch).
	Arch Name = "architecture"
	// Like is the model file whose structure a PyTorch state dict takes
	// (model.Options.Like).
	Like Name = "structure model"
	// DataDir is the folder a data set's files are read from.
	DataDir Name = "data folder"
	// Resume is the checkpoint a run continues from (train.Trainer.Resume).
	Resume Name = "resume from"
	// ScaleUint8 divides uint8 input pixels by 255 (model.Model.Input).
	ScaleUint8 Name = "uint8 scaling"
	// Precision is a CUDA device's arithmetic (device.Options.SetPrecision:
	// fp32, tf32, fp16).
	Precision Name = "precision"
)

// Error is an error whose text names settings: the arguments of type Name
// in its format.
type Error struct {
	format string
	args   []any
}

// Errorf makes an Error as fmt.Errorf makes an error (%w wraps one); each
// argument of type Name is a setting, printed by Spell.
func Errorf(format string, args ...any) *Error { return &Error{format: format, args: args} }

// Error is the text with each setting printed as its Name.
func (e *Error) Error() string { return e.Spell(nil) }

// errNil is what a nil *Error says (a nil pointer stored in an error).
var errNil = errors.New("<nil setting.Error>")

// Spell is the text with each setting printed as spell spells it (a
// program's flag); nil spell prints the Names.
func (e *Error) Spell(spell func(Name) string) string { return e.with(spell).Error() }

// Unwrap is the error the format wraps with %w, if any.
func (e *Error) Unwrap() error { return errors.Unwrap(e.with(nil)) }

func (e *Error) with(spell func(Name) string) error {
	if e == nil {
		return errNil
	}
	args := make([]any, len(e.args))
	for i, a := range e.args {
		args[i] = a
		if n, ok := a.(Name); ok {
			args[i] = string(n)
			if spell != nil {
				args[i] = spell(n)
			}
		}
	}
	return fmt.Errorf(e.format, args...)
}
