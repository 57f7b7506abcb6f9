//go:build wasip1

// Command wasm is transforms.scale built as a WASM guest: the guest kit calls
// package scale's logic (see ../README.md).
package main

import (
	"github.com/switchyard/switchyard/plugins/transforms/scale"
	"github.com/switchyard/switchyard/sdk/guest"
)

// s is the instance's configured conversion, set once by Init.
var s *scale.Scale

func init() {
	guest.Init(func(config []byte) error {
		var err error
		s, err = scale.New(config)
		return err
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		p, err := s.Apply(in.Payload)
		if err != nil {
			return err
		}
		return out.Emit("", p)
	})
}

func main() {}
