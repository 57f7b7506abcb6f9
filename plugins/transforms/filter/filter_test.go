package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
)

// msg is one message of a sequence fed to one instance.
type msg struct {
	subject, payload string
	pass             bool
}

func TestPass(t *testing.T) {
	tests := []struct {
		name, config string
		seq          []msg
	}{
		{name: "gt", config: `{"op":"gt","value":25}`, seq: []msg{
			{"t", `{"value":25}`, false}, {"t", `{"value":25.01}`, true}, {"t", `{"value":-30}`, false}}},
		{name: "ge", config: `{"op":"ge","value":25}`, seq: []msg{
			{"t", `{"value":25}`, true}, {"t", `{"value":24.99}`, false}}},
		{name: "lt", config: `{"op":"lt","value":0}`, seq: []msg{
			{"t", `{"value":-0.5}`, true}, {"t", `{"value":0}`, false}}},
		{name: "le", config: `{"op":"le","value":0}`, seq: []msg{
			{"t", `{"value":0}`, true}, {"t", `{"value":1e-9}`, false}}},
		{name: "eq number", config: `{"op":"eq","value":1}`, seq: []msg{
			{"t", `{"value":1.0}`, true}, {"t", `{"value":2}`, false}}},
		{name: "ne number", config: `{"op":"ne","value":1}`, seq: []msg{
			{"t", `{"value":1}`, false}, {"t", `{"value":2}`, true}}},
		{name: "eq string on another field", config: `{"field":"state","op":"eq","value":"on"}`, seq: []msg{
			{"t", `{"state":"on","value":3}`, true}, {"t", `{"state":"off"}`, false}}},
		{name: "ne bool", config: `{"field":"door","op":"ne","value":false}`, seq: []msg{
			{"t", `{"door":true}`, true}, {"t", `{"door":false}`, false}}},
		{name: "deadband alone, per subject", config: `{"deadband":0.5}`, seq: []msg{
			{"a", `{"value":20}`, true},    // first of a
			{"a", `{"value":20.4}`, false}, // moved 0.4
			{"b", `{"value":20.2}`, true},  // first of b
			{"a", `{"value":20.5}`, true},  // moved 0.5 from the last passed (20)
			{"a", `{"value":20.9}`, false}, // moved 0.4 from 20.5
			{"a", `{"value":20}`, true},    // moved 0.5 from 20.5, downwards
		}},
		{name: "deadband counts a decimal step despite rounding", config: `{"deadband":0.2}`, seq: []msg{
			{"a", `{"value":0.1}`, true},
			{"a", `{"value":0.3}`, true}, // 0.3-0.1 is 0.19999999999999998 in binary
			{"a", `{"value":0.45}`, false},
			{"a", `{"value":2.2}`, true},
			{"a", `{"value":2.4}`, true}, // 0.1999999999999997
		}},
		{name: "condition and deadband: only passed messages move the band", config: `{"op":"gt","value":10,"deadband":2}`, seq: []msg{
			{"a", `{"value":11}`, true},
			{"a", `{"value":5}`, false},  // condition fails, not recorded
			{"a", `{"value":12}`, false}, // moved 1 from 11
			{"a", `{"value":13}`, true},
		}},
		{name: "the README's example", config: `{"field":"value","op":"ge","value":25,"deadband":0.5}`, seq: []msg{
			{"a", `{"value":24.9}`, false}, {"a", `{"value":25.2}`, true}, {"a", `{"value":25.6}`, false}, {"a", `{"value":25.7}`, true}}},
		{name: "deadband zero is off", config: `{"op":"gt","value":0,"deadband":0}`, seq: []msg{
			{"a", `{"value":1}`, true}, {"a", `{"value":1}`, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			st := plugintest.State{}
			for i, m := range tt.seq {
				got, err := f.Pass(m.subject, []byte(m.payload), st)
				if err != nil {
					t.Fatalf("message %d %s: %v", i, m.payload, err)
				}
				if got != m.pass {
					t.Errorf("message %d %s %s: pass = %v, want %v", i, m.subject, m.payload, got, m.pass)
				}
			}
		})
	}
}

// failingState refuses every write, as a host at its state limit does.
type failingState struct{ plugintest.State }

func (failingState) Set(string, []byte) error { return errors.New("limit reached") }

func TestPassErrors(t *testing.T) {
	tests := []struct {
		name, config, payload string
		st                    State
		err                   string
	}{
		{name: "missing field", config: `{"op":"gt","value":1}`, payload: `{"temp":3}`, err: `field "value": missing`},
		{name: "string for a number", config: `{"op":"gt","value":1}`, payload: `{"value":"3"}`, err: `field "value": want a number, got string`},
		{name: "number for a string", config: `{"field":"s","op":"eq","value":"on"}`, payload: `{"s":1}`, err: `field "s": want a string to compare with "on", got a number`},
		{name: "object for a bool", config: `{"field":"s","op":"ne","value":true}`, payload: `{"s":{}}`, err: `field "s": want a number, a string or true/false, got object`},
		{name: "deadband needs a number", config: `{"deadband":1}`, payload: `{"value":true}`, err: `field "value": want a number, got boolean`},
		{name: "not an object", config: `{"deadband":1}`, payload: `"x"`, err: "payload: want a JSON object, got string"},
		{name: "corrupt state", config: `{"deadband":1}`, payload: `{"value":1}`, st: plugintest.State{StateKey("s"): []byte("x")}, err: `state "deadband.s": not a number: "x"`},
		{name: "state refused", config: `{"deadband":1}`, payload: `{"value":1}`, st: failingState{plugintest.State{}}, err: `state "deadband.s": limit reached`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			st := tt.st
			if st == nil {
				st = plugintest.State{}
			}
			pass, err := f.Pass("s", []byte(tt.payload), st)
			if err == nil || err.Error() != tt.err || pass {
				t.Fatalf("Pass = %v, %v; want false, %q", pass, err, tt.err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ config, err string }{
		{`{}`, "op: set op and value, a deadband, or both"},
		{`{"deadband":0}`, "op: set op and value, a deadband, or both"},
		{`{"op":"gt"}`, "value: required with op"},
		{`{"value":3}`, "op: required with value"},
		{`{"op":"gte","value":3}`, `op: want one of gt, ge, lt, le, eq, ne, got "gte"`},
		{`{"op":"lt","value":"3"}`, `value: op lt compares numbers, got string "3"`},
		{`{"op":"ge","value":true}`, "value: op ge compares numbers, got boolean true"},
		{`{"op":"eq","value":[1]}`, "value: want a number, a string or true/false, got array"},
		{`{"op":"eq","value":"on","deadband":1}`, `deadband: needs a numeric field, but value is string "on"`},
		{`{"deadband":-1}`, "deadband: must not be negative, got -1"},
		{`{"deadband":"1"}`, `deadband: want a number, got string "1"`},
		{`{"field":"","deadband":1}`, "field: must not be empty"},
		{`{"deadband":1,"band":2}`, "band: unknown key (known keys: deadband, field, op, value)"},
	}
	for _, tt := range tests {
		if _, err := New([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%s) error = %v, want it to contain %q", tt.config, err, tt.err)
		}
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, Use, func(config []byte) (plugintest.Step, error) {
		f, err := New(config)
		return func(m plugintest.Message, st plugintest.State) ([]plugintest.Message, error) {
			pass, err := f.Pass(m.Subject, m.Payload, st)
			if !pass || err != nil {
				return nil, err
			}
			return []plugintest.Message{m}, nil
		}, err
	})
}

func TestSample(t *testing.T) {
	plugintest.Sample(t, Sample, Use, func(config []byte) error {
		_, err := New(config)
		return err
	})
}

func FuzzFilter(f *testing.F) {
	f.Add(`{"op":"gt","value":25,"deadband":0.5}`, `{"value":26}`, `{"value":26.2}`)
	f.Add(`{"field":"s","op":"eq","value":"on"}`, `{"s":"on"}`, `{"s":1}`)
	f.Fuzz(func(t *testing.T, config, first, second string) {
		flt, err := New([]byte(config))
		if err != nil {
			return
		}
		st := plugintest.State{}
		pass1, err1 := flt.Pass("s", []byte(first), st)
		if err1 != nil && pass1 {
			t.Fatal("a failed call passed the message")
		}
		pass2, err2 := flt.Pass("s", []byte(second), st)
		if err2 != nil && pass2 {
			t.Fatal("a failed call passed the message")
		}
		if flt.deadband > 0 && pass1 && pass2 && first == second {
			t.Fatalf("the same value passed twice within deadband %v: %s", flt.deadband, first)
		}
	})
}
