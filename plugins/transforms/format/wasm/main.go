//go:build wasip1

// Command wasm is transforms.format built as a WASM guest: the guest kit calls
// package format's logic (see ../README.md).
package main

import (
	"github.com/switchyard/switchyard/plugins/transforms/format"
	"github.com/switchyard/switchyard/sdk/guest"
)

// f is the instance's parsed template, set once by Init.
var f *format.Format

func init() {
	guest.Init(func(config []byte) error {
		var err error
		f, err = format.New(config)
		return err
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		p, err := f.Apply(in.Payload)
		if err != nil {
			return err
		}
		return out.Emit("", p)
	})
}

func main() {}
