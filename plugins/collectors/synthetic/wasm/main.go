//go:build wasip1

// Command wasm is collectors.synthetic built as a WASM guest: the guest kit
// calls package synthetic's logic, with the random walks' positions kept in
// the instance's state by the host (see ../README.md).
package main

import (
	"time"

	"github.com/switchyard/switchyard/plugins/collectors/synthetic"
	"github.com/switchyard/switchyard/sdk/guest"
)

// s is the instance's configured sensors, set once by Init.
var s *synthetic.Synthetic

// state is the instance's state as the host keeps it.
type state struct{}

func (state) Get(key string) ([]byte, bool)    { return guest.StateGet(key) }
func (state) Set(key string, val []byte) error { return guest.StateSet(key, val) }

var _ synthetic.State = state{}

func init() {
	guest.Init(func(config []byte) error {
		var err error
		s, err = synthetic.New(config)
		return err
	})
	guest.Collect(func(now time.Time, out *guest.Output) error {
		readings, err := s.Collect(now, state{})
		if err != nil {
			return err
		}
		for _, r := range readings {
			if err := out.Emit(r.Subject, r.Payload); err != nil {
				return err
			}
		}
		return nil
	})
}

func main() {}
