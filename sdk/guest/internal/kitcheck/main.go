package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

type config struct {
	Subject string `json:"subject"`
	Refuse  bool   `json:"refuse"`
}

var cfg config

func init() {
	guest.Init(func(raw []byte) error {
		cfg = config{Subject: "kitcheck.tick"}
		if err := plugin.DecodeConfig(raw, &cfg); err != nil {
			return err
		}
		if cfg.Refuse {
			return errors.New("refused as configured")
		}
		return nil
	})
	guest.Transform(transform)
	guest.Collect(func(now time.Time, out *guest.Output) error {
		return out.Emit(cfg.Subject, now.AppendFormat(nil, time.RFC3339Nano))
	})
}

func transform(in guest.Message, out *guest.Output) error {
	if n, ok := strings.CutPrefix(in.Subject, "emit."); ok {
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 || count > 9 {
			return errors.New("emit.N wants N from 0 to 9")
		}
		for range count {
			if err := out.Emit("", in.Payload); err != nil {
				return err
			}
		}
		return nil
	}
	switch in.Subject {
	case "fail":
		return errors.New("asked to fail")
	case "panic":
		var m map[string]int
		m["boom"]++
		return nil
	case "log":
		guest.Log(guest.Info, string(in.Payload))
		return nil
	case "now":
		return out.Emit("", guest.Now().AppendFormat(nil, time.RFC3339Nano))
	case "state.set":
		return guest.StateSet("k", in.Payload)
	case "state.get":
		v, ok := guest.StateGet("k")
		if !ok {
			return errors.New("no value under k")
		}
		return out.Emit("", v)
	case "state.delete":
		return guest.StateDelete("k")
	case "bad.subject":
		return out.Emit("\xff", in.Payload)
	case "http.fetch":
		resp, err := guest.HTTPFetch(guest.HTTPRequest{URL: string(in.Payload)})
		if err != nil {
			return err
		}
		return out.Emit("", append(strconv.AppendInt(nil, int64(resp.Status), 10), append([]byte(" "), resp.Body...)...))
	}
	return out.Emit("", in.Payload)
}

func main() {}
