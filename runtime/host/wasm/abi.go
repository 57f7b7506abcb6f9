package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// hostModule is the import module of ABI v1.
const hostModule = "switchyard_v1"

// Status codes of the host imports.
const (
	statusOK          int32 = 0
	statusAbsent      int32 = -1
	statusBadArgument int32 = -2
	statusLimit       int32 = -3
	statusNotAllowed  int32 = -4
	statusFailed      int32 = -5 // http_fetch: a network error or a timeout
)

// Fields of the input import.
const (
	fieldPayload uint32 = iota
	fieldSubject
	fieldSource
)

// maxFailBytes bounds the message a guest gives with fail.
const maxFailBytes = 1024

var (
	emptyConfig = []byte("{}")
	guestLevels = [...]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
)

// instantiateHost instantiates the switchyard_v1 host module. Its
// functions find the call they serve through the call's context
// (callerSlot), so one host module serves every guest of the runtime.
func instantiateHost(ctx context.Context, wz wazero.Runtime) (api.Module, error) {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	types := func(t ...api.ValueType) []api.ValueType { return t }
	b := wz.NewHostModuleBuilder(hostModule)
	for _, f := range []struct {
		name            string
		fn              api.GoModuleFunc
		params, results []api.ValueType
	}{
		{"log", hostLog, types(i32, i32, i32), nil},
		{"now", hostNow, nil, types(i64)},
		{"config", hostConfig, types(i32, i32), types(i32)},
		{"input", hostInput, types(i32, i32, i32), types(i32)},
		{"input_time", hostInputTime, nil, types(i64)},
		{"emit", hostEmit, types(i32, i32, i32, i32), types(i32)},
		{"state_get", hostStateGet, types(i32, i32, i32, i32), types(i32)},
		{"state_set", hostStateSet, types(i32, i32, i32, i32), types(i32)},
		{"state_delete", hostStateDelete, types(i32, i32), types(i32)},
		{"fail", hostFail, types(i32, i32), nil},
		{"http_fetch", hostHTTPFetch, types(i32, i32), types(i32)},
		{"http_response", hostHTTPResponse, types(i32, i32), types(i32)},
		{"http_error", hostHTTPError, types(i32, i32), types(i32)},
	} {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	return b.Instantiate(ctx)
}

// callerSlot is the module instance whose call is running: the context of
// every guest call is the slot's callCtx.
func callerSlot(ctx context.Context) *slot {
	if c, ok := ctx.(*callCtx); ok {
		return c.slot
	}
	s, _ := ctx.Value(slotKey{}).(*slot)
	return s
}

func u32(v uint64) uint32 { return api.DecodeU32(v) }

func status(v int32) uint64 { return api.EncodeI32(v) }

// trueLen is a length as the ABI returns it.
func trueLen(n int) int32 { return int32(min(n, math.MaxInt32)) }

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		return
	}
	level := u32(stack[0])
	text, ok := mod.Memory().Read(u32(stack[1]), u32(stack[2]))
	if !ok || level >= uint32(len(guestLevels)) {
		s.badCall()
		return
	}
	text, cut := clip(text)
	s.sink.line(guestLevels[level], text, cut, "")
}

func hostNow(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = api.EncodeI64(time.Now().UnixNano())
}

func hostConfig(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	view, ok := mod.Memory().Read(u32(stack[0]), u32(stack[1]))
	if !ok {
		stack[0] = status(s.bad())
		return
	}
	cfg := emptyConfig
	if s.inst != nil {
		cfg = s.inst.config
	}
	copy(view, cfg)
	stack[0] = status(trueLen(len(cfg)))
}

func hostInput(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	field := u32(stack[0])
	view, ok := mod.Memory().Read(u32(stack[1]), u32(stack[2]))
	switch {
	case !ok || field > fieldSource:
		stack[0] = status(s.bad())
	case !s.hasInput:
		stack[0] = status(statusAbsent)
	case field == fieldPayload:
		copy(view, s.in.Payload)
		stack[0] = status(trueLen(len(s.in.Payload)))
	case field == fieldSubject:
		copy(view, s.in.Subject)
		stack[0] = status(trueLen(len(s.in.Subject)))
	default:
		copy(view, s.in.Source)
		stack[0] = status(trueLen(len(s.in.Source)))
	}
}

// hostInputTime is the input message's time in a transform call, the call's
// time in a collect call (what its outputs are stamped with), 0 otherwise.
func hostInputTime(ctx context.Context, _ api.Module, stack []uint64) {
	var ns int64
	if s := callerSlot(ctx); s != nil {
		switch {
		case s.hasInput && !s.in.Time.IsZero():
			ns = s.in.Time.UnixNano()
		case s.phase == phaseCollect && !s.now.IsZero():
			ns = s.now.UnixNano()
		}
	}
	stack[0] = api.EncodeI64(ns)
}

func hostEmit(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	stack[0] = status(s.emit(mod.Memory(), u32(stack[0]), u32(stack[1]), u32(stack[2]), u32(stack[3])))
}

// emit queues one output of the current call.
func (s *slot) emit(mem api.Memory, subjectPtr, subjectLen, payloadPtr, payloadLen uint32) int32 {
	if s.phase != phaseTransform && s.phase != phaseCollect {
		return statusNotAllowed
	}
	payload, ok := mem.Read(payloadPtr, payloadLen)
	if !ok {
		return s.bad()
	}
	var subject []byte
	if subjectLen != 0 {
		if subject, ok = mem.Read(subjectPtr, subjectLen); !ok || !utf8.Valid(subject) {
			return s.bad()
		}
	} else if !s.hasInput {
		return s.bad() // no input subject to inherit
	}
	lim := &s.inst.limits
	if len(s.out.msgs) >= lim.MaxEmits {
		s.limit(fmt.Errorf("more than %d emits in one call", lim.MaxEmits))
		return statusLimit
	}
	size := len(payload) + len(subject)
	if subject == nil {
		size += len(s.in.Subject)
	}
	if s.outBytes+size > lim.MaxOutputBytes {
		s.limit(fmt.Errorf("more than %d output bytes in one call", lim.MaxOutputBytes))
		return statusLimit
	}
	s.outBytes += size
	m := Message{Source: s.inst.id, Subject: s.in.Subject, Payload: append([]byte(nil), payload...)}
	if subject != nil && string(subject) != s.in.Subject {
		m.Subject = string(subject)
	}
	if s.hasInput {
		m.Tenant, m.Time, m.Meta = s.in.Tenant, s.in.Time, s.in.Meta
	} else {
		m.Tenant, m.Time = s.inst.tenant, s.now
	}
	s.out.msgs = append(s.out.msgs, m)
	return statusOK
}

func hostStateGet(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil || s.inst == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	mem := mod.Memory()
	key, ok := mem.Read(u32(stack[0]), u32(stack[1]))
	view, ok2 := mem.Read(u32(stack[2]), u32(stack[3]))
	if !ok || !ok2 {
		stack[0] = status(s.bad())
		return
	}
	v, ok := s.inst.state.get(key)
	if !ok {
		stack[0] = status(statusAbsent)
		return
	}
	copy(view, v)
	stack[0] = status(trueLen(len(v)))
}

func hostStateSet(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil || s.inst == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	mem := mod.Memory()
	key, ok := mem.Read(u32(stack[0]), u32(stack[1]))
	val, ok2 := mem.Read(u32(stack[2]), u32(stack[3]))
	if !ok || !ok2 {
		stack[0] = status(s.bad())
		return
	}
	stack[0] = status(s.inst.state.set(key, val))
}

func hostStateDelete(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil || s.inst == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	key, ok := mod.Memory().Read(u32(stack[0]), u32(stack[1]))
	if !ok {
		stack[0] = status(s.bad())
		return
	}
	s.inst.state.delete(key)
	stack[0] = status(statusOK)
}

func hostFail(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		return
	}
	text, ok := mod.Memory().Read(u32(stack[0]), u32(stack[1]))
	if !ok {
		s.badCall()
		return
	}
	s.failMsg = boundedText(text, maxFailBytes)
}
