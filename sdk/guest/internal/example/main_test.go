//go:build !wasip1

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/guest/guesttest"
)

func TestPassThrough(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	in := guest.Message{Subject: "device.sensor-1.telemetry", Source: "device.sensor-1", Time: at, Payload: []byte(`{"t":21.5}`)}
	tests := []struct {
		name        string
		config      string
		in          guest.Message
		wantSubject string
	}{
		{name: "no config", config: "", in: in, wantSubject: in.Subject},
		{name: "empty object", config: "{}", in: in, wantSubject: in.Subject},
		{name: "subject set", config: `{"subject":"displays.text"}`, in: in, wantSubject: "displays.text"},
		{name: "empty payload", config: "{}", in: guest.Message{Subject: "a.b"}, wantSubject: "a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := guesttest.RunTransform([]byte(tt.config), tt.in)
			if err != nil {
				t.Fatalf("RunTransform: %v", err)
			}
			if len(out) != 1 {
				t.Fatalf("emitted %d messages, want 1", len(out))
			}
			got := out[0]
			if got.Subject != tt.wantSubject || string(got.Payload) != string(tt.in.Payload) || !got.Time.Equal(tt.in.Time) {
				t.Errorf("emitted {%s %q %v}, want {%s %q %v}", got.Subject, got.Payload, got.Time, tt.wantSubject, tt.in.Payload, tt.in.Time)
			}
		})
	}
}

func TestConfigRefused(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{"subjct":"x"}`, `config: unknown field "subjct"`},
		{`{"subject":1}`, `field "subject": want string`},
		{`[]`, "want a JSON object"},
	}
	for _, tt := range tests {
		_, err := guesttest.New([]byte(tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s) error = %v, want one containing %q", tt.config, err, tt.want)
		}
	}
}
