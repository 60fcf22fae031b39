package contract_test

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
)

// The library contract (issue 34): every exported function and method of
// the covered packages returns an error for invalid arguments — nil,
// zero, negative, huge — or works, and never panics; zero values are
// usable or documented and refused with an error; no size computation
// overflows. Each entry of entries calls one function or method with such
// arguments through C's checks; TestContractIsComplete fails when an
// exported function or method of a covered package has no entry (or an
// entry names none), so that the test grows with the API.
//
// Methods that return an error are called on a nil receiver too, and must
// return one; methods without an error result are called on zero values,
// where the type's documentation says its zero value is usable or how it
// is refused.

// covered are the packages the contract holds, by path in the module.
// Packages being redesigned (nn, spiking, train, exporter, model, cmd)
// join the list when their redesign lands.
var covered = []string{"distributed", "npy", "results", "checkpoint", "compute", "compute/device", "data", "recipe", "convert", "plots"}

// entries are the calls, by pkg.Func or pkg.Type.Method (see exported);
// the files entries_*_test.go fill it, one per package.
var entries = map[string]func(c *C){}

// C runs one entry's calls and records failures.
type C struct {
	t     *testing.T
	name  string
	calls int
}

// call runs f, reporting a panic.
func (c *C) call(args string, f func()) (panicked bool) {
	c.t.Helper()
	c.calls++
	defer func() {
		if r := recover(); r != nil {
			stack := strings.Split(string(debug.Stack()), "\n")
			c.t.Errorf("%s(%s) panics: %v\n%s", c.name, args, r, strings.Join(stack[min(len(stack), 7):min(len(stack), 21)], "\n"))
			panicked = true
		}
	}()
	f()
	return false
}

// Err calls f (the entry's function with the arguments args describes),
// which must return an error, not panic.
func (c *C) Err(args string, f func() error) {
	c.t.Helper()
	var err error
	if !c.call(args, func() { err = f() }) && err == nil {
		c.t.Errorf("%s(%s): no error", c.name, args)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		c.t.Errorf("%s(%s): an error of several lines: %q", c.name, args, err)
	}
}

// Ok calls f, which must return nil, not panic.
func (c *C) Ok(args string, f func() error) {
	c.t.Helper()
	var err error
	if !c.call(args, func() { err = f() }) && err != nil {
		c.t.Errorf("%s(%s): %v", c.name, args, err)
	}
}

// NoPanic calls f, which may do anything but panic.
func (c *C) NoPanic(args string, f func()) {
	c.t.Helper()
	c.call(args, f)
}

// Check fails the entry with a message when ok is false.
func (c *C) Check(ok bool, format string, args ...any) {
	c.t.Helper()
	if !ok {
		c.t.Errorf("%s: %s", c.name, fmt.Sprintf(format, args...))
	}
}

// TestContract runs every entry.
func TestContract(t *testing.T) {
	for _, name := range sortedKeys(entries) {
		t.Run(name, func(t *testing.T) {
			c := &C{t: t, name: name}
			entries[name](c)
			if c.calls == 0 {
				t.Errorf("%s: the entry calls nothing", name)
			}
		})
	}
}

// TestContractIsComplete: every exported function and method of the
// covered packages has an entry, and every entry names one.
func TestContractIsComplete(t *testing.T) {
	api := map[string]bool{}
	for _, p := range covered {
		for _, name := range exported(t, "../..", p) {
			api[name] = true
			if entries[name] == nil {
				t.Errorf("%s has no entry in the library contract (internal/contract): add one that calls it with nil, zero, negative and huge arguments", name)
			}
		}
	}
	for name := range entries {
		if !api[name] {
			t.Errorf("the contract's entry %s names no exported function or method of the covered packages", name)
		}
	}
}
