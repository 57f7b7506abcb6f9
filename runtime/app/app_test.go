package app_test

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/token"
)

// A device authenticates, says hello, heart-beats, sends data that is
// acknowledged, and receives a message an operator sends it.
func TestDeviceSession(t *testing.T) {
	// No last-seen flush during the test: what the API shows of a connected
	// device comes from its live session.
	r := apptest.Start(t, "", func(c *config.Config) { c.Gateway.LastSeenFlush = time.Hour })
	tok := r.CreateDevice("default", "panel-1", map[string]string{"role": "display"})
	d := r.Connect(tok)

	d.Send(map[string]any{"type": "heartbeat", "seq": 1})
	if f := d.ReadUntil("heartbeat"); f["type"] != "heartbeat" {
		t.Fatalf("heartbeat reply: %v", f)
	}
	d.Send(map[string]any{"type": "data", "stream": "telemetry", "id": "m1", "payload": map[string]any{"t": 21.5}})
	if f := d.ReadUntil("ack"); f["id"] != "m1" {
		t.Fatalf("ack of data frame: %v", f)
	}

	status, body := r.Do("POST", "/api/v1/tenants/default/devices/panel-1/messages",
		map[string]any{"subject": "display.text", "payload": map[string]any{"text": "hello"}, "ack": true})
	if status != http.StatusAccepted {
		t.Fatalf("send message: %d %v", status, body)
	}
	m := d.ReadUntil("message")
	if m["subject"] != "display.text" || m["id"] != body["id"] || m["payload"].(map[string]any)["text"] != "hello" {
		t.Fatalf("message frame: %v (sent id %v)", m, body["id"])
	}

	status, body = r.Do("GET", "/api/v1/tenants/default/devices/panel-1", nil)
	if status != http.StatusOK || body["connected"] != true || body["firmware"] != "1.2.3" || body["last_seen"] == nil {
		t.Fatalf("device while connected (want connected, firmware and last_seen from the session): %d %v", status, body)
	}
}

// Tokens that are missing, wrong, revoked or deleted never reach the protocol.
func TestHandshakeRefusals(t *testing.T) {
	r := apptest.Start(t, "", nil)
	good := r.CreateDevice("default", "ok", nil)
	revoked := r.CreateDevice("default", "revoked", nil)
	deleted := r.CreateDevice("default", "deleted", nil)
	if s, b := r.Do("PATCH", "/api/v1/tenants/default/devices/revoked", map[string]any{"revoked": true}); s != http.StatusOK {
		t.Fatalf("revoke: %d %v", s, b)
	}
	if s, b := r.Do("DELETE", "/api/v1/tenants/default/devices/deleted", nil); s != http.StatusNoContent {
		t.Fatalf("delete: %d %v", s, b)
	}

	cases := []struct {
		name, token string
		status      int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"unknown", "sydev_not-a-real-token", http.StatusUnauthorized},
		{"revoked", revoked, http.StatusUnauthorized},
		{"deleted", deleted, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, resp, err := r.Dial(c.token)
			if err == nil {
				conn.Close()
				t.Fatal("handshake accepted")
			}
			if resp == nil || resp.StatusCode != c.status {
				t.Fatalf("want HTTP %d, got %v (%v)", c.status, resp, err)
			}
		})
	}

	t.Run("query token", func(t *testing.T) {
		conn, resp, err := websocket.DefaultDialer.Dial(r.WS+"?token="+good, nil)
		if err != nil {
			t.Fatalf("dial with ?token=: %v %v", err, resp)
		}
		conn.Close()
	})
}

// Revoking or rotating the token of a connected device closes its session.
func TestRevokeAndRotateDisconnect(t *testing.T) {
	r := apptest.Start(t, "", nil)
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"revoke", "PATCH", "", map[string]any{"revoked": true}},
		{"rotate", "POST", "/token", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := r.CreateDevice("default", c.name, nil)
			d := r.Connect(tok)
			status, body := r.Do(c.method, "/api/v1/tenants/default/devices/"+c.name+c.path, c.body)
			if status != http.StatusOK {
				t.Fatalf("%s: %d %v", c.name, status, body)
			}
			if code, _ := d.CloseCode(5 * time.Second); code != 4003 {
				t.Fatalf("close code %d, want 4003", code)
			}
			if c.name == "rotate" {
				r.Connect(body["token"].(string)) // the new token works
				if _, resp, err := r.Dial(tok); err == nil || resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("old token after rotation: %v %v", resp, err)
				}
			}
		})
	}
}

// Data from a sensor reaches the displays a junction selects, and only those
// of its own tenant.
func TestJunctionRoutesDeviceData(t *testing.T) {
	r := apptest.Start(t, "", nil)
	if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "other"}); s != http.StatusCreated {
		t.Fatalf("create tenant: %d %v", s, b)
	}
	sensor := r.Connect(r.CreateDevice("default", "sensor-1", nil))
	display := r.Connect(r.CreateDevice("default", "display-1", map[string]string{"role": "display"}))
	plain := r.Connect(r.CreateDevice("default", "plain-1", nil))
	foreign := r.Connect(r.CreateDevice("other", "display-1", map[string]string{"role": "display"}))

	s, b := r.Do("POST", "/api/v1/tenants/default/junctions", map[string]any{
		"id": "to-displays", "enabled": true, "source": "device.*.telemetry",
		"targets": []any{map[string]any{"selector": map[string]string{"role": "display"}}},
	})
	if s != http.StatusCreated {
		t.Fatalf("create junction: %d %v", s, b)
	}
	sensor.Send(map[string]any{"type": "data", "stream": "telemetry", "payload": map[string]any{"t": 22.25}})
	sensor.Send(map[string]any{"type": "data", "stream": "debug", "payload": map[string]any{"x": 1}})

	m := display.ReadUntil("message")
	if m["subject"] != "device.sensor-1.telemetry" || m["payload"].(map[string]any)["t"] != 22.25 {
		t.Fatalf("display got %v", m)
	}
	for name, d := range map[string]*apptest.Device{"unlabelled device": plain, "other tenant's display": foreign, "display (non-matching stream)": display} {
		if f, err := d.TryRead(300 * time.Millisecond); err == nil {
			t.Errorf("%s received %v", name, f)
		}
	}
}

// A device that stops heart-beating is closed after the timeout; a frame over
// the size limit closes the session with 1009.
func TestSessionLimits(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Gateway.HeartbeatInterval = 100 * time.Millisecond
		c.Gateway.HeartbeatTimeout = 300 * time.Millisecond
		c.Gateway.MaxFrameSize = 1 << 10
	})
	t.Run("heartbeat timeout", func(t *testing.T) {
		d := r.Connect(r.CreateDevice("default", "quiet", nil))
		start := time.Now()
		if code, _ := d.CloseCode(3 * time.Second); code != 4008 {
			t.Fatalf("close code %d, want 4008", code)
		}
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("closed after %v, before the 300ms timeout", el)
		}
	})
	t.Run("oversize frame", func(t *testing.T) {
		d := r.Connect(r.CreateDevice("default", "chatty", nil))
		d.Send(map[string]any{"type": "data", "stream": "blob", "payload": strings.Repeat("x", 2048)})
		if code, _ := d.CloseCode(3 * time.Second); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
}

// Over the connection limit, the handshake is refused with 503.
func TestMaxConnections(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) { c.Gateway.MaxConnections = 2 })
	for i := range 2 {
		r.Connect(r.CreateDevice("default", "d"+string(rune('0'+i)), nil))
	}
	_, resp, err := r.Dial(r.CreateDevice("default", "d9", nil))
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: want 503, got %v %v", resp, err)
	}
}

// Last-seen and firmware reach the store in batches and survive a restart,
// with tenants, devices, tokens and junctions.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	r := apptest.Start(t, dir, nil)
	tok := r.CreateDevice("default", "sensor-1", nil)
	r.Connect(tok).Send(map[string]any{"type": "heartbeat"})
	if s, b := r.Do("POST", "/api/v1/tenants/default/junctions", map[string]any{
		"id": "j1", "enabled": true, "source": "device.sensor-1.>", "targets": []any{map[string]any{"device": "display-1"}},
	}); s != http.StatusCreated {
		t.Fatalf("create junction: %d %v", s, b)
	}
	displayTok := r.CreateDevice("default", "display-1", nil)
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, b := r.Do("GET", "/api/v1/tenants/default/devices/sensor-1", nil)
		if b["last_seen"] != nil && b["firmware"] == "1.2.3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_seen/firmware not recorded: %v", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()

	r2 := apptest.Start(t, dir, nil)
	_, b := r2.Do("GET", "/api/v1/tenants/default/devices/sensor-1", nil)
	if b["firmware"] != "1.2.3" || b["last_seen"] == nil {
		t.Fatalf("after restart: %v", b)
	}
	sensor := r2.Connect(tok)
	display := r2.Connect(displayTok)
	sensor.Send(map[string]any{"type": "data", "stream": "telemetry", "payload": 1})
	if m := display.ReadUntil("message"); m["subject"] != "device.sensor-1.telemetry" {
		t.Fatalf("junction after restart delivered %v", m)
	}
}

// Shutting down tells every device to go away and come back (1001), and the
// store is closed cleanly.
func TestShutdownNotifiesDevices(t *testing.T) {
	r := apptest.Start(t, "", nil)
	devices := []*apptest.Device{
		r.Connect(r.CreateDevice("default", "a", nil)),
		r.Connect(r.CreateDevice("default", "b", nil)),
	}
	done := make(chan struct{})
	go func() { r.Stop(); close(done) }()
	for _, d := range devices {
		code, reason := d.CloseCode(5 * time.Second)
		if code != websocket.CloseGoingAway || !strings.Contains(reason, "reconnect") {
			t.Fatalf("close %d %q, want 1001 with a reconnect hint", code, reason)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s")
	}
}

// Devices declared in the configuration are created once, with a token
// shown once that the device can use; on later starts the file's name, model
// and labels apply, and the token, revocation and last-seen are kept.
func TestDeclaredDevices(t *testing.T) {
	dir := t.TempDir()
	declare := func(labels map[string]string) func(*config.Config) {
		return func(c *config.Config) {
			c.Tenants = []config.Tenant{{ID: "acme", Name: "Acme"}}
			c.Devices = []config.Device{{ID: "panel", Tenant: "acme", Model: "esp32", Labels: labels}}
		}
	}
	r := apptest.Start(t, dir, declare(map[string]string{"role": "display"}))
	tok := r.DeviceTokens["acme/panel"]
	if tok == "" || len(r.DeviceTokens) != 1 {
		t.Fatalf("tokens of created devices: %v", r.DeviceTokens)
	}
	r.Connect(tok)
	if s, b := r.Do("GET", "/api/v1/tenants/acme", nil); s != http.StatusOK || b["name"] != "Acme" {
		t.Fatalf("declared tenant: %d %v", s, b)
	}
	r.Stop()

	r2 := apptest.Start(t, dir, declare(map[string]string{"role": "kiosk"}))
	if len(r2.DeviceTokens) != 0 {
		t.Fatalf("a second start issued tokens again: %v", r2.DeviceTokens)
	}
	_, b := r2.Do("GET", "/api/v1/tenants/acme/devices/panel", nil)
	if b["labels"].(map[string]any)["role"] != "kiosk" || b["model"] != "esp32" || b["last_seen"] == nil {
		t.Fatalf("after a restart with new labels: %v", b)
	}
	r2.Connect(tok) // the token of the first start still works
}

// Concurrent rotations of one device leave the catalog holding the token the
// store holds: the one token that connects is the one whose hash the store
// keeps (read from the database file once the relay has stopped).
func TestConcurrentRotationsKeepCatalogAndStore(t *testing.T) {
	dir := t.TempDir()
	r := apptest.Start(t, dir, nil)
	tokens := []string{r.CreateDevice("default", "busy", nil)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 4 {
				status, body := r.Do("POST", "/api/v1/tenants/default/devices/busy/token", nil)
				if status != http.StatusOK {
					t.Errorf("rotate: %d %v", status, body)
					return
				}
				mu.Lock()
				tokens = append(tokens, body["token"].(string))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var accepted []int
	for i, tok := range tokens {
		c, resp, err := r.Dial(tok)
		// Under the full suite a handshake has, rarely, ended in EOF before
		// any answer (seen twice in CI, never alone in 30 runs under -race);
		// the cause is not established. It is not what this test checks, so
		// the dial is tried again, and the retry is logged.
		for retry := 0; err != nil && resp == nil && retry < 2; retry++ {
			t.Logf("token %d: handshake ended without an answer (%v); dialing again", i, err)
			c, resp, err = r.Dial(tok)
		}
		switch {
		case err == nil:
			c.Close()
			accepted = append(accepted, i)
		case resp == nil || resp.StatusCode != http.StatusUnauthorized:
			t.Fatalf("token %d: the handshake was neither accepted nor refused: %v", i, err)
		}
	}
	r.Stop()

	store, err := embedded.Open(filepath.Join(dir, "switchyard.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d, err := store.Tenant("default").Devices().Get(t.Context(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	stored := -1
	for i, tok := range tokens {
		if h := token.Of(tok); bytes.Equal(h[:], d.TokenHash) {
			stored = i
		}
	}
	if len(accepted) != 1 || stored < 0 || accepted[0] != stored {
		t.Fatalf("of %d tokens the gateway accepted %v and the store holds %d; want exactly the stored one accepted", len(tokens), accepted, stored)
	}
}
