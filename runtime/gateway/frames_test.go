package gateway

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      inFrame
		wantClose int    // fatal error
		wantCode  string // recoverable error
	}{
		{name: "hello", in: `{"type":"hello","protocol":1,"model":"m","firmware":"1.0","capabilities":["a","b"]}`,
			want: inFrame{Type: "hello", Protocol: 1, Model: "m", Firmware: "1.0", Capabilities: []string{"a", "b"}}},
		{name: "hello minimal", in: `{"type":"hello","protocol":1}`, want: inFrame{Type: "hello", Protocol: 1}},
		{name: "hello with null fields", in: `{"type":"hello","protocol":1,"model":null,"capabilities":null}`, want: inFrame{Type: "hello", Protocol: 1}},
		{name: "unknown keys ignored", in: `{"type":"hello","protocol":1,"colour":"red"}`, want: inFrame{Type: "hello", Protocol: 1}},
		{name: "last duplicate key wins", in: `{"type":"ack","id":"a","id":"b"}`, want: inFrame{Type: "ack", ID: "b"}},
		{name: "heartbeat", in: `{"type":"heartbeat","seq":3}`, want: inFrame{Type: "heartbeat", Seq: 3, HasSeq: true}},
		{name: "heartbeat null seq", in: `{"type":"heartbeat","seq":null}`, want: inFrame{Type: "heartbeat"}},
		{name: "data", in: `{"type":"data","stream":"a.b-c_d","payload":[1, 2],"id":"x"}`,
			want: inFrame{Type: "data", Stream: "a.b-c_d", Payload: json.RawMessage(`[1, 2]`), ID: "x"}},
		{name: "device error", in: `{"type":"error","code":"c","message":"m","ref":"r"}`, want: inFrame{Type: "error", Code: "c", Message: "m", Ref: "r"}},
		{name: "device error with bad fields", in: `{"type":"error","code":5}`, want: inFrame{Type: "error"}},

		{name: "keys are case-sensitive", in: `{"Type":"hello","protocol":1}`, wantClose: CloseMalformed},
		{name: "not JSON", in: `hello`, wantClose: CloseMalformed},
		{name: "null", in: `null`, wantClose: CloseMalformed},
		{name: "string", in: `"hello"`, wantClose: CloseMalformed},
		{name: "trailing garbage", in: `{"type":"heartbeat"} x`, wantClose: CloseMalformed},
		{name: "null type", in: `{"type":null}`, wantClose: CloseMalformed},
		{name: "invalid UTF-8", in: "{\"type\":\"\xc3\"}", wantClose: CloseInvalidPayload},
		{name: "unknown type", in: `{"type":"HELLO"}`, wantClose: CloseProtocolError},
		{name: "protocol as string", in: `{"type":"hello","protocol":"1"}`, wantClose: CloseProtocolError},
		{name: "protocol 1.0", in: `{"type":"hello","protocol":1.0}`, wantClose: CloseProtocolError},
		{name: "protocol null", in: `{"type":"hello","protocol":null}`, wantClose: CloseProtocolError},
		{name: "model too long", in: `{"type":"hello","protocol":1,"model":"` + strings.Repeat("m", 65) + `"}`, wantClose: CloseProtocolError},
		{name: "firmware control char", in: `{"type":"hello","protocol":1,"firmware":"1\n"}`, wantClose: CloseProtocolError},
		{name: "capabilities not strings", in: `{"type":"hello","protocol":1,"capabilities":[1]}`, wantClose: CloseProtocolError},
		{name: "too many capabilities", in: `{"type":"hello","protocol":1,"capabilities":[` + strings.Repeat(`"c",`, 32) + `"c"]}`, wantClose: CloseProtocolError},

		{name: "data id not a string", in: `{"type":"data","stream":"s","payload":1,"id":7}`, wantCode: ErrCodeInvalidFrame},
		{name: "data stream uppercase", in: `{"type":"data","stream":"Temp","payload":1}`, wantCode: ErrCodeInvalidStream},
		{name: "data stream empty token", in: `{"type":"data","stream":"a..b","payload":1}`, wantCode: ErrCodeInvalidStream},
		{name: "data stream number", in: `{"type":"data","stream":5,"payload":1}`, wantCode: ErrCodeInvalidFrame},
		{name: "data no payload", in: `{"type":"data","stream":"s"}`, wantCode: ErrCodeInvalidFrame},
		{name: "ack empty id", in: `{"type":"ack","id":""}`, wantCode: ErrCodeInvalidFrame},
		{name: "heartbeat seq string", in: `{"type":"heartbeat","seq":"1"}`, wantCode: ErrCodeInvalidFrame},

		{name: "firmware_status", in: `{"type":"firmware_status","version":"1.5.0","status":"downloading","progress":4096}`,
			want: inFrame{Type: "firmware_status", Version: "1.5.0", Status: "downloading", Progress: 4096}},
		{name: "firmware_status failed", in: `{"type":"firmware_status","version":"1.5.0","status":"failed","reason":"sha256 mismatch","progress":null}`,
			want: inFrame{Type: "firmware_status", Version: "1.5.0", Status: "failed", Reason: "sha256 mismatch"}},
		{name: "firmware_status no version", in: `{"type":"firmware_status","status":"verified"}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status unknown status", in: `{"type":"firmware_status","version":"1.5.0","status":"offered"}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status status number", in: `{"type":"firmware_status","version":"1.5.0","status":3}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status negative progress", in: `{"type":"firmware_status","version":"1.5.0","status":"downloading","progress":-1}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status fractional progress", in: `{"type":"firmware_status","version":"1.5.0","status":"downloading","progress":1.5}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status failed without reason", in: `{"type":"firmware_status","version":"1.5.0","status":"failed"}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status long reason", in: `{"type":"firmware_status","version":"1.5.0","status":"failed","reason":"` + strings.Repeat("r", 257) + `"}`, wantCode: ErrCodeInvalidFrame},
		{name: "firmware_status long version", in: `{"type":"firmware_status","version":"` + strings.Repeat("1", 65) + `","status":"verified"}`, wantCode: ErrCodeInvalidFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFrame([]byte(tt.in))
			switch {
			case tt.wantClose != 0:
				if err == nil || err.Close != tt.wantClose {
					t.Fatalf("error %v, want close %d", err, tt.wantClose)
				}
				return
			case tt.wantCode != "":
				if err == nil || err.Close != 0 || err.Code != tt.wantCode {
					t.Fatalf("error %v, want %s", err, tt.wantCode)
				}
				return
			case err != nil:
				t.Fatalf("error %v", err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Fatalf("decoded %s, want %s", gb, wb)
			}
		})
	}
}

func TestValidStream(t *testing.T) {
	tests := []struct {
		stream string
		ok     bool
	}{
		{"temp", true},
		{"a.b.c", true},
		{"x_1-2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), true},
		{"", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"A", false},
		{"a b", false},
		{"*", false},
		{"a.>", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a.", 64) + "a", false}, // 129 bytes
	}
	for _, tt := range tests {
		if err := validStream(tt.stream); (err == nil) != tt.ok {
			t.Errorf("validStream(%q) = %v, want ok=%v", tt.stream, err, tt.ok)
		}
	}
}

func TestWireSize(t *testing.T) {
	tests := []struct {
		payload     int
		tlsOverhead uint8
		want        int64
	}{
		{0, 0, 2},
		{125, 0, 127},
		{126, 0, 130},
		{65535, 0, 65539},
		{65536, 0, 65546},
		{100, 22, 124},                      // one TLS 1.3 record
		{16380, 22, 16384 + 22},             // a frame of exactly one full record
		{16381, 29, 16385 + 2*29},           // one byte over: two records
		{3 * 16384, 21, 3*16384 + 4 + 4*21}, // TLS 1.2 ChaCha20
	}
	for _, tt := range tests {
		s := &session{tlsOverhead: tt.tlsOverhead}
		if got := s.wireSize(tt.payload); got != tt.want {
			t.Errorf("wireSize(%d) with overhead %d = %d, want %d", tt.payload, tt.tlsOverhead, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never split it
		{"日本", 4, "日"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// FuzzDecodeFrame checks the device frame decoder on arbitrary input: it
// never panics, every refusal is one the protocol documents, and every
// accepted frame satisfies the limits the rest of the gateway relies on.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","protocol":1,"model":"esp32","firmware":"1.4.2","capabilities":["display","ota"]}`,
		`{"type":"hello","protocol":2}`,
		`{"type":"heartbeat","seq":42}`,
		`{"type":"heartbeat"}`,
		`{"type":"data","stream":"sensors.temp","payload":{"c":21.5},"id":"m-1"}`,
		`{"type":"data","stream":"x","payload":null}`,
		`{"type":"ack","id":"m-1"}`,
		`{"type":"error","code":"display_failed","message":"panel","ref":"m-1"}`,
		`{"type":"data","stream":"Bad Stream","payload":1}`,
		`{"type":"firmware_status","version":"1.5.0","status":"downloading","progress":524288}`,
		`{"type":"firmware_status","version":"1.5.0","status":"failed","reason":"sha256 mismatch"}`,
		`{"type":5}`,
		`[]`,
		`{`,
		"{\"type\":\"\xff\"}",
		``,
	} {
		f.Add([]byte(seed))
	}
	closes := map[int]bool{CloseInvalidPayload: true, CloseMalformed: true, CloseProtocolError: true}
	codes := map[string]bool{ErrCodeInvalidFrame: true, ErrCodeInvalidStream: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeFrame(data)
		if err != nil {
			switch {
			case err.Close != 0 && (!closes[err.Close] || err.Code != ""):
				t.Fatalf("undocumented close %+v", err)
			case err.Close == 0 && !codes[err.Code]:
				t.Fatalf("undocumented error code %+v", err)
			case err.Close != 0 && len(err.Reason) > maxCloseReason:
				t.Fatalf("close reason of %d bytes", len(err.Reason))
			case !utf8.ValidString(err.Reason):
				t.Fatalf("reason is not UTF-8: %q", err.Reason)
			}
			return
		}
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("accepted invalid input %q", data)
		}
		switch got.Type {
		case "hello":
			if got.Protocol != ProtocolVersion || len(got.Capabilities) > maxCapabilities || len(got.Model) > maxTextField || len(got.Firmware) > maxTextField {
				t.Fatalf("hello beyond limits: %+v", got)
			}
		case "heartbeat":
		case "data":
			if validStream(got.Stream) != nil || !json.Valid(got.Payload) || len(got.ID) > maxTextField {
				t.Fatalf("data beyond limits: %+v", got)
			}
			// The accepted frame survives a round trip unchanged.
			frame := map[string]any{"type": "data", "stream": got.Stream, "payload": got.Payload}
			if got.ID != "" {
				frame["id"] = got.ID
			}
			re, err := json.Marshal(frame)
			if err != nil {
				t.Fatal(err)
			}
			again, ferr := decodeFrame(re)
			if ferr != nil || again.Stream != got.Stream || again.ID != got.ID || compact(t, again.Payload) != compact(t, got.Payload) {
				t.Fatalf("round trip of %q: %+v, %v", re, again, ferr)
			}
		case "ack":
			if checkText(got.ID) != nil {
				t.Fatalf("ack id %q", got.ID)
			}
		case "error":
			if len(got.Code) > maxTextField || len(got.Message) > maxErrorMessage || len(got.Ref) > maxTextField {
				t.Fatalf("error beyond limits: %+v", got)
			}
		case "firmware_status":
			if checkText(got.Version) != nil || !slices.Contains(firmwareStatuses, got.Status) || got.Progress < 0 ||
				len(got.Reason) > maxErrorMessage || got.Status == "failed" && got.Reason == "" {
				t.Fatalf("firmware_status beyond limits: %+v", got)
			}
		default:
			t.Fatalf("accepted unknown type %q", got.Type)
		}
	})
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %q: %v", raw, err)
	}
	return b.String()
}

// A session is most of what the relay adds to nbio's state per connection;
// past 256 bytes Go allocates it from the 288- or 320-byte size class.
func TestSessionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 256 {
		t.Errorf("a session takes %d bytes, more than the 256-byte size class: keep new per-connection state out of it or shrink another field", n)
	}
}
