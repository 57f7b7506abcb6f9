package main

import (
	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

type config struct {
	// Subject, when set, replaces the subject of every message.
	Subject string `json:"subject"`
}

// cfg is this instance's configuration, set once by Init.
var cfg config

func init() {
	guest.Init(func(raw []byte) error {
		cfg = config{}
		return plugin.DecodeConfig(raw, &cfg)
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		return out.Emit(cfg.Subject, in.Payload)
	})
}

func main() {}
