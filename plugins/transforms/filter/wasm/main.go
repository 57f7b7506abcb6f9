//go:build wasip1

// Command wasm is transforms.filter built as a WASM guest: the guest kit calls
// package filter's logic, with the instance's state kept by the host (see
// ../README.md).
package main

import (
	"github.com/switchyard/switchyard/plugins/transforms/filter"
	"github.com/switchyard/switchyard/sdk/guest"
)

// f is the instance's configured condition, set once by Init.
var f *filter.Filter

// state is the instance's state as the host keeps it.
type state struct{}

func (state) Get(key string) ([]byte, bool)    { return guest.StateGet(key) }
func (state) Set(key string, val []byte) error { return guest.StateSet(key, val) }

var _ filter.State = state{}

func init() {
	guest.Init(func(config []byte) error {
		var err error
		f, err = filter.New(config)
		return err
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		pass, err := f.Pass(in.Subject, in.Payload, state{})
		if err != nil || !pass {
			return err
		}
		return out.Emit("", in.Payload)
	})
}

func main() {}
