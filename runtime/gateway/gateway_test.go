package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	gws "github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/runtime/config"
)

func TestHandshake(t *testing.T) {
	h := start(t, nil)
	h.auth.add("tok-revoked", Identity{Tenant: "t1", Device: "dev-r"})
	h.auth.revoke("tok-revoked")
	base := strings.TrimSuffix(h.url, "/ws/device")

	tests := []struct {
		name       string
		url        string
		opts       []dialOpt
		wantStatus int    // 0: the upgrade succeeds
		wantCode   string // error.code of the JSON body
		reason     string // handshakes_refused_total label
	}{
		{name: "bearer header", url: h.url, opts: []dialOpt{bearer("tok-a")}},
		{name: "token query", url: h.url + "?token=tok-a"},
		{name: "header wins over query", url: h.url + "?token=nope", opts: []dialOpt{bearer("tok-a")}},
		{name: "missing token", url: h.url, wantStatus: 401, wantCode: "unauthorized", reason: "unauthorized"},
		{name: "unknown token", url: h.url, opts: []dialOpt{bearer("nope")}, wantStatus: 401, wantCode: "unauthorized", reason: "unauthorized"},
		{name: "unknown token in query", url: h.url + "?token=nope", wantStatus: 401, wantCode: "unauthorized", reason: "unauthorized"},
		{name: "basic auth is not a token", url: h.url, opts: []dialOpt{func(_ *gws.Dialer, hd http.Header) { hd.Set("Authorization", "Basic dG9rLWE=") }},
			wantStatus: 401, wantCode: "unauthorized", reason: "unauthorized"},
		{name: "revoked token", url: h.url, opts: []dialOpt{bearer("tok-revoked")}, wantStatus: 401, wantCode: "device_revoked", reason: "device_revoked"},
		{name: "wrong path", url: base + "/ws/other", opts: []dialOpt{bearer("tok-a")}, wantStatus: 404, wantCode: "not_found", reason: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.reason != "" {
				before = h.counter(t, "switchyard_gateway_handshakes_refused_total", "reason", tt.reason)
			}
			c, resp, err := h.dial(t, tt.url, tt.opts...)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				send(t, c, map[string]any{"type": "hello", "protocol": 1})
				if w := read(t, c); w["type"] != "welcome" || w["device"] != "dev-a" {
					t.Fatalf("welcome = %v", w)
				}
				return
			}
			if !errors.Is(err, gws.ErrBadHandshake) {
				t.Fatalf("dial error %v, want a refused handshake", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if code, msg := errorBody(t, resp); code != tt.wantCode || msg == "" {
				t.Fatalf("error %q %q, want code %q with a message", code, msg, tt.wantCode)
			}
			if tt.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if got := h.counter(t, "switchyard_gateway_handshakes_refused_total", "reason", tt.reason); got != before+1 {
				t.Errorf("refused{%s} = %v, want %v", tt.reason, got, before+1)
			}
		})
	}
}

// TestHandshakeNotWebSocket checks requests a WebSocket client cannot make.
func TestHandshakeNotWebSocket(t *testing.T) {
	h := start(t, nil)
	httpURL := "http" + strings.TrimPrefix(h.url, "ws")
	tests := []struct {
		name, method string
		header       map[string]string
		wantStatus   int
		wantCode     string
	}{
		{"POST", http.MethodPost, map[string]string{"Authorization": "Bearer tok-a"}, 405, "method_not_allowed"},
		{"plain GET with a token", http.MethodGet, map[string]string{"Authorization": "Bearer tok-a"}, 400, "bad_request"},
		{"plain GET without a token", http.MethodGet, nil, 401, "unauthorized"},
		{"wrong WebSocket version", http.MethodGet, map[string]string{"Authorization": "Bearer tok-a", "Connection": "Upgrade",
			"Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 400, "bad_request"},
	}
	client := &http.Client{Timeout: 3 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, httpURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if code, _ := errorBody(t, resp); code != tt.wantCode {
				t.Fatalf("code %q, want %q", code, tt.wantCode)
			}
		})
	}
	if n := h.g.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after refused requests", n)
	}
}

func TestMaxConnections(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.MaxConnections = 2 })
	a, _ := h.connect(t, "tok-a")
	h.connect(t, "tok-b")
	_, resp, err := h.dial(t, h.url, bearer("tok-c"))
	if !errors.Is(err, gws.ErrBadHandshake) || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: err %v, want 503", err)
	}
	if code, _ := errorBody(t, resp); code != "too_many_connections" {
		t.Fatalf("code %q, want too_many_connections", code)
	}
	// A slot frees when a device leaves.
	_ = a.WriteMessage(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, "bye"))
	eventually(t, "the first session to end", func() bool { return h.g.Connections() == 1 })
	h.connect(t, "tok-c")
	if got := h.counter(t, "switchyard_gateway_closes_total", "code", "1000"); got != 1 {
		t.Errorf("closes{1000} = %v, want 1", got)
	}
}

func TestHelloWelcome(t *testing.T) {
	h := start(t, func(c *config.Gateway) {
		c.HeartbeatInterval = 1500 * time.Millisecond
		c.HeartbeatTimeout = 4500 * time.Millisecond
		c.MaxFrameSize = 32 << 10
	})
	_, w := h.connect(t, "tok-a")
	want := map[string]any{"type": "welcome", "protocol": 1.0, "device": "dev-a",
		"heartbeat_interval_ms": 1500.0, "heartbeat_timeout_ms": 4500.0, "max_frame_size": float64(32 << 10)}
	for k, v := range want {
		if w[k] != v {
			t.Errorf("welcome[%s] = %v, want %v", k, w[k], v)
		}
	}
	sid, _ := w["session"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(sid) {
		t.Errorf("session %q is not 16 hex digits", sid)
	}
	if _, err := time.Parse(time.RFC3339Nano, w["time"].(string)); err != nil {
		t.Errorf("welcome time: %v", err)
	}
	seen := receive(t, h.rec.seen, "Seen at hello")
	if seen.tenant != "t1" || seen.device != "dev-a" || seen.firmware != "1.2.3" {
		t.Errorf("Seen = %+v", seen)
	}
	si := h.session(t, "t1", "dev-a")
	if si.State != "ready" || si.Session != sid || si.Firmware != "1.2.3" || si.Model != "esp32-display" ||
		strings.Join(si.Capabilities, ",") != "display,ota" || si.RemoteAddr == "" {
		t.Errorf("SessionInfo = %+v", si)
	}
	if got := h.counter(t, "switchyard_gateway_connections", "", ""); got != 1 {
		t.Errorf("connections gauge = %v, want 1", got)
	}
}

func TestHeartbeat(t *testing.T) {
	h := start(t, nil)
	c, _ := h.connect(t, "tok-a")
	tests := []struct {
		name  string
		frame string
		want  map[string]any // fields the reply must have
		noSeq bool
	}{
		{"with seq", `{"type":"heartbeat","seq":7}`, map[string]any{"type": "heartbeat", "seq": 7.0}, false},
		{"large seq", `{"type":"heartbeat","seq":18446744073709551615}`, map[string]any{"type": "heartbeat"}, false},
		{"without seq", `{"type":"heartbeat"}`, map[string]any{"type": "heartbeat"}, true},
		{"bad seq", `{"type":"heartbeat","seq":-1}`, map[string]any{"type": "error", "code": "invalid_frame"}, true},
		{"fractional seq", `{"type":"heartbeat","seq":1.5}`, map[string]any{"type": "error", "code": "invalid_frame"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sendRaw(t, c, tt.frame)
			r := read(t, c)
			for k, v := range tt.want {
				if r[k] != v {
					t.Errorf("reply[%s] = %v, want %v (reply %v)", k, r[k], v, r)
				}
			}
			if _, has := r["seq"]; has == tt.noSeq {
				t.Errorf("reply %v: seq present = %v", r, has)
			}
			if r["type"] == "heartbeat" {
				if _, err := time.Parse(time.RFC3339Nano, r["time"].(string)); err != nil {
					t.Errorf("heartbeat time: %v", err)
				}
			}
		})
	}
	if got := h.counter(t, "switchyard_gateway_frames_in_total", "type", "heartbeat"); got != float64(len(tests)) {
		t.Errorf("frames_in{heartbeat} = %v, want %d", got, len(tests))
	}
}

func TestDataFrames(t *testing.T) {
	h := start(t, nil)
	c, _ := h.connect(t, "tok-a")
	tests := []struct {
		name       string
		frame      string
		wantStream string // "" : the handler must not be called
		wantData   string
		wantReply  map[string]any // nil: no reply
	}{
		{"with id", `{"type":"data","stream":"temp","payload":{"c":21.5},"id":"m1"}`, "temp", `{"c":21.5}`,
			map[string]any{"type": "ack", "id": "m1"}},
		{"without id", `{"type":"data","stream":"sensors.hum","payload":40}`, "sensors.hum", `40`, nil},
		{"null payload", `{"type":"data","stream":"x","payload":null,"id":"m2"}`, "x", `null`, map[string]any{"type": "ack", "id": "m2"}},
		{"bad stream", `{"type":"data","stream":"Temp!","payload":1,"id":"m3"}`, "", "",
			map[string]any{"type": "error", "code": "invalid_stream", "ref": "m3"}},
		{"wildcard stream", `{"type":"data","stream":"a.*","payload":1}`, "", "", map[string]any{"type": "error", "code": "invalid_stream"}},
		{"missing payload", `{"type":"data","stream":"temp","id":"m4"}`, "", "",
			map[string]any{"type": "error", "code": "invalid_frame", "ref": "m4"}},
		{"missing stream", `{"type":"data","payload":1}`, "", "", map[string]any{"type": "error", "code": "invalid_frame"}},
		{"ack without id", `{"type":"ack"}`, "", "", map[string]any{"type": "error", "code": "invalid_frame"}},
		{"duplicate hello", `{"type":"hello","protocol":1}`, "", "", map[string]any{"type": "error", "code": "duplicate_hello"}},
		{"device error", `{"type":"error","code":"display_failed","message":"panel"}`, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sendRaw(t, c, tt.frame)
			if tt.wantStream != "" {
				ev := receive(t, h.rec.data, "data event")
				if ev.id.Tenant != "t1" || ev.id.Device != "dev-a" || ev.stream != tt.wantStream || ev.payload != tt.wantData {
					t.Fatalf("DeviceData(%+v, %q, %s)", ev.id, ev.stream, ev.payload)
				}
				if got, want := DataSubject(ev.id.Device, ev.stream), "device.dev-a."+tt.wantStream; got != want {
					t.Errorf("subject %q, want %q", got, want)
				}
			} else {
				none(t, h.rec.data, 20*time.Millisecond, "data event")
			}
			// A heartbeat after the frame shows what (if anything) the frame
			// was answered with, and that the session is still open.
			sendRaw(t, c, `{"type":"heartbeat","seq":99}`)
			r := read(t, c)
			if tt.wantReply != nil {
				for k, v := range tt.wantReply {
					if r[k] != v {
						t.Fatalf("reply %v, want %v", r, tt.wantReply)
					}
				}
				if r["type"] == "error" && r["message"] == "" {
					t.Errorf("error frame without message: %v", r)
				}
				r = read(t, c)
			}
			if r["type"] != "heartbeat" || r["seq"] != 99.0 {
				t.Fatalf("frame %v, want the heartbeat reply", r)
			}
		})
	}
}

func TestSendAndAck(t *testing.T) {
	h := start(t, nil)
	a, _ := h.connect(t, "tok-a")
	b, _ := h.connect(t, "tok-b")
	c, _ := h.connect(t, "tok-c")
	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

	if err := h.g.Send("t1", "dev-a", Outbound{ID: "m1", Subject: "display.text", Time: at, Payload: json.RawMessage(`{"text":"hi"}`), Ack: true}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := read(t, a)
	if m["type"] != "message" || m["id"] != "m1" || m["subject"] != "display.text" || m["time"] != "2026-01-02T03:04:05.6Z" || m["ack"] != true {
		t.Fatalf("message frame %v", m)
	}
	if p, _ := json.Marshal(m["payload"]); string(p) != `{"text":"hi"}` {
		t.Fatalf("payload %s", p)
	}
	send(t, a, map[string]any{"type": "ack", "id": "m1"})
	if ack := receive(t, h.rec.acks, "ack"); ack.id.Device != "dev-a" || ack.mid != "m1" {
		t.Fatalf("ack %+v", ack)
	}

	// Without Ack the field is absent.
	if err := h.g.Send("t1", "dev-b", Outbound{ID: "m2", Subject: "s", Payload: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if m := read(t, b); m["id"] != "m2" || m["ack"] != nil {
		t.Fatalf("message %v", m)
	}

	tests := []struct {
		name     string
		selector map[string]string
		want     int
		gets     []*gws.Conn
	}{
		{"one label", map[string]string{"room": "kitchen"}, 1, []*gws.Conn{a}},
		{"shared label", map[string]string{"kind": "display"}, 2, []*gws.Conn{a, b}},
		{"two labels", map[string]string{"kind": "display", "room": "hall"}, 1, []*gws.Conn{b}},
		{"no match", map[string]string{"room": "attic"}, 0, nil},
		{"empty selector", map[string]string{}, 2, []*gws.Conn{a, b}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "sel-" + string(rune('0'+i))
			if n := h.g.SendMatching("t1", tt.selector, Outbound{ID: id, Subject: "s", Payload: json.RawMessage(`true`)}); n != tt.want {
				t.Fatalf("SendMatching = %d, want %d", n, tt.want)
			}
			for _, conn := range tt.gets {
				if m := read(t, conn); m["id"] != id {
					t.Fatalf("got %v, want message %s", m, id)
				}
			}
		})
	}
	// The other tenant saw nothing: its next frame is its heartbeat reply.
	sendRaw(t, c, `{"type":"heartbeat"}`)
	if r := read(t, c); r["type"] != "heartbeat" {
		t.Fatalf("tenant t2 got %v", r)
	}
	if got := h.counter(t, "switchyard_gateway_frames_out_total", "type", "message"); got != 2+1+2+1+2 {
		t.Errorf("frames_out{message} = %v, want 8", got)
	}
}

func TestSendErrors(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.MaxFrameSize = 1 << 10 })
	// Connected but no hello yet: not connected for Send.
	if _, _, err := h.dial(t, h.url, bearer("tok-b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session", func() bool { return h.g.Connections() == 1 })
	h.connect(t, "tok-a")
	ok := json.RawMessage(`{}`)
	tests := []struct {
		name   string
		device string
		m      Outbound
		want   error
	}{
		{"unknown device", "nope", Outbound{ID: "x", Subject: "s", Payload: ok}, ErrNotConnected},
		{"before hello", "dev-b", Outbound{ID: "x", Subject: "s", Payload: ok}, ErrNotConnected},
		{"no id", "dev-a", Outbound{Subject: "s", Payload: ok}, ErrInvalidMessage},
		{"id too long", "dev-a", Outbound{ID: strings.Repeat("i", 65), Subject: "s", Payload: ok}, ErrInvalidMessage},
		{"no subject", "dev-a", Outbound{ID: "x", Payload: ok}, ErrInvalidMessage},
		{"no payload", "dev-a", Outbound{ID: "x", Subject: "s"}, ErrInvalidMessage},
		{"payload not JSON", "dev-a", Outbound{ID: "x", Subject: "s", Payload: json.RawMessage(`{nope`)}, ErrInvalidMessage},
		{"too large", "dev-a", Outbound{ID: "x", Subject: "s", Payload: json.RawMessage(`"` + strings.Repeat("a", 1<<10) + `"`)}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.g.Send("t1", tt.device, tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send: %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "gateway: send to t1/"+tt.device+": ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
	if n := h.g.SendMatching("t1", nil, Outbound{ID: "x", Subject: "s", Payload: json.RawMessage(`{nope`)}); n != 0 {
		t.Errorf("SendMatching with a bad payload = %d", n)
	}
}

func TestProtocolErrors(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.MaxFrameSize = 1 << 10 })
	hello := `{"type":"hello","protocol":1}`
	tests := []struct {
		name   string
		hello  bool // say hello first
		msgTyp int
		frame  string
		code   int
		reason string
	}{
		{"frame before hello", false, gws.TextMessage, `{"type":"heartbeat"}`, 4002, "expected hello"},
		{"data before hello", false, gws.TextMessage, `{"type":"data","stream":"x","payload":1}`, 4002, "expected hello"},
		{"malformed JSON", true, gws.TextMessage, `{"type":`, 4000, "malformed"},
		{"malformed before hello", false, gws.TextMessage, `not json`, 4000, "malformed"},
		{"JSON array", true, gws.TextMessage, `[1,2]`, 4000, "malformed"},
		{"no type", true, gws.TextMessage, `{"seq":1}`, 4000, "no \"type\""},
		{"type not a string", true, gws.TextMessage, `{"type":5}`, 4000, "must be a string"},
		{"unknown type", true, gws.TextMessage, `{"type":"reboot"}`, 4002, "unknown frame type"},
		{"wrong protocol", false, gws.TextMessage, `{"type":"hello","protocol":2}`, 4002, "unsupported protocol 2"},
		{"hello without protocol", false, gws.TextMessage, `{"type":"hello"}`, 4002, "protocol"},
		{"hello with bad firmware", false, gws.TextMessage, `{"type":"hello","protocol":1,"firmware":""}`, 4002, "firmware"},
		{"binary frame", true, gws.BinaryMessage, `{"type":"heartbeat"}`, 1003, "binary"},
		{"invalid UTF-8", true, gws.TextMessage, "{\"type\":\"data\",\"stream\":\"\xff\"}", 1007, "UTF-8"},
		{"oversize frame", true, gws.TextMessage, `{"type":"data","stream":"x","payload":"` + strings.Repeat("a", 1<<10) + `"}`, 1009, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			label := closeCodeLabel(tt.code)
			before := h.counter(t, "switchyard_gateway_closes_total", "code", label)
			unknownBefore := h.counter(t, "switchyard_gateway_frames_in_total", "type", frameTypeUnknown)
			c, _, err := h.dial(t, h.url, bearer("tok-a"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.hello {
				sendRaw(t, c, hello)
				if w := read(t, c); w["type"] != "welcome" {
					t.Fatalf("welcome %v", w)
				}
			}
			if err := c.WriteMessage(tt.msgTyp, []byte(tt.frame)); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, tt.code, tt.reason)
			eventually(t, "closes_total", func() bool {
				return h.counter(t, "switchyard_gateway_closes_total", "code", label) == before+1
			})
			// Frames the relay cannot classify count as "unknown"; the
			// oversize one never reached the decoder.
			wantUnknown := unknownBefore
			if tt.code == CloseMalformed || tt.code == CloseUnsupportedData || tt.code == CloseInvalidPayload || strings.Contains(tt.reason, "unknown frame type") {
				wantUnknown++
			}
			if got := h.counter(t, "switchyard_gateway_frames_in_total", "type", frameTypeUnknown); got != wantUnknown {
				t.Errorf("frames_in{unknown} = %v, want %v", got, wantUnknown)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("hello timeout", func(t *testing.T) {
		h := start(t, func(c *config.Gateway) { c.HelloTimeout = 300 * time.Millisecond })
		c, _, err := h.dial(t, h.url, bearer("tok-a"))
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		expectClose(t, c, CloseTimeout, "hello timeout")
		if d := time.Since(began); d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %s, want about 300ms", d)
		}
	})
	short := func(c *config.Gateway) {
		c.HeartbeatInterval = 100 * time.Millisecond
		c.HeartbeatTimeout = 250 * time.Millisecond
	}
	t.Run("heartbeat timeout", func(t *testing.T) {
		h := start(t, short)
		c, _ := h.connect(t, "tok-a")
		began := time.Now()
		expectClose(t, c, CloseTimeout, "heartbeat timeout")
		if d := time.Since(began); d < 200*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %s, want about 250ms", d)
		}
	})
	t.Run("heartbeats and pings keep a session", func(t *testing.T) {
		h := start(t, short)
		c, _ := h.connect(t, "tok-b")
		pongs := make(chan string, 16)
		c.SetPongHandler(func(data string) error { pongs <- data; return nil })
		done := make(chan struct{})
		go func() { // gorilla delivers pongs only while reading
			defer close(done)
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for i := range 8 { // 8 × 100 ms: well past the 250 ms timeout
			var err error
			if i%2 == 0 {
				err = c.WriteMessage(gws.TextMessage, []byte(`{"type":"heartbeat"}`))
			} else {
				err = c.WriteControl(gws.PingMessage, []byte("p"), time.Now().Add(time.Second))
			}
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if si := h.session(t, "t1", "dev-b"); si.State != "ready" {
			t.Fatalf("session %+v", si)
		}
		if got := len(pongs); got < 3 {
			t.Errorf("%d pongs for 4 pings", got)
		}
		_ = c.Close()
		<-done
	})
}

func TestReplaced(t *testing.T) {
	h := start(t, nil)
	first, w1 := h.connect(t, "tok-a")
	second, w2 := h.connect(t, "tok-a")
	expectClose(t, first, 4004, "replaced")
	if w1["session"] == w2["session"] {
		t.Fatal("both connections got the same session id")
	}
	eventually(t, "one session", func() bool { return h.g.Connections() == 1 })
	if si := h.g.Sessions("t1"); len(si) != 1 || si[0].Session != w2["session"] {
		t.Fatalf("Sessions = %+v", si)
	}
	if err := h.g.Send("t1", "dev-a", Outbound{ID: "m", Subject: "s", Payload: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if m := read(t, second); m["id"] != "m" {
		t.Fatalf("newer connection got %v", m)
	}
}

func TestDisconnect(t *testing.T) {
	h := start(t, nil)
	c, _ := h.connect(t, "tok-a")
	if h.g.Disconnect("t1", "nope", CloseRevoked, "x") {
		t.Error("Disconnect of an unknown device returned true")
	}
	if !h.g.Disconnect("t1", "dev-a", CloseRevoked, "device revoked") {
		t.Fatal("Disconnect returned false")
	}
	expectClose(t, c, CloseRevoked, "device revoked")
	eventually(t, "the session to end", func() bool { return h.g.Connections() == 0 })
	if err := h.g.Send("t1", "dev-a", Outbound{ID: "m", Subject: "s", Payload: json.RawMessage(`1`)}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Send after Disconnect: %v", err)
	}
	// A code the protocol cannot send becomes 1008.
	c2, _ := h.connect(t, "tok-b")
	h.g.Disconnect("t1", "dev-b", 1006, "bad code")
	expectClose(t, c2, 1008, "bad code")
}

func TestPeerClose(t *testing.T) {
	h := start(t, nil)
	c, _ := h.connect(t, "tok-a")
	<-h.rec.seen // hello
	if err := c.WriteMessage(gws.CloseMessage, gws.FormatCloseMessage(4100, "going to sleep")); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, 4100, "") // the relay answers with the device's code
	final := receive(t, h.rec.seen, "Seen at close")
	if final.device != "dev-a" || final.firmware != "" {
		t.Errorf("final Seen %+v", final)
	}
	eventually(t, "closes{other}", func() bool { return h.counter(t, "switchyard_gateway_closes_total", "code", "other") == 1 })
}

func TestSeenPeriodic(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.LastSeenFlush = 40 * time.Millisecond })
	c, _ := h.connect(t, "tok-a")
	first := receive(t, h.rec.seen, "Seen at hello")
	// Idle: nothing new to report.
	none(t, h.rec.seen, 120*time.Millisecond, "Seen while idle")
	sendRaw(t, c, `{"type":"heartbeat"}`)
	read(t, c)
	next := receive(t, h.rec.seen, "Seen after a heartbeat")
	if !next.at.After(first.at) || next.firmware != "" {
		t.Fatalf("Seen %+v after %+v", next, first)
	}
	none(t, h.rec.seen, 120*time.Millisecond, "a second Seen for the same heartbeat")
}

func TestShutdown(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.DrainTimeout = 2 * time.Second })
	var conns []*gws.Conn
	for _, tok := range []string{"tok-a", "tok-b", "tok-c"} {
		c, _ := h.connect(t, tok)
		conns = append(conns, c)
	}
	// A message queued before the shutdown still arrives, before the close.
	if err := h.g.Send("t1", "dev-a", Outbound{ID: "last", Subject: "s", Payload: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					results <- err
					return
				}
				if !strings.Contains(string(b), `"message"`) {
					results <- errors.New("unexpected frame " + string(b))
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	began := time.Now()
	if err := h.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("Shutdown took %s with every device answering", d)
	}
	for range conns {
		err := <-results
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != CloseGoingAway || ce.Text != "shutdown; reconnect in 5s" {
			t.Fatalf("device saw %v, want 1001 \"shutdown; reconnect in 5s\"", err)
		}
	}
	if n := h.g.Connections(); n != 0 {
		t.Errorf("Connections() = %d after Shutdown", n)
	}
	if _, _, err := h.dial(t, h.url, bearer("tok-a")); err == nil {
		t.Error("a device connected after Shutdown")
	}
	if err := h.g.Start(); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

// TestShutdownDeadline: devices that never answer the close frame cannot
// hold Shutdown past its deadline.
func TestShutdownDeadline(t *testing.T) {
	tests := []struct {
		name    string
		drain   time.Duration
		ctx     time.Duration
		wantErr bool
	}{
		{"drain timeout", 300 * time.Millisecond, 5 * time.Second, false},
		{"context deadline", 5 * time.Second, 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, func(c *config.Gateway) { c.DrainTimeout = tt.drain })
			for _, tok := range []string{"tok-a", "tok-b"} {
				h.connect(t, tok) // never reads again, so never answers the close
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctx)
			defer cancel()
			began := time.Now()
			err := h.g.Shutdown(ctx)
			if d := time.Since(began); d < 250*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("Shutdown took %s, want about 300ms", d)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("Shutdown: %v, want error %v", err, tt.wantErr)
			}
			if n := h.g.Connections(); n != 0 {
				t.Errorf("Connections() = %d", n)
			}
			if got := h.counter(t, "switchyard_gateway_closes_total", "code", "1001"); got != 2 {
				t.Errorf("closes{1001} = %v, want 2", got)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	auth, rec := newFakeAuth(), newRecorder()
	tests := []struct {
		name   string
		mutate func(*config.Gateway)
		opts   func(*Options)
		want   string
	}{
		{"no listen", func(c *config.Gateway) { c.Listen = "" }, nil, "listen"},
		{"relative path", func(c *config.Gateway) { c.Path = "ws" }, nil, "path"},
		{"no connections", func(c *config.Gateway) { c.MaxConnections = 0 }, nil, "max_connections"},
		{"tiny frames", func(c *config.Gateway) { c.MaxFrameSize = 100 }, nil, "max_frame_size"},
		{"no queue", func(c *config.Gateway) { c.SendQueue = 0 }, nil, "send_queue"},
		{"timeout below interval", func(c *config.Gateway) { c.HeartbeatTimeout = c.HeartbeatInterval }, nil, "heartbeat_timeout"},
		{"no hello timeout", func(c *config.Gateway) { c.HelloTimeout = 0 }, nil, "hello_timeout"},
		{"no drain timeout", func(c *config.Gateway) { c.DrainTimeout = 0 }, nil, "drain_timeout"},
		{"no flush", func(c *config.Gateway) { c.LastSeenFlush = 0 }, nil, "last_seen_flush"},
		{"bad policy", func(c *config.Gateway) { c.SendOverflow = "drop_random" }, nil, "send_overflow"},
		{"half TLS", func(c *config.Gateway) { c.TLS.CertFile = "x.pem" }, nil, "tls"},
		{"missing cert", func(c *config.Gateway) { c.TLS.CertFile, c.TLS.KeyFile = "/nonexistent/c.pem", "/nonexistent/k.pem" }, nil, "/nonexistent/c.pem"},
		{"no auth", nil, func(o *Options) { o.Auth = nil }, "Auth"},
		{"no data", nil, func(o *Options) { o.Data = nil }, "Data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			o := Options{Config: c, Auth: auth, Seen: rec, Data: rec}
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "gateway: ") {
				t.Fatalf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestMetricsRegistered(t *testing.T) {
	h := start(t, nil)
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{"switchyard_gateway_connections", "switchyard_gateway_handshakes_refused_total",
		"switchyard_gateway_frames_in_total", "switchyard_gateway_frames_out_total",
		"switchyard_gateway_send_dropped_total", "switchyard_gateway_closes_total"} {
		if !got[name] {
			t.Errorf("metric %s not registered", name)
		}
	}
	// A second gateway on the same registry is a wiring mistake.
	_, err = New(Options{Config: testConfig(), Auth: h.auth, Seen: h.rec, Data: h.rec, Registerer: h.reg})
	if err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second New on one registry: %v", err)
	}
}

// A gateway shut down as soon as it started stops: nbio loses a Stop that
// comes before its poller goroutines first run (see engineSettle). Busy
// goroutines make that likely on two cores.
func TestShutdownRightAfterStart(t *testing.T) {
	var busy atomic.Bool
	busy.Store(true)
	defer busy.Store(false)
	for range 2 * runtime.GOMAXPROCS(0) {
		go func() {
			for busy.Load() {
			}
		}()
	}
	for i := range 20 {
		g, err := New(Options{Config: testConfig(), Auth: newFakeAuth(), Seen: newRecorder(), Data: newRecorder(),
			Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = g.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("shutdown %d right after start: %v", i, err)
		}
	}
}
