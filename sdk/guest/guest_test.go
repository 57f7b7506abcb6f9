//go:build !wasip1

package guest

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
)

func TestStatusError(t *testing.T) {
	tests := []struct {
		status int32
		want   error
		text   string
	}{
		{abi.OK, nil, ""},
		{abi.BadArgument, ErrBadArgument, "guest: emit: bad argument"},
		{abi.Limit, ErrLimit, "guest: emit: limit reached"},
		{abi.NotAllowed, ErrNotAllowed, "guest: emit: not allowed here"},
		{abi.Failed, ErrFailed, "guest: emit: failed"},
		{-99, nil, "guest: emit: unexpected status -99 from the host"},
	}
	for _, tt := range tests {
		err := statusError("emit", tt.status)
		if tt.text == "" {
			if err != nil {
				t.Errorf("status %d: error %v, want nil", tt.status, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.text {
			t.Errorf("status %d: error %v, want %q", tt.status, err, tt.text)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("status %d: %v does not wrap %v", tt.status, err, tt.want)
		}
	}
}

func TestLevelString(t *testing.T) {
	for l, want := range map[Level]string{Debug: "debug", Info: "info", Warn: "warn", Error: "error", 7: "level(7)"} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", int32(l), got, want)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	savedInit, savedTransform, savedCollect := initFunc, transformFunc, collectFunc
	t.Cleanup(func() { initFunc, transformFunc, collectFunc = savedInit, savedTransform, savedCollect })
	initFunc, transformFunc, collectFunc = nil, nil, nil
	noInit := func([]byte) error { return nil }
	noTransform := func(Message, *Output) error { return nil }
	noCollect := func(time.Time, *Output) error { return nil }

	tests := []struct {
		name     string
		register func()
		want     string // "" when it must not panic
	}{
		{"nil init", func() { Init(nil) }, "guest: Init: nil function"},
		{"nil transform", func() { Transform(nil) }, "guest: Transform: nil function"},
		{"nil collect", func() { Collect(nil) }, "guest: Collect: nil function"},
		{"init", func() { Init(noInit) }, ""},
		{"transform", func() { Transform(noTransform) }, ""},
		{"collect", func() { Collect(noCollect) }, ""},
		{"init twice", func() { Init(noInit) }, "guest: Init: already registered"},
		{"transform twice", func() { Transform(noTransform) }, "guest: Transform: already registered"},
		{"collect twice", func() { Collect(noCollect) }, "guest: Collect: already registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				got, _ := recover().(string)
				if got != tt.want {
					t.Errorf("panic %q, want %q", got, tt.want)
				}
			}()
			tt.register()
		})
	}
}

// Outside a guesttest call there is no instance: the kit must say so, not crash.
func TestOutsideCall(t *testing.T) {
	var out Output
	if err := out.Emit("a.b", nil); !errors.Is(err, errCallEnded) {
		t.Errorf("Emit on an Output of no call: %v, want %v", err, errCallEnded)
	}
	if err := (*Output)(nil).Emit("a.b", nil); !errors.Is(err, errCallEnded) {
		t.Errorf("Emit on a nil Output: %v, want %v", err, errCallEnded)
	}
	if v, ok := StateGet("k"); ok || v != nil {
		t.Errorf("StateGet = %q, %v, want nothing", v, ok)
	}
	if err := StateSet("k", []byte("v")); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("StateSet: %v, want ErrNotAllowed", err)
	}
	if err := StateDelete("k"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("StateDelete: %v, want ErrNotAllowed", err)
	}
	if d := time.Since(Now()); d < 0 || d > time.Minute {
		t.Errorf("Now() is %v away from the wall clock", d)
	}
}

func TestLogOutsideCallGoesToSlog(t *testing.T) {
	var buf bytes.Buffer
	saved := slog.Default()
	t.Cleanup(func() { slog.SetDefault(saved) })
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))

	for _, tt := range []struct {
		level Level
		want  string
	}{{Debug, "level=DEBUG"}, {Info, "level=INFO"}, {Warn, "level=WARN"}, {Error, "level=ERROR"}} {
		buf.Reset()
		Log(tt.level, "hello "+tt.level.String())
		if line := buf.String(); !strings.Contains(line, tt.want) || !strings.Contains(line, `msg="hello `+tt.level.String()+`"`) {
			t.Errorf("Log(%v) wrote %q, want %s and the message", tt.level, line, tt.want)
		}
	}
}
