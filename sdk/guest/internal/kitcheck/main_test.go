//go:build !wasip1

package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/guest/guesttest"
)

// The steps run in order on one instance: the state steps depend on each other.
func TestTransform(t *testing.T) {
	i, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		subject, payload string
		wantOut          []string // payloads, all under the input's subject
		wantErr          string
		wantIs           error
	}{
		{subject: "emit.3", payload: "p", wantOut: []string{"p", "p", "p"}},
		{subject: "emit.0", payload: "p"},
		{subject: "emit.10", wantErr: "emit.N wants N from 0 to 9"},
		{subject: "fail", wantErr: "asked to fail"},
		{subject: "panic", wantErr: "panic: assignment to entry in nil map"},
		{subject: "log", payload: "logged"},
		{subject: "state.get", wantErr: "no value under k"},
		{subject: "state.set", payload: "v1"},
		{subject: "state.get", wantOut: []string{"v1"}},
		{subject: "state.set", payload: ""},
		{subject: "state.get", wantOut: []string{""}},
		{subject: "state.delete"},
		{subject: "state.get", wantErr: "no value under k"},
		{subject: "state.delete"},
		{subject: "bad.subject", payload: "p", wantErr: "guest: emit: bad argument", wantIs: guest.ErrBadArgument},
		{subject: "other.thing", payload: "same", wantOut: []string{"same"}},
	}
	for _, tt := range tests {
		out, err := i.Transform(guest.Message{Subject: tt.subject, Payload: []byte(tt.payload)})
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || out != nil {
				t.Errorf("%s: got %q, %v; want no output and error %q", tt.subject, out, err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("%s: %v does not wrap %v", tt.subject, err, tt.wantIs)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.subject, err)
			continue
		}
		var got []string
		for _, m := range out {
			if m.Subject != tt.subject {
				t.Errorf("%s: output under %q", tt.subject, m.Subject)
			}
			got = append(got, string(m.Payload))
		}
		if strings.Join(got, "|") != strings.Join(tt.wantOut, "|") || len(got) != len(tt.wantOut) {
			t.Errorf("%s: emitted %q, want %q", tt.subject, got, tt.wantOut)
		}
	}

	logs := i.Logs()
	if len(logs) != 2 {
		t.Fatalf("logs = %+v, want the panic's and the log step's", logs)
	}
	if logs[0].Level != guest.Error || !strings.HasPrefix(logs[0].Msg, "panic: assignment to entry in nil map\ngoroutine ") {
		t.Errorf("panic log = %v %q, want an error line with the stack", logs[0].Level, logs[0].Msg)
	}
	if logs[1] != (guesttest.Log{Level: guest.Info, Msg: "logged"}) {
		t.Errorf("log step wrote %+v", logs[1])
	}
}

func TestNow(t *testing.T) {
	before := time.Now()
	out, err := guesttest.RunTransform(nil, guest.Message{Subject: "now"})
	if err != nil || len(out) != 1 {
		t.Fatalf("got %+v, %v", out, err)
	}
	got, err := time.Parse(time.RFC3339Nano, string(out[0].Payload))
	if err != nil {
		t.Fatal(err)
	}
	if got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("guest.Now() = %v, want about %v", got, before)
	}
}

func TestCollectAndInit(t *testing.T) {
	now := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	tests := []struct {
		config, wantSubject, wantErr string
	}{
		{config: "", wantSubject: "kitcheck.tick"},
		{config: `{"subject":"my.tick"}`, wantSubject: "my.tick"},
		{config: `{"refuse":true}`, wantErr: "refused as configured"},
		{config: `{"subjects":"x"}`, wantErr: `config: unknown field "subjects"`},
	}
	for _, tt := range tests {
		out, err := guesttest.RunCollect([]byte(tt.config), now)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("config %s: error %v, want %q", tt.config, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(out) != 1 || out[0].Subject != tt.wantSubject || string(out[0].Payload) != now.Format(time.RFC3339Nano) {
			t.Errorf("config %s: got %+v, %v; want one %s at %v", tt.config, out, err, tt.wantSubject, now)
		}
	}
}

func TestHTTPFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "fetched "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	i, err := guesttest.NewWithOptions(nil, guesttest.Options{HTTP: guesttest.HTTP{Hosts: []string{strings.TrimPrefix(srv.URL, "http://")}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := i.Transform(guest.Message{Subject: "http.fetch", Payload: []byte(srv.URL + "/a")})
	if err != nil || len(out) != 1 || string(out[0].Payload) != "200 fetched /a" {
		t.Fatalf("got %+v, %v; want the response", out, err)
	}

	off, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = off.Transform(guest.Message{Subject: "http.fetch", Payload: []byte(srv.URL + "/a")})
	if !errors.Is(err, guest.ErrNotAllowed) {
		t.Fatalf("without hosts: %v, want ErrNotAllowed", err)
	}
}
