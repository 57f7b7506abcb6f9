//go:build !wasip1

package guesttest_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/guest/guesttest"
)

// The guest under test. Its transform acts on the input's subject.
var (
	gotConfig string
	kept      *guest.Output
)

func init() {
	guest.Init(func(config []byte) error {
		gotConfig = string(config)
		if gotConfig == `{"refuse":true}` {
			return errors.New("refused")
		}
		return nil
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		switch in.Subject {
		case "count": // counts its calls in the instance's state
			n := 0
			if v, ok := guest.StateGet("n"); ok {
				n, _ = strconv.Atoi(string(v))
			}
			n++
			guest.Log(guest.Debug, "count "+strconv.Itoa(n))
			if err := guest.StateSet("n", []byte(strconv.Itoa(n))); err != nil {
				return err
			}
			return out.Emit("counted", []byte(strconv.Itoa(n)))
		case "keep": // keeps its Output and writes into its input
			kept = out
			in.Payload[0] = 'X'
			return out.Emit("", in.Payload)
		case "fan": // emits twice, then fails when asked to
			if err := out.Emit("a", in.Payload); err != nil {
				return err
			}
			if err := out.Emit("b", in.Payload); err != nil {
				return err
			}
			if string(in.Payload) == "fail" {
				return errors.New("failed after emitting")
			}
			return nil
		}
		return fmt.Errorf("unexpected subject %q", in.Subject)
	})
	guest.Collect(func(now time.Time, out *guest.Output) error {
		if !guest.Now().Equal(now) {
			return fmt.Errorf("guest.Now() = %v during a collect at %v", guest.Now(), now)
		}
		if err := out.Emit("", nil); !errors.Is(err, guest.ErrBadArgument) {
			return fmt.Errorf("emit with no subject from a collector: %v, want ErrBadArgument", err)
		}
		return out.Emit("tick", now.AppendFormat(nil, time.RFC3339Nano))
	})
}

func TestConfig(t *testing.T) {
	tests := []struct {
		config, want, wantErr string
	}{
		{config: "", want: "{}"},
		{config: `{"a":1}`, want: `{"a":1}`},
		{config: `{"refuse":true}`, wantErr: "refused"},
	}
	for _, tt := range tests {
		i, err := guesttest.New([]byte(tt.config))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || i != nil {
				t.Errorf("New(%q) = %v, %v, want error %q", tt.config, i, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%q): %v", tt.config, err)
		}
		if gotConfig != tt.want {
			t.Errorf("New(%q): Init saw %q, want %q", tt.config, gotConfig, tt.want)
		}
	}
}

func TestStateAndLogsPerInstance(t *testing.T) {
	a, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		out, err := a.Transform(guest.Message{Subject: "count"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].Subject != "counted" || string(out[0].Payload) != strconv.Itoa(want) {
			t.Fatalf("call %d emitted %+v, want one counted=%d", want, out, want)
		}
	}
	if v, ok := a.State("n"); !ok || string(v) != "3" {
		t.Errorf("State(n) = %q, %v, want 3", v, ok)
	}
	if _, ok := a.State("missing"); ok {
		t.Error("State(missing) reported true")
	}
	logs := a.Logs()
	if len(logs) != 3 || logs[2] != (guesttest.Log{Level: guest.Debug, Msg: "count 3"}) {
		t.Errorf("Logs() = %+v, want three debug lines ending with count 3", logs)
	}

	b, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Transform(guest.Message{Subject: "count"})
	if err != nil || len(out) != 1 || string(out[0].Payload) != "1" {
		t.Errorf("a new instance emitted %+v, %v; want a fresh count of 1", out, err)
	}
}

func TestOutputsKeepTimeAndSubject(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	payload := []byte("abc")
	out, err := guesttest.RunTransform(nil, guest.Message{Subject: "keep", Source: "device.d1", Time: at, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	want := guest.Message{Subject: "keep", Time: at, Payload: []byte("Xbc")}
	if len(out) != 1 || out[0].Subject != want.Subject || out[0].Source != "" || !out[0].Time.Equal(at) || string(out[0].Payload) != "Xbc" {
		t.Fatalf("emitted %+v, want %+v", out, want)
	}
	if string(payload) != "abc" {
		t.Errorf("the plugin wrote into the caller's payload: %q", payload)
	}
	if err := kept.Emit("late", nil); err == nil {
		t.Error("an Output kept after its call still emits")
	}
}

func TestFailedCallEmitsNothing(t *testing.T) {
	tests := []struct {
		payload  string
		wantSubs []string
		wantErr  string
	}{
		{payload: "ok", wantSubs: []string{"a", "b"}},
		{payload: "fail", wantErr: "failed after emitting"},
	}
	for _, tt := range tests {
		out, err := guesttest.RunTransform(nil, guest.Message{Subject: "fan", Payload: []byte(tt.payload)})
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || out != nil {
				t.Errorf("%s: got %+v, %v; want no output and error %q", tt.payload, out, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(out) != len(tt.wantSubs) {
			t.Fatalf("%s: got %+v, %v", tt.payload, out, err)
		}
		for k, m := range out {
			if m.Subject != tt.wantSubs[k] || string(m.Payload) != tt.payload {
				t.Errorf("%s: output %d = %s %q", tt.payload, k, m.Subject, m.Payload)
			}
		}
	}
}

func TestRunCollect(t *testing.T) {
	now := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	out, err := guesttest.RunCollect(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Subject != "tick" || !out[0].Time.Equal(now) || string(out[0].Payload) != now.Format(time.RFC3339Nano) {
		t.Errorf("RunCollect emitted %+v, want one tick at %v", out, now)
	}
}

// Instances used from several goroutines stay consistent: calls are serialised and each
// instance keeps its own state.
func TestConcurrentInstances(t *testing.T) {
	const instances, calls = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, instances)
	for range instances {
		wg.Go(func() {
			i, err := guesttest.New(nil)
			if err != nil {
				errs <- err
				return
			}
			for want := 1; want <= calls; want++ {
				out, err := i.Transform(guest.Message{Subject: "count"})
				if err != nil || len(out) != 1 || string(out[0].Payload) != strconv.Itoa(want) {
					errs <- fmt.Errorf("call %d: %+v, %v", want, out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
