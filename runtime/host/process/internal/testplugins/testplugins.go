// Package testplugins registers the plugins the process tests run, both in
// the test binary (as built-ins, for comparison) and in the plugin binary
// built from ../../testdata/testplugin.
package testplugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/sdk/plugin"
)

func init() {
	plugin.Register(plugin.Info{ID: "transforms.test-upper", New: func() any { return new(Upper) }})
	plugin.Register(plugin.Info{ID: "collectors.test-ticker", New: func() any { return new(Ticker) }})
	plugin.Register(plugin.Info{ID: "brokers.test-file", New: func() any { return new(File) }})
}

var (
	_ plugin.Transform   = (*Upper)(nil)
	_ plugin.Provisioner = (*Upper)(nil)
	_ plugin.Collector   = (*Ticker)(nil)
	_ plugin.Broker      = (*File)(nil)
	_ plugin.Validator   = (*File)(nil)
)

// Upper upper-cases the payload and appends Suffix; "drop" is dropped,
// "twice" is emitted twice, "fail" is an error, "panic" panics, and
// "env:NAME" is answered with NAME's value in the plugin's environment.
type Upper struct {
	Suffix        string `json:"suffix"`
	FailProvision bool   `json:"fail_provision"`
}

// Provision fails when told to.
func (u *Upper) Provision(context.Context) error {
	if u.FailProvision {
		return errors.New("told to fail")
	}
	return nil
}

// Transform upper-cases m.Payload.
func (u *Upper) Transform(_ context.Context, m plugin.Message, out plugin.Emitter) error {
	switch string(m.Payload) {
	case "drop":
		return nil
	case "fail":
		return errors.New("refused: fail")
	case "panic":
		panic("asked to panic")
	}
	if name, ok := strings.CutPrefix(string(m.Payload), "env:"); ok {
		v, set := os.LookupEnv(name)
		m.Payload = fmt.Appendf(nil, "%s=%q set=%v", name, v, set)
		return out.Emit(m)
	}
	m.Payload = append(bytes.ToUpper(m.Payload), u.Suffix...)
	if string(m.Payload) == "TWICE"+u.Suffix {
		if err := out.Emit(m); err != nil {
			return err
		}
	}
	return out.Emit(m)
}

// Ticker emits {"n": i} every Every (default 10ms), with its pid in Meta.
type Ticker struct {
	Every string `json:"every"`
}

// Collect emits until ctx ends.
func (t *Ticker) Collect(ctx context.Context, out plugin.Emitter) error {
	every := 10 * time.Millisecond
	if t.Every != "" {
		d, err := time.ParseDuration(t.Every)
		if err != nil {
			return err
		}
		every = d
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	pid := strconv.Itoa(os.Getpid())
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		m := plugin.Message{Subject: "test.tick", Meta: map[string]string{"pid": pid}, Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
		if err := out.Emit(m); err != nil {
			return nil
		}
	}
}

// File appends each message as a JSON line to Path; a message with subject
// "fail" fails the batch.
type File struct {
	Path string `json:"path"`
}

// Validate requires Path.
func (f *File) Validate() error {
	if f.Path == "" {
		return errors.New("path is required")
	}
	return nil
}

// Publish appends batch to the file.
func (f *File) Publish(_ context.Context, batch []plugin.Message) error {
	fh, err := os.OpenFile(f.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer fh.Close()
	enc := json.NewEncoder(fh)
	for _, m := range batch {
		if m.Subject == "fail" {
			return errors.New("refused subject fail")
		}
		if err := enc.Encode(map[string]any{"tenant": m.Tenant, "subject": m.Subject, "payload": string(m.Payload), "meta": m.Meta, "time": m.Time.UnixNano()}); err != nil {
			return err
		}
	}
	return nil
}
