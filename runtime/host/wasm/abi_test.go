package wasm

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// The probe's imports (probe.wat).
const (
	opLog uint32 = iota
	opNow
	opConfig
	opInput
	opInputTime
	opEmit
	opStateGet
	opStateSet
	opStateDelete
	opFail
	opHTTPFetch
	opHTTPResponse
	opHTTPError
)

// probeMemory is the size of probe.wat's memory.
const probeMemory = 64 << 10

func probePayload(op uint32, args ...uint32) []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b, op)
	for i, a := range args {
		binary.LittleEndian.PutUint32(b[4+4*i:], a)
	}
	return b
}

// probe calls one import through probe.wat and returns its result, all the
// outputs and the call's error.
func probe(in *Instance, op uint32, args ...uint32) (int64, []Message, error) {
	m := input("")
	m.Payload = probePayload(op, args...)
	var out []Message
	err := in.Transform(context.Background(), m, func(m Message) { out = append(out, m) })
	if err != nil || len(out) == 0 || len(out[len(out)-1].Payload) != 8 {
		return 0, out, err
	}
	return int64(binary.LittleEndian.Uint64(out[len(out)-1].Payload)), out, nil
}

func TestImportArguments(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	in := instantiate(t, compile(t, rt, "probe"), "transforms.probe", "probe", "", Limits{})
	const (
		end   = probeMemory
		huge  = 0xFFFFFFFF
		ok    = int64(statusOK)
		bad   = int64(statusBadArgument)
		empty = int64(statusAbsent)
	)
	subject := int64(len(input("").Subject))
	tests := []struct {
		name    string
		op      uint32
		args    []uint32
		want    int64
		badCall bool // counted in BadImportCalls
		outputs int  // besides the probe's own
	}{
		{"log", opLog, []uint32{1, 0, 4}, ok, false, 0},
		{"log past memory", opLog, []uint32{1, end - 2, 4}, ok, true, 0},
		{"log huge length", opLog, []uint32{1, 0, huge}, ok, true, 0},
		{"log bad level", opLog, []uint32{4, 0, 4}, ok, true, 0},
		{"config", opConfig, []uint32{100, 16}, 2, false, 0},
		{"config past memory", opConfig, []uint32{end - 1, 2}, bad, true, 0},
		{"config pointer wraps", opConfig, []uint32{huge, 2}, bad, true, 0},
		{"input subject", opInput, []uint32{fieldSubject, 100, 64}, subject, false, 0},
		{"input true length over limit", opInput, []uint32{fieldSource, 100, 2}, int64(len("device:d1")), false, 0},
		{"input bad field", opInput, []uint32{3, 100, 64}, bad, true, 0},
		{"input past memory", opInput, []uint32{fieldPayload, end, 1}, bad, true, 0},
		{"emit", opEmit, []uint32{0, 0, 0, 4}, ok, false, 1},
		{"emit subject past memory", opEmit, []uint32{end - 1, 2, 0, 4}, bad, true, 0},
		{"emit payload past memory", opEmit, []uint32{0, 0, end - 3, 4}, bad, true, 0},
		{"emit huge payload", opEmit, []uint32{0, 0, 0, huge}, bad, true, 0},
		// bytes 12..15 hold the payload pointer 0xFFFF: FF FF 00 00 is not UTF-8
		{"emit invalid UTF-8 subject", opEmit, []uint32{12, 4, 0xFFFF, 0}, bad, true, 0},
		{"state_get absent", opStateGet, []uint32{0, 1, 100, 4}, empty, false, 0},
		{"state_get key past memory", opStateGet, []uint32{end - 1, 2, 100, 4}, bad, true, 0},
		{"state_get buffer past memory", opStateGet, []uint32{0, 1, end - 1, 4}, bad, true, 0},
		{"state_set key past memory", opStateSet, []uint32{huge, 1, 0, 4}, bad, true, 0},
		{"state_set value past memory", opStateSet, []uint32{0, 1, 0, huge}, bad, true, 0},
		{"state_delete key past memory", opStateDelete, []uint32{end, 1}, bad, true, 0},
		{"state_delete absent", opStateDelete, []uint32{0, 1}, ok, false, 0},
		{"fail past memory", opFail, []uint32{end - 1, 8}, ok, true, 0},
		{"fail then return 0", opFail, []uint32{0, 4}, ok, false, 0},
		{"no import", opHTTPError + 1, nil, ok, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := in.Stats().BadImportCalls
			got, out, err := probe(in, tt.op, tt.args...)
			if err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if got != tt.want {
				t.Errorf("result %d, want %d", got, tt.want)
			}
			if len(out) != tt.outputs+1 {
				t.Errorf("%d outputs, want %d", len(out), tt.outputs+1)
			}
			if counted := in.Stats().BadImportCalls - before; counted != map[bool]uint64{true: 1}[tt.badCall] {
				t.Errorf("bad import calls counted: %d", counted)
			}
		})
	}
	if st := in.Stats(); st.Traps != 0 || st.Replaced != 0 {
		t.Fatalf("a bad argument cost a module instance: %+v", st)
	}
}

func TestImportValues(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	in := instantiate(t, compile(t, rt, "probe"), "transforms.probe", "probe", `{"k":"v"}`, Limits{})
	before := time.Now().UnixNano()
	now, _, err := probe(in, opNow)
	if err != nil || now < before || now > time.Now().UnixNano() {
		t.Errorf("now = %d (%v), want the wall clock", now, err)
	}
	if ts, _, err := probe(in, opInputTime); err != nil || ts != inputTime.UnixNano() {
		t.Errorf("input_time = %d (%v), want %d", ts, err, inputTime.UnixNano())
	}
	if n, _, err := probe(in, opConfig, 100, 0); err != nil || n != int64(len(`{"k":"v"}`)) {
		t.Errorf("config with limit 0 = %d (%v), want the true length", n, err)
	}
	// The key is the 4 bytes of the last argument, at offset 16 of the
	// payload, and is given as 4 in every call: state_set stores there the
	// payload's first 4 bytes.
	steps := []struct {
		op   uint32
		args []uint32
		want int64
	}{
		{opStateGet, []uint32{16, 4, 100, 4}, -1},
		{opStateSet, []uint32{16, 4, 0, 4}, 0},
		{opStateGet, []uint32{16, 4, 100, 4}, 4},
		{opStateDelete, []uint32{16, 4, 0, 4}, 0},
		{opStateGet, []uint32{16, 4, 100, 4}, -1},
	}
	for i, s := range steps {
		if got, _, err := probe(in, s.op, s.args...); err != nil || got != s.want {
			t.Errorf("state step %d (op %d): %d (%v), want %d", i, s.op, got, err, s.want)
		}
	}
}

func TestGuestLog(t *testing.T) {
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	in := instantiate(t, compile(t, rt, "probe"), "transforms.probe", "probe", "", Limits{})
	// log(2, 0, 5000): a warn line of the memory's first 5000 bytes, cut at 4 KiB.
	if _, _, err := probe(in, opLog, 2, 0, 5000); err != nil {
		t.Fatal(err)
	}
	line := logs.String()
	if !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, `"tenant":"acme","plugin":"transforms.probe","instance":"probe"`) {
		t.Fatalf("log line lacks the level or the attributes: %s", line)
	}
	got := msgs(t, line)
	if len(got) != 1 || !strings.HasSuffix(got[0], truncatedTag) || len(got[0]) > maxLogLine+len(truncatedTag)+64 {
		t.Fatalf("want one line cut at %d bytes, got %d lines, first %d bytes", maxLogLine, len(got), len(got[0]))
	}
}

func TestGuestLogRate(t *testing.T) {
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	in := instantiate(t, compile(t, rt, "probe"), "transforms.probe", "probe", "", Limits{})
	const calls = logBurst + 100
	for range calls {
		if _, _, err := probe(in, opLog, 1, 0, 4); err != nil {
			t.Fatal(err)
		}
	}
	// Count the guest's lines only: when the bucket refills during the run,
	// the host adds its own "lines dropped" notice.
	lines := 0
	for _, m := range msgs(t, logs.String()) {
		if !strings.HasPrefix(m, "plugin log lines dropped") {
			lines++
		}
	}
	dropped := in.Stats().LogLinesDropped
	if dropped == 0 || lines >= calls || uint64(lines)+dropped != calls {
		t.Fatalf("%d lines logged, %d dropped, of %d", lines, dropped, calls)
	}
}

// FuzzImports calls every import with arbitrary arguments: the host must
// never panic, never fail the call, and answer with a length or a status
// of the ABI. The instance may fetch from no host, so http_fetch is
// refused after its arguments are checked, and no request leaves.
func FuzzImports(f *testing.F) {
	for _, seed := range [][]uint32{
		{opLog, 1, 0, 4, 0}, {opConfig, 0, 16, 0, 0}, {opInput, 0, 100, 64, 0}, {opEmit, 0, 3, 0, 4},
		{opStateGet, 0, 1, 0, 4}, {opStateSet, 0, 1, 0, 4}, {opStateDelete, 0, 1, 0, 0}, {opFail, 0, 4, 0, 0},
		{opEmit, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {opInput, 3, 0, 0, 0},
		{opHTTPFetch, 0, 20, 0, 0}, {opHTTPResponse, 0, 64, 0, 0}, {opHTTPError, 0, 64, 0, 0},
		{opHTTPFetch, 0xFFFFFFF0, 0x7FFFFFFF, 0, 0},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4])
	}
	rt, _, _ := newRuntime(f, RuntimeOptions{})
	in := instantiate(f, compile(f, rt, "probe"), "transforms.probe", "probe", "", Limits{})
	f.Fuzz(func(t *testing.T, op, a, b, c, d uint32) {
		op %= opHTTPError + 1
		got, _, err := probe(in, op, a, b, c, d)
		if err != nil {
			t.Fatalf("op %d (%d, %d, %d, %d): %v", op, a, b, c, d, err)
		}
		if op != opNow && op != opInputTime && got < int64(statusFailed) {
			t.Fatalf("op %d (%d, %d, %d, %d) = %d: not a length or a status of the ABI", op, a, b, c, d, got)
		}
	})
}
