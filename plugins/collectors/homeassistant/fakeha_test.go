package homeassistant

// This file is a FAKE Home Assistant, not the real one: Home Assistant cannot
// be installed here. It follows the documented APIs exactly as far as the
// collector uses them —
// https://developers.home-assistant.io/docs/api/websocket and /docs/api/rest:
//
//   - WebSocket at /api/websocket: the server sends
//     {"type":"auth_required","ha_version":…}; the client's first message must be
//     {"type":"auth","access_token":…}; the server answers {"type":"auth_ok","ha_version":…}
//     or {"type":"auth_invalid","message":…} and disconnects.
//   - Command phase: every client message carries an integer "id" greater than the
//     previous one on that connection (else a result with error code "id_reuse", as Home
//     Assistant answers); subscribe_events (optional event_type) → {"id":N,"type":"result",
//     "success":true,"result":null}; events arrive as {"id":N,"type":"event","event":{
//     "event_type":"state_changed","data":{"entity_id","old_state","new_state"},
//     "origin":"LOCAL","time_fired",…,"context":{…}}}; {"id":N,"type":"ping"} →
//     {"id":N,"type":"pong"}; an unknown command → success false, error
//     {"code":"unknown_command","message":"Unknown command."}.
//   - REST GET /api/states with "Authorization: Bearer <token>" → 200 and a JSON array of
//     state objects {"entity_id","state","attributes","last_changed","last_updated",
//     "context"}; without a valid bearer token → 401 "401: Unauthorized".
//
// Knobs that real Home Assistant does not have (stop answering pings, drop every
// connection) let the tests break it on purpose.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const fakeVersion = "2025.11.1"

// fakeHA is the fake Home Assistant.
type fakeHA struct {
	t     *testing.T
	token string
	srv   *httptest.Server

	silent atomic.Bool // stop answering pings

	mu         sync.Mutex
	states     []map[string]any // what /api/states returns
	conns      []*fakeConn
	restCalls  int
	restUnauth int
	newConn    chan *fakeConn // every authenticated, subscribed connection
}

// fakeConn is one client connection as the fake saw it.
type fakeConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex

	mu          sync.Mutex
	authed      bool
	lastID      int64
	ids         []int64 // ids of every command, in order
	types       []string
	subID       int64 // the state_changed subscription, 0 before
	pings       []int64
	closeCode   int // close code the client sent, 0 for none
	ended       chan struct{}
	subscribed  chan struct{}
	subscribeMu sync.Once
}

func newFakeHA(t *testing.T, token string) *fakeHA {
	t.Helper()
	f := &fakeHA{t: t, token: token, newConn: make(chan *fakeConn, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/websocket", f.websocket)
	mux.HandleFunc("/api/states", f.restStates)
	f.srv = httptest.NewServer(mux) // loopback
	t.Cleanup(func() {
		f.dropAll()
		f.srv.Close()
	})
	return f
}

// url is what the collector's url key gets: http://127.0.0.1:port.
func (f *fakeHA) url() string { return f.srv.URL }

func (f *fakeHA) setStates(states ...map[string]any) {
	f.mu.Lock()
	f.states = states
	f.mu.Unlock()
}

func (f *fakeHA) connections() []*fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeConn(nil), f.conns...)
}

func (f *fakeHA) rest() (calls, unauthorized int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restCalls, f.restUnauth
}

// dropAll closes every connection's socket without a close frame, as a
// crashed or restarted Home Assistant does.
func (f *fakeHA) dropAll() {
	for _, c := range f.connections() {
		_ = c.ws.NetConn().Close()
	}
}

// waitConn waits for the next connection that has subscribed.
func (f *fakeHA) waitConn(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-f.newConn:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no client subscribed to the fake Home Assistant within 5s")
		return nil
	}
}

func (f *fakeHA) restStates(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	f.restCalls++
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.restUnauth++
		f.mu.Unlock()
		http.Error(w, "401: Unauthorized", http.StatusUnauthorized)
		return
	}
	states := f.states
	if states == nil {
		states = []map[string]any{}
	}
	body, err := json.Marshal(states)
	f.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *fakeHA) websocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &fakeConn{ws: ws, ended: make(chan struct{}), subscribed: make(chan struct{})}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	defer close(c.ended)
	defer ws.Close()

	c.send(map[string]any{"type": "auth_required", "ha_version": fakeVersion})
	var auth map[string]any
	if err := c.read(&auth); err != nil {
		return
	}
	if auth["type"] != "auth" || auth["access_token"] != f.token {
		msg := "Invalid access token or password"
		if auth["type"] != "auth" {
			msg = "Auth message incorrectly formatted: expected auth"
		}
		c.send(map[string]any{"type": "auth_invalid", "message": msg})
		return // and disconnect, as Home Assistant does
	}
	c.mu.Lock()
	c.authed = true
	c.mu.Unlock()
	c.send(map[string]any{"type": "auth_ok", "ha_version": fakeVersion})

	for {
		var msg struct {
			ID        *json.Number `json:"id"`
			Type      string       `json:"type"`
			EventType *string      `json:"event_type"`
		}
		if err := c.read(&msg); err != nil {
			return
		}
		if msg.ID == nil {
			c.send(map[string]any{"id": nil, "type": "result", "success": false,
				"error": map[string]any{"code": "invalid_format", "message": "Message incorrectly formatted: required key not provided @ data['id']"}})
			continue
		}
		id, err := msg.ID.Int64()
		if err != nil {
			c.send(map[string]any{"id": nil, "type": "result", "success": false,
				"error": map[string]any{"code": "invalid_format", "message": "Message incorrectly formatted: expected int for dictionary value @ data['id']"}})
			continue
		}
		c.mu.Lock()
		reuse := id <= c.lastID
		if !reuse {
			c.lastID = id
		}
		c.ids = append(c.ids, id)
		c.types = append(c.types, msg.Type)
		c.mu.Unlock()
		if reuse {
			c.send(map[string]any{"id": id, "type": "result", "success": false,
				"error": map[string]any{"code": "id_reuse", "message": "Identifier values have to increase."}})
			continue
		}
		switch msg.Type {
		case "ping":
			c.mu.Lock()
			c.pings = append(c.pings, id)
			c.mu.Unlock()
			if !f.silent.Load() {
				c.send(map[string]any{"id": id, "type": "pong"})
			}
		case "subscribe_events":
			c.send(map[string]any{"id": id, "type": "result", "success": true, "result": nil})
			if msg.EventType != nil && *msg.EventType == "state_changed" {
				c.mu.Lock()
				c.subID = id
				c.mu.Unlock()
				c.subscribeMu.Do(func() {
					close(c.subscribed)
					select {
					case f.newConn <- c:
					default: // nobody waits for that many connections
					}
				})
			}
		default:
			c.send(map[string]any{"id": id, "type": "result", "success": false,
				"error": map[string]any{"code": "unknown_command", "message": "Unknown command."}})
		}
	}
}

func (c *fakeConn) send(v any) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.ws.WriteJSON(v)
}

// read reads one JSON message, recording a close frame's code.
func (c *fakeConn) read(v any) error {
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			c.mu.Lock()
			c.closeCode = ce.Code
			c.mu.Unlock()
		}
		return err
	}
	return json.Unmarshal(data, v)
}

// stateChanged sends a state_changed event for newState (nil: the entity
// was removed) on the connection's subscription.
func (c *fakeConn) stateChanged(entityID string, oldState, newState map[string]any) {
	c.mu.Lock()
	id := c.subID
	c.mu.Unlock()
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00")
	ctx := map[string]any{"id": "01JD4Y6Q9QX1Z8N6M2B5C7D9EF", "parent_id": nil, "user_id": nil}
	var ns, os any
	if newState != nil {
		ns = newState
	}
	if oldState != nil {
		os = oldState
	}
	c.send(map[string]any{"id": id, "type": "event", "event": map[string]any{
		"event_type": "state_changed",
		"data":       map[string]any{"entity_id": entityID, "old_state": os, "new_state": ns},
		"origin":     "LOCAL",
		"time_fired": now,
		"context":    ctx,
	}})
}

func (c *fakeConn) snapshot() (ids []int64, types []string, subID int64, pings []int64, closeCode int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.ids...), append([]string(nil), c.types...), c.subID, append([]int64(nil), c.pings...), c.closeCode
}

// haState is a state object as Home Assistant writes one.
func haState(entityID, st string, attrs map[string]any, updated time.Time) map[string]any {
	if attrs == nil {
		attrs = map[string]any{}
	}
	ts := updated.UTC().Format("2006-01-02T15:04:05.000000+00:00")
	return map[string]any{
		"entity_id":     entityID,
		"state":         st,
		"attributes":    attrs,
		"last_changed":  ts,
		"last_reported": ts,
		"last_updated":  ts,
		"context":       map[string]any{"id": fmt.Sprintf("ctx-%s", entityID), "parent_id": nil, "user_id": nil},
	}
}
