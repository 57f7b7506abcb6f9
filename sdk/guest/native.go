//go:build !wasip1

package guest

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
	"github.com/switchyard/switchyard/sdk/guest/internal/native"
)

// This file runs the kit in-process, for unit tests on any platform but wasip1: the host
// imports are answered by the native.Host of the guesttest call in progress. Outside such a
// call there is no instance: Log goes to slog's default logger, Now is the wall clock, and
// the state functions fail with ErrNotAllowed.

func init() {
	native.Install(native.Entry{Init: runInit, Transform: runTransform, Collect: runCollect})
}

func sysLog(level int32, msg string) {
	if h := native.Active(); h != nil {
		h.Log(level, msg)
		return
	}
	// Debug 0, Info 1, Warn 2, Error 3 are slog's -4, 0, 4, 8.
	slog.Log(context.Background(), slog.Level((level-1)*4), msg)
}

func sysNow() int64 {
	if h := native.Active(); h != nil {
		return h.Now()
	}
	return time.Now().UnixNano()
}

func sysInputTime() int64 { return native.Active().InputTime() }

// sysConfig and sysInput are called only by the exports, which run only inside a Host's call.

func sysConfig() []byte { return native.Active().Config() }

func sysInput() (Message, bool) {
	in, ok := native.Active().Input()
	if !ok {
		return Message{}, false
	}
	return Message{
		Subject: in.Subject,
		Source:  in.Source,
		Time:    fromUnixNano(in.Time),
		Payload: append([]byte(nil), in.Payload...),
	}, true
}

func sysEmit(subject string, payload []byte) int32 {
	if h := native.Active(); h != nil {
		return h.Emit(subject, payload)
	}
	return abi.NotAllowed
}

func sysStateGet(key string) ([]byte, int32) {
	if h := native.Active(); h != nil {
		return h.StateGet(key)
	}
	return nil, abi.NotAllowed
}

func sysStateSet(key string, val []byte) int32 {
	if h := native.Active(); h != nil {
		return h.StateSet(key, val)
	}
	return abi.NotAllowed
}

func sysStateDelete(key string) int32 {
	if h := native.Active(); h != nil {
		return h.StateDelete(key)
	}
	return abi.NotAllowed
}

func sysHTTPFetch(req []byte) ([]byte, int32, string) {
	if h := native.Active(); h != nil {
		return h.HTTPFetch(req)
	}
	return nil, abi.NotAllowed, "no call in progress"
}
