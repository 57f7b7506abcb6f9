package homeassistant

// The end-to-end tests here run the collector against a FAKE Home Assistant
// (fakeha_test.go): an httptest server on loopback that follows the
// documented WebSocket and REST protocols exactly (auth flow, increasing ids,
// result frames, ping/pong, /api/states with bearer auth and 401 without).
// Home Assistant itself cannot be installed here.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// t0 is when the fake's initial states were last updated.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

const t0s = "2026-01-02T03:04:05.123456+00:00"

// newCollector decodes, provisions and validates a collector as the runtime
// does.
func newCollector(t *testing.T, raw string) *Collector {
	t.Helper()
	c := new(Collector)
	if err := plugin.DecodeConfig([]byte(raw), c); err != nil {
		t.Fatalf("DecodeConfig(%s): %v", raw, err)
	}
	if err := c.Provision(context.Background()); err != nil {
		t.Fatalf("Provision(%s): %v", raw, err)
	}
	t.Cleanup(func() { _ = c.Cleanup() })
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(%s): %v", raw, err)
	}
	return c
}

// recorder is an Emitter that keeps every message.
type recorder struct {
	mu     sync.Mutex
	msgs   []plugin.Message
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Emit(m plugin.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) all() []plugin.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// wait waits until at least n messages arrived and returns them all.
func (r *recorder) wait(t *testing.T, n int) []plugin.Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if got := r.all(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline:
			got := r.all()
			t.Fatalf("got %d messages within 5s, want %d: %s", len(got), n, describe(got))
		}
	}
}

func describe(msgs []plugin.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("\n  " + m.Subject + " " + string(m.Payload))
	}
	return b.String()
}

// running is a Collect in progress.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, c *Collector, out plugin.Emitter) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Collect(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Collect did not return within 5s of its context ending")
		}
	})
	return r
}

// stop cancels Collect and returns its result, failing if it takes long.
func (r *running) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Collect did not return within %s of its context ending", within)
		return nil
	}
}

// waitStats returns the collector's stats once ok accepts them, or after 2s.
// (Stats count a message just after the emitter took it.)
func waitStats(c *Collector, ok func(Stats) bool) Stats {
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := c.Stats()
		if ok(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

type want struct {
	subject, payload string
	time             time.Time
}

func checkMessages(t *testing.T, got []plugin.Message, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d messages, want %d:%s", len(got), len(wants), describe(got))
	}
	for i, w := range wants {
		g := got[i]
		if g.Subject != w.subject || !sameJSON(t, g.Payload, []byte(w.payload)) {
			t.Errorf("message %d:\n got  %s %s\n want %s %s", i, g.Subject, g.Payload, w.subject, w.payload)
		}
		if !w.time.IsZero() && !g.Time.Equal(w.time) {
			t.Errorf("message %d (%s): time %v, want %v", i, g.Subject, g.Time, w.time)
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Errorf("payload %s: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("wanted payload %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// liveEvent is an event the test makes the fake send.
type liveEvent struct {
	entity string
	state  string // "" for a removed entity (new_state null)
	attrs  map[string]any
}

// t1 is when live events' states were updated: after t0, so not stale.
var t1 = t0.Add(time.Minute)

const t1s = "2026-01-02T03:05:05.123456+00:00"

// sentinel ends every case's live events: it passes every case's filters,
// so the messages before it are all the case produced.
var sentinel = liveEvent{entity: "sensor.zz_sentinel_temperature", state: "1"}

func sentinelWant(prefix string) want {
	return want{subject: prefix + ".sensor.zz_sentinel_temperature", time: t1,
		payload: `{"entity_id":"sensor.zz_sentinel_temperature","state":"1","value":1,"attributes":{},"last_changed":"` + t1s + `","last_updated":"` + t1s + `"}`}
}

func TestCollect(t *testing.T) {
	kitchen := haState("sensor.kitchen_temperature", "21.5", map[string]any{"unit_of_measurement": "°C", "device_class": "temperature", "friendly_name": "Kitchen"}, t0)
	door := haState("binary_sensor.front_door", "off", map[string]any{"device_class": "door"}, t0)
	hall := haState("light.hall", "on", map[string]any{"brightness": 180}, t0)
	humidity := haState("sensor.bath_humidity", "55", map[string]any{"unit_of_measurement": "%"}, t0)
	states := []map[string]any{kitchen, door, hall, humidity}

	kitchenWant := want{subject: "ha.sensor.kitchen_temperature", time: t0,
		payload: `{"entity_id":"sensor.kitchen_temperature","state":"21.5","value":21.5,"unit":"°C","attributes":{"unit_of_measurement":"°C","device_class":"temperature","friendly_name":"Kitchen"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`}
	doorWant := want{subject: "ha.binary_sensor.front_door", time: t0,
		payload: `{"entity_id":"binary_sensor.front_door","state":"off","attributes":{"device_class":"door"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`}
	hallWant := want{subject: "ha.light.hall", time: t0,
		payload: `{"entity_id":"light.hall","state":"on","attributes":{"brightness":180},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`}
	humidityWant := want{subject: "ha.sensor.bath_humidity", time: t0,
		payload: `{"entity_id":"sensor.bath_humidity","state":"55","value":55,"unit":"%","attributes":{"unit_of_measurement":"%"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`}
	kitchenLive := liveEvent{entity: "sensor.kitchen_temperature", state: "22", attrs: map[string]any{"unit_of_measurement": "°C"}}
	kitchenLiveWant := want{subject: "ha.sensor.kitchen_temperature", time: t1,
		payload: `{"entity_id":"sensor.kitchen_temperature","state":"22","value":22,"unit":"°C","attributes":{"unit_of_measurement":"°C"},"last_changed":"` + t1s + `","last_updated":"` + t1s + `"}`}
	doorLive := liveEvent{entity: "binary_sensor.front_door", state: "on", attrs: map[string]any{"device_class": "door"}}
	doorLiveWant := want{subject: "ha.binary_sensor.front_door", time: t1,
		payload: `{"entity_id":"binary_sensor.front_door","state":"on","attributes":{"device_class":"door"},"last_changed":"` + t1s + `","last_updated":"` + t1s + `"}`}
	hallRemoved := liveEvent{entity: "light.hall"}

	tests := []struct {
		name     string
		config   string // without url and token
		states   []map[string]any
		initial  []want
		events   []liveEvent
		live     []want // the sentinel's message is added
		prefix   string
		wantRest int
	}{
		{
			name:   "no filters: every entity, initial and live; a removed entity emits nothing",
			states: states, initial: []want{kitchenWant, doorWant, hallWant, humidityWant},
			events: []liveEvent{kitchenLive, hallRemoved, doorLive}, live: []want{kitchenLiveWant, doorLiveWant},
			wantRest: 1,
		},
		{
			name: "domains", config: `"domains":["sensor"]`,
			states: states, initial: []want{kitchenWant, humidityWant},
			events: []liveEvent{kitchenLive, doorLive, hallRemoved}, live: []want{kitchenLiveWant},
			wantRest: 1,
		},
		{
			name: "entity globs", config: `"entities":["sensor.*_temperature","binary_sensor.front_*"]`,
			states: states, initial: []want{kitchenWant, doorWant},
			events: []liveEvent{kitchenLive, doorLive, {entity: "sensor.bath_humidity", state: "60"}}, live: []want{kitchenLiveWant, doorLiveWant},
			wantRest: 1,
		},
		{
			name: "globs and domains both apply", config: `"entities":["*_temperature","binary_sensor.*"],"domains":["sensor","light"]`,
			states: states, initial: []want{kitchenWant},
			events: []liveEvent{doorLive, kitchenLive}, live: []want{kitchenLiveWant},
			wantRest: 1,
		},
		{
			name: "initial_states off, another prefix", config: `"initial_states":false,"subject_prefix":"home.ha"`,
			states: states,
			events: []liveEvent{kitchenLive}, prefix: "home.ha",
			live: []want{{subject: "home.ha.sensor.kitchen_temperature", time: t1, payload: kitchenLiveWant.payload}},
		},
		{
			name: "non-numeric states keep state and have no value",
			states: []map[string]any{
				haState("sensor.a", "unavailable", nil, t0),
				haState("sensor.b", "unknown", nil, t0),
				haState("sensor.c", "NaN", nil, t0),
				haState("sensor.d", "1e999", nil, t0),
				haState("sensor.e", " 7", map[string]any{"unit_of_measurement": 7}, t0),
				haState("sensor.f", "-0.50", map[string]any{"unit_of_measurement": "V"}, t0),
			},
			initial: []want{
				{subject: "ha.sensor.a", payload: `{"entity_id":"sensor.a","state":"unavailable","attributes":{},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
				{subject: "ha.sensor.b", payload: `{"entity_id":"sensor.b","state":"unknown","attributes":{},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
				{subject: "ha.sensor.c", payload: `{"entity_id":"sensor.c","state":"NaN","attributes":{},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
				{subject: "ha.sensor.d", payload: `{"entity_id":"sensor.d","state":"1e999","attributes":{},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
				{subject: "ha.sensor.e", payload: `{"entity_id":"sensor.e","state":" 7","attributes":{"unit_of_measurement":7},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
				{subject: "ha.sensor.f", payload: `{"entity_id":"sensor.f","state":"-0.50","value":-0.5,"unit":"V","attributes":{"unit_of_measurement":"V"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
			},
			events: []liveEvent{{entity: "switch.pump", state: "off"}},
			live: []want{{subject: "ha.switch.pump", time: t1,
				payload: `{"entity_id":"switch.pump","state":"off","attributes":{},"last_changed":"` + t1s + `","last_updated":"` + t1s + `"}`}},
			wantRest: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ha := newFakeHA(t, "secret-token")
			ha.setStates(tt.states...)
			cfg := `{"url":"` + ha.url() + `","token":"secret-token"`
			if tt.config != "" {
				cfg += "," + tt.config
			}
			c := newCollector(t, cfg+"}")
			rec := newRecorder()
			start(t, c, rec)
			conn := ha.waitConn(t)
			checkMessages(t, rec.wait(t, len(tt.initial)), tt.initial)
			for _, ev := range append(slices.Clone(tt.events), sentinel) {
				var ns map[string]any
				if ev.state != "" {
					ns = haState(ev.entity, ev.state, ev.attrs, t1)
				}
				conn.stateChanged(ev.entity, haState(ev.entity, "old", nil, t0), ns)
			}
			prefix := tt.prefix
			if prefix == "" {
				prefix = "ha"
			}
			wants := append(slices.Clone(tt.initial), tt.live...)
			wants = append(wants, sentinelWant(prefix))
			checkMessages(t, rec.wait(t, len(wants)), wants)
			if calls, unauth := ha.rest(); calls != tt.wantRest || unauth != 0 {
				t.Errorf("/api/states called %d times (%d unauthorized), want %d (0)", calls, unauth, tt.wantRest)
			}
			st := waitStats(c, func(st Stats) bool { return st.Emitted == uint64(len(wants)) })
			if st.Connects != 1 || st.Reconnects != 0 || st.Events != uint64(len(tt.events)+1) || st.Emitted != uint64(len(wants)) || !st.Connected {
				t.Errorf("Stats = %+v, want 1 connect, 0 reconnects, %d events, %d emitted, connected", st, len(tt.events)+1, len(wants))
			}
			ids, types, subID, _, _ := conn.snapshot()
			if subID != 1 || len(ids) == 0 || ids[0] != 1 || types[0] != "subscribe_events" {
				t.Errorf("server saw commands %v %v (subscription %d), want subscribe_events with id 1 first", ids, types, subID)
			}
		})
	}
}

func TestAuthInvalid(t *testing.T) {
	ha := newFakeHA(t, "right-token")
	ha.setStates(haState("sensor.a", "1", nil, t0))
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"wrong-token","reconnect":{"initial":"10ms","max":"20ms"}}`)
	rec := newRecorder()
	r := start(t, c, rec)
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Collect did not return after auth_invalid")
	}
	if err == nil || !strings.Contains(err.Error(), "auth_invalid") || !strings.Contains(err.Error(), "Invalid access token or password") {
		t.Fatalf("Collect error = %v, want one naming auth_invalid and the server's message", err)
	}
	time.Sleep(100 * time.Millisecond) // a retry loop would have dialled again by now (reconnect.initial 10ms)
	if n := len(ha.connections()); n != 1 {
		t.Errorf("server saw %d connections, want 1: auth_invalid is not retried", n)
	}
	if calls, _ := ha.rest(); calls != 0 || len(rec.all()) != 0 {
		t.Errorf("after auth_invalid: %d REST calls, %d messages; want none", calls, len(rec.all()))
	}
	if st := c.Stats(); st.Connects != 0 || st.Reconnects != 0 || !strings.Contains(st.LastError, "auth_invalid") {
		t.Errorf("Stats = %+v, want no connects or reconnects and the auth_invalid error", st)
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	ha := newFakeHA(t, "tok")
	ha.setStates(haState("sensor.a_temperature", "20", nil, t0), haState("switch.b", "on", nil, t0))
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok","reconnect":{"initial":"10ms","max":"50ms"}}`)
	rec := newRecorder()
	start(t, c, rec)

	first := ha.waitConn(t)
	rec.wait(t, 2)
	first.stateChanged("sensor.a_temperature", nil, haState("sensor.a_temperature", "21", nil, t1))
	rec.wait(t, 3)

	ha.dropAll() // no close frame: the connection just ends

	second := ha.waitConn(t)
	got := rec.wait(t, 5)
	second.stateChanged("switch.b", nil, haState("switch.b", "off", nil, t1))
	got = rec.wait(t, 6)
	var subjects, states []string
	for _, m := range got {
		var p Payload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		subjects, states = append(subjects, m.Subject), append(states, p.State)
	}
	wantSubjects := []string{"ha.sensor.a_temperature", "ha.switch.b", "ha.sensor.a_temperature", "ha.sensor.a_temperature", "ha.switch.b", "ha.switch.b"}
	wantStates := []string{"20", "on", "21", "20", "on", "off"} // the initial states again after the reconnect
	if !slices.Equal(subjects, wantSubjects) || !slices.Equal(states, wantStates) {
		t.Errorf("messages %v %v, want %v %v", subjects, states, wantSubjects, wantStates)
	}
	for i, conn := range []*fakeConn{first, second} {
		ids, types, subID, _, _ := conn.snapshot()
		if subID != 1 || len(ids) == 0 || ids[0] != 1 || types[0] != "subscribe_events" {
			t.Errorf("connection %d: commands %v %v, subscription %d; want a fresh id sequence starting with subscribe_events id 1", i+1, ids, types, subID)
		}
	}
	if calls, _ := ha.rest(); calls != 2 {
		t.Errorf("/api/states called %d times, want 2 (once per connection)", calls)
	}
	st := c.Stats()
	if st.Connects != 2 || st.Reconnects != 1 || !strings.Contains(st.LastError, "connection lost") {
		t.Errorf("Stats = %+v, want 2 connects, 1 reconnect, last error \"connection lost…\"", st)
	}
}

func TestPingPong(t *testing.T) {
	ha := newFakeHA(t, "tok")
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok","ping_interval":"20ms"}`)
	start(t, c, newRecorder())
	conn := ha.waitConn(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, _, pings, _ := conn.snapshot()
		if len(pings) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d pings within 5s at ping_interval 20ms", len(pings))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ids, types, _, pings, _ := conn.snapshot()
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("command ids %v (%v), want 1, 2, 3, …", ids, types)
		}
	}
	if pings[0] != 2 {
		t.Errorf("first ping id %d, want 2 (after subscribe_events 1)", pings[0])
	}
	if n := len(ha.connections()); n != 1 {
		t.Errorf("%d connections while pongs are answered, want 1", n)
	}
	if st := c.Stats(); st.Reconnects != 0 || st.LastError != "" {
		t.Errorf("Stats = %+v, want no reconnect or error", st)
	}
}

func TestMissingPongReconnects(t *testing.T) {
	ha := newFakeHA(t, "tok")
	ha.setStates(haState("sensor.a", "1", nil, t0))
	ha.silent.Store(true)
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok","ping_interval":"30ms","reconnect":{"initial":"10ms","max":"20ms"}}`)
	rec := newRecorder()
	start(t, c, rec)
	first := ha.waitConn(t)
	ha.waitConn(t) // a second connection: the unanswered ping ended the first
	select {
	case <-first.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the first connection was not closed")
	}
	if _, _, _, pings, _ := first.snapshot(); len(pings) != 1 {
		t.Errorf("first connection saw %d pings, want 1 (the unanswered one)", len(pings))
	}
	rec.wait(t, 2) // the initial state, again on the second connection
	if st := c.Stats(); st.Reconnects < 1 || !strings.Contains(st.LastError, "no pong") {
		t.Errorf("Stats = %+v, want a reconnect after \"no pong …\"", st)
	}
}

func TestCancelClosesCleanly(t *testing.T) {
	ha := newFakeHA(t, "tok")
	ha.setStates(haState("sensor.a", "1", nil, t0))
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok"}`)
	rec := newRecorder()
	r := start(t, c, rec)
	conn := ha.waitConn(t)
	rec.wait(t, 1)
	began := time.Now()
	if err := r.stop(t, 2*time.Second); err != nil {
		t.Fatalf("Collect returned %v after its context ended, want nil", err)
	}
	took := time.Since(began)
	select {
	case <-conn.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("server connection still open after Collect returned")
	}
	if _, _, _, _, code := conn.snapshot(); code != 1000 {
		t.Errorf("server saw close code %d, want 1000 (normal closure)", code)
	}
	if st := c.Stats(); st.Connected {
		t.Errorf("Stats.Connected after Collect returned")
	}
	t.Logf("Collect returned %v after cancel", took)
}

func TestCancelWhileReconnecting(t *testing.T) {
	c := newCollector(t, `{"url":"http://127.0.0.1:1","token":"tok","reconnect":{"initial":"1h","max":"1h"}}`)
	r := start(t, c, newRecorder())
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("no connection error within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.stop(t, time.Second); err != nil {
		t.Fatalf("Collect = %v, want nil", err)
	}
	if st := c.Stats(); st.Connects != 0 || !strings.Contains(st.LastError, "connect ws://127.0.0.1:1/api/websocket") {
		t.Errorf("Stats = %+v", st)
	}
}

// TestEmitRefused: an Emitter that refuses ends Collect with its error, as
// the plugin contract asks (stop producing), after closing the socket.
func TestEmitRefused(t *testing.T) {
	ha := newFakeHA(t, "tok")
	ha.setStates(haState("sensor.a", "1", nil, t0))
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok"}`)
	refuse := errors.New("route shutting down")
	err := c.Collect(context.Background(), plugin.EmitFunc(func(plugin.Message) error { return refuse }))
	if !errors.Is(err, refuse) || !strings.Contains(err.Error(), "emit ha.sensor.a") {
		t.Fatalf("Collect = %v, want the emitter's error", err)
	}
}

func TestFakeServerREST(t *testing.T) {
	ha := newFakeHA(t, "tok")
	ha.setStates(haState("sensor.a", "1", nil, t0))
	for _, tt := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer nope", 401}, {"tok", 401}, {"Bearer tok", 200}} {
		req, _ := http.NewRequest(http.MethodGet, ha.url()+"/api/states", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("Authorization %q: HTTP %d, want %d", tt.auth, resp.StatusCode, tt.code)
		}
		var list []map[string]any
		if tt.code == 200 && (json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0]["entity_id"] != "sensor.a") {
			t.Errorf("body %s, want an array with sensor.a", body)
		}
	}
}

// TestInitialStatesRefused: a REST failure after a good WebSocket sign-in
// (here: /api/states answering 401) ends the session and is retried.
func TestInitialStatesRefused(t *testing.T) {
	ha := newFakeHA(t, "tok")
	c := newCollector(t, `{"url":"`+ha.url()+`","token":"tok","reconnect":{"initial":"10ms","max":"20ms"}}`)
	// The WebSocket accepts the token; /api/states gets no Authorization header.
	rt := c.client.Transport
	c.client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
		return rt.RoundTrip(r)
	})
	start(t, c, newRecorder())
	ha.waitConn(t)
	ha.waitConn(t)
	if st := c.Stats(); !strings.Contains(st.LastError, "initial states") || !strings.Contains(st.LastError, "401") {
		t.Errorf("Stats.LastError = %q, want the 401 of /api/states", st.LastError)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestStaleQueuedEvents(t *testing.T) {
	c := newCollector(t, `{"token":"tok"}`)
	rec := newRecorder()
	snapshot := map[string]time.Time{"ha.sensor.a": t0}
	ev := func(st string, at time.Time) []byte {
		b, _ := json.Marshal(map[string]any{"id": 1, "type": "event", "event": map[string]any{"event_type": "state_changed",
			"data": map[string]any{"entity_id": "sensor.a", "new_state": haState("sensor.a", st, nil, at)}}})
		return b
	}
	var pending int64
	for _, f := range [][]byte{ev("old", t0.Add(-time.Second)), ev("same", t0), ev("new", t1), ev("older again", t0)} {
		if err := c.handle(rec, f, 1, snapshot, &pending); err != nil {
			t.Fatal(err)
		}
	}
	var states []string
	for _, m := range rec.all() {
		var p Payload
		_ = json.Unmarshal(m.Payload, &p)
		states = append(states, p.State)
	}
	// Events no newer than the fetched state are dropped until a newer one
	// arrives; after that every event passes.
	if !slices.Equal(states, []string{"new", "older again"}) {
		t.Errorf("emitted states %v, want [new older again]", states)
	}
}

func TestCoalescedFrames(t *testing.T) {
	c := newCollector(t, `{"token":"tok"}`)
	rec := newRecorder()
	var pending int64 = 7
	frame := `[{"id":7,"type":"pong"},{"id":3,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"sensor.x","new_state":{"entity_id":"sensor.x","state":"5","attributes":{},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}}}},{"id":4,"type":"event","event":{}}]`
	if err := c.handle(rec, []byte(frame), 3, nil, &pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || len(rec.all()) != 1 || rec.all()[0].Subject != "ha.sensor.x" {
		t.Errorf("pending %d, messages %s; want the pong and one event handled", pending, describe(rec.all()))
	}
}

func TestMapState(t *testing.T) {
	m := mapper{prefix: "ha", now: func() time.Time { return t1 }}
	tests := []struct {
		name, in, subject, payload, err string
		time                            time.Time
	}{
		{name: "numeric with unit", in: `{"entity_id":"sensor.kitchen_temp","state":"21.5","attributes":{"unit_of_measurement":"°C"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`,
			subject: "ha.sensor.kitchen_temp", time: t0,
			payload: `{"entity_id":"sensor.kitchen_temp","state":"21.5","value":21.5,"unit":"°C","attributes":{"unit_of_measurement":"°C"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}`},
		{name: "no attributes, bad time", in: `{"entity_id":"sun.sun","state":"above_horizon","last_updated":"yesterday"}`,
			subject: "ha.sun.sun", time: t1,
			payload: `{"entity_id":"sun.sun","state":"above_horizon","attributes":{},"last_changed":"","last_updated":"yesterday"}`},
		{name: "HTML characters kept", in: `{"entity_id":"input_text.note","state":"<b>&","attributes":null}`,
			subject: "ha.input_text.note", time: t1, payload: `{"entity_id":"input_text.note","state":"<b>&","attributes":{},"last_changed":"","last_updated":""}`},
		{name: "no domain", in: `{"entity_id":"kitchen","state":"1"}`, err: "want domain.object_id"},
		{name: "upper case", in: `{"entity_id":"Sensor.a","state":"1"}`, err: "want domain.object_id"},
		{name: "three parts", in: `{"entity_id":"sensor.a.b","state":"1"}`, err: "want domain.object_id"},
		{name: "numeric state in JSON", in: `{"entity_id":"sensor.a","state":1}`, err: "state object"},
		{name: "attributes not an object", in: `{"entity_id":"sensor.a","state":"1","attributes":[1]}`, err: "attributes: want an object"},
		{name: "not JSON", in: `{"entity_id"`, err: "state object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := m.fromState([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("fromState(%s) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkMessages(t, []plugin.Message{msg}, []want{{subject: tt.subject, payload: tt.payload, time: tt.time}})
			if strings.Contains(string(msg.Payload), `\u003c`) {
				t.Errorf("payload %s escapes HTML", msg.Payload)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
		v  float64
	}{
		{"21.5", true, 21.5}, {"-3", true, -3}, {"0", true, 0}, {"1e3", true, 1000}, {"-0.50", true, -0.5}, {"1E-2", true, 0.01},
		{"", false, 0}, {"on", false, 0}, {"unavailable", false, 0}, {"NaN", false, 0}, {"Infinity", false, 0}, {"-Inf", false, 0},
		{" 7", false, 0}, {"7 ", false, 0}, {"0x10", false, 0}, {"1_000", false, 0}, {"01", false, 0}, {"1.", false, 0}, {".5", false, 0},
		{"+1", false, 0}, {"1e", false, 0}, {"1e999", false, 0}, {"-", false, 0},
	} {
		v, ok := number(tt.in)
		if ok != tt.ok || v != tt.v {
			t.Errorf("number(%q) = %v, %v; want %v, %v", tt.in, v, ok, tt.v, tt.ok)
		}
	}
}

func TestConfig(t *testing.T) {
	c := newCollector(t, `{"token":"tok"}`)
	if c.URL != DefaultURL || c.ends.ws != "ws://homeassistant.local:8123/api/websocket" || c.ends.states != "http://homeassistant.local:8123/api/states" ||
		c.SubjectPrefix != "ha" || !*c.InitialStates || time.Duration(c.PingInterval) != 30*time.Second || time.Duration(c.Timeout) != 10*time.Second ||
		time.Duration(c.Reconnect.Initial) != time.Second || time.Duration(c.Reconnect.Max) != time.Minute {
		t.Errorf("defaults: %+v %+v", c, c.ends)
	}
	c = newCollector(t, `{"token":"tok","url":"https://ha.example.org/ha/","reconnect":{"initial":"2m"}}`)
	if c.ends.ws != "wss://ha.example.org/ha/api/websocket" || c.ends.states != "https://ha.example.org/ha/api/states" {
		t.Errorf("https url with a path: %+v", c.ends)
	}
	if time.Duration(c.Reconnect.Max) != 2*time.Minute {
		t.Errorf("reconnect.max = %s, want reconnect.initial when that is larger than the default", time.Duration(c.Reconnect.Max))
	}

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = newCollector(t, `{"token_file":"`+tokenFile+`"}`)
	if c.tok != "from-file" {
		t.Errorf("token from token_file = %q", c.tok)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct{ config, err string }{
		{`{}`, "token: is required"},
		{`{"token":"  "}`, "token: is required"},
		{`{"tokn":"x"}`, `unknown field "tokn"`},
		{`{"token":"x","reconnect":{"jitter":true}}`, `unknown field "jitter"`},
		{`{"token":"x","url":"ftp://ha:21"}`, "url: want an http:// or https:// address"},
		{`{"token":"x","url":"ws://ha:8123"}`, "url: want an http:// or https:// address"},
		{`{"token":"x","url":"homeassistant.local:8123"}`, "url: want an http:// or https:// address"},
		{`{"token":"x","url":"http://"}`, "has no host"},
		{`{"token":"x","url":"http://u:p@ha:8123"}`, "must not hold a user"},
		{`{"token":"x","url":"http://ha:8123/?a=1"}`, "must not have a query"},
		{`{"token":"x","url":"http://ha:8123/%zz"}`, "url: want http://host:8123"},
		{`{"token":"x","ping_interval":"30"}`, `want a duration such as "30s", "5m" or "1h30m", got "30"`},
		{`{"token":"x","ping_interval":30}`, `want a duration such as "30s", "5m" or "1h30m", got 30`},
		{`{"token":"x","ping_interval":"-1s"}`, "ping_interval: must be positive"},
		{`{"token":"x","timeout":"-1s"}`, "timeout: must be positive"},
		{`{"token":"x","reconnect":{"initial":"-1s"}}`, "reconnect.initial: must be positive"},
		{`{"token":"x","reconnect":{"initial":"10s","max":"5s"}}`, "reconnect.max: must be at least reconnect.initial (10s), got 5s"},
		{`{"token":"x","entities":["sensor.[a"]}`, `entities[0]: "sensor.[a" is not a valid glob`},
		{`{"token":"x","entities":[""]}`, "entities[0]: must not be empty"},
		{`{"token":"x","entities":"sensor.*"}`, `field "entities": want []string`},
		{`{"token":"x","domains":["Sensor"]}`, `domains[0]: want a domain such as "sensor"`},
		{`{"token":"x","domains":["sensor.x"]}`, `domains[0]: want a domain`},
		{`{"token":"x","subject_prefix":"a..b"}`, "subject_prefix: \"a..b\" has an empty token"},
		{`{"token":"x","subject_prefix":"a.*"}`, "subject_prefix: \"a.*\": wildcards are not allowed"},
		{`{"token":"x","subject_prefix":"a b"}`, "must not contain white space"},
		{`{"token":"x","initial_states":"yes"}`, `field "initial_states": want bool`},
		{`{"token":"x","tls":{"ca_file":"` + notPEM + `","insecure_skip_verify":true}}`, "tls: ca_file and insecure_skip_verify exclude each other"},
		{`{"token":"x","tls":{"ca_file":"` + notPEM + `"}}`, "holds no PEM certificate"},
		{`{"token":"x","tls":{"ca_file":"/nonexistent/ca.pem"}}`, "tls.ca_file: open /nonexistent/ca.pem"},
		{`{"token":"x","token_file":"` + tokenFile + `"}`, "token_file: set token or token_file, not both"},
		{`{"token_file":"/nonexistent/token"}`, "token_file: open /nonexistent/token"},
		{`{"token":"a\nb"}`, "token: must not contain a line break"},
		{`{"token":"x"} {}`, "unexpected data after the object"},
	}
	for _, tt := range tests {
		c := new(Collector)
		err := plugin.DecodeConfig([]byte(tt.config), c)
		if err == nil {
			err = c.Provision(context.Background())
		}
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("config %s: error %v, want one containing %q", tt.config, err, tt.err)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := newCollector(t, `{"token":"x","reconnect":{"initial":"1s","max":"60s"}}`)
	for n, ceil := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second} {
		for range 50 {
			if d := c.backoff(n); d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, ceil/2, ceil)
			}
		}
	}
	if d := c.backoff(1000); d < 30*time.Second || d > time.Minute {
		t.Errorf("backoff(1000) = %s", d)
	}
	c = newCollector(t, `{"token":"x","reconnect":{"initial":"1ns","max":"2562047h"}}`)
	if d := c.backoff(100); d < time.Duration(c.Reconnect.Max)/2 {
		t.Errorf("backoff(100) up to the largest duration = %s (overflow?)", d)
	}
}

func TestRegistered(t *testing.T) {
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	if _, ok := info.New().(*Collector); !ok {
		t.Errorf("New returns %T", info.New())
	}
}

func TestNotProvisioned(t *testing.T) {
	if err := new(Collector).Collect(context.Background(), newRecorder()); err == nil {
		t.Error("Collect without Provision succeeded")
	}
	if err := new(Collector).Validate(); err == nil {
		t.Error("Validate without Provision succeeded")
	}
}

// TestSample loads sample.yaml with the runtime's configuration loader, runs
// its config through the plugin's lifecycle, and checks that README.md shows
// it verbatim.
func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	newCollector(t, string(raw))
}

func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		`{"token":"x"}`, `{}`, `{"token":"x","url":"https://ha.lan:8123/ha/","entities":["sensor.*"],"domains":["sensor"]}`,
		`{"token":"x","ping_interval":"1ms","reconnect":{"initial":"1ns","max":"1h"},"initial_states":false}`,
		`{"token":"x","subject_prefix":"a.b","timeout":"5s","tls":{"insecure_skip_verify":true}}`, `{"url":"http://[::1]:8123"}`, `[]`, `{"token":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := new(Collector)
		if err := plugin.DecodeConfig(raw, c); err != nil {
			return
		}
		c.TLS.CAFile, c.TokenFile = "", "" // no file reads under the fuzzer
		if c.Provision(context.Background()) != nil || c.Validate() != nil {
			return
		}
		if !strings.HasPrefix(c.ends.ws, "ws://") && !strings.HasPrefix(c.ends.ws, "wss://") || !strings.HasSuffix(c.ends.ws, "/api/websocket") {
			t.Fatalf("config %s: WebSocket address %q", raw, c.ends.ws)
		}
		if !strings.HasSuffix(c.ends.states, "/api/states") || c.PingInterval <= 0 || c.Timeout <= 0 || c.Reconnect.Initial <= 0 || c.Reconnect.Max < c.Reconnect.Initial {
			t.Fatalf("config %s accepted as %+v", raw, c)
		}
		for _, n := range []int{0, 1, 5, 64, 1 << 20} {
			if d := c.backoff(n); d < 0 || d > time.Duration(c.Reconnect.Max) {
				t.Fatalf("backoff(%d) = %s with %+v", n, d, c.Reconnect)
			}
		}
	})
}

// FuzzEventFrame feeds arbitrary WebSocket messages to the command phase's
// handler (event frame → message): it must never panic, and what it emits is
// well formed.
func FuzzEventFrame(f *testing.F) {
	f.Add([]byte(`{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"sensor.a","old_state":null,"new_state":{"entity_id":"sensor.a","state":"21.5","attributes":{"unit_of_measurement":"°C"},"last_changed":"` + t0s + `","last_updated":"` + t0s + `"}}}}`))
	f.Add([]byte(`{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"light.x","new_state":null}}}`))
	f.Add([]byte(`[{"id":2,"type":"pong"},{"id":1,"type":"event","event":{"event_type":"call_service","data":{}}}]`))
	f.Add([]byte(`{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"new_state":{"entity_id":"a.b","state":"1e999","attributes":[]}}}}`))
	f.Add([]byte(`{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"new_state":{"entity_id":"a.b","state":"-0","attributes":{"unit_of_measurement":null}}}}}`))
	f.Add([]byte(`{"id":"1","type":7}`))
	f.Add([]byte(`[`))
	var collectors []*Collector
	for _, cfg := range []string{`{"token":"x"}`, `{"token":"x","entities":["sensor.*","*.a?"],"domains":["sensor","a"],"subject_prefix":"p.q"}`} {
		c := new(Collector)
		if plugin.DecodeConfig([]byte(cfg), c) != nil || c.Provision(context.Background()) != nil || c.Validate() != nil {
			f.Fatalf("config %s refused", cfg)
		}
		collectors = append(collectors, c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range collectors {
			rec := newRecorder()
			var pending int64 = 2
			snapshot := map[string]time.Time{"ha.sensor.a": t0}
			if err := c.handle(rec, data, 1, snapshot, &pending); err != nil {
				t.Fatalf("handle(%q): %v", data, err)
			}
			for _, m := range rec.all() {
				tokens := strings.Split(strings.TrimPrefix(m.Subject, c.SubjectPrefix+"."), ".")
				if !strings.HasPrefix(m.Subject, c.SubjectPrefix+".") || len(tokens) != 2 || !validToken(tokens[0]) || !validToken(tokens[1]) {
					t.Fatalf("handle(%q) emitted subject %q", data, m.Subject)
				}
				var p struct {
					EntityID   *string        `json:"entity_id"`
					State      *string        `json:"state"`
					Value      *float64       `json:"value"`
					Attributes map[string]any `json:"attributes"`
				}
				if err := json.Unmarshal(m.Payload, &p); err != nil || p.EntityID == nil || p.State == nil || p.Attributes == nil {
					t.Fatalf("handle(%q) emitted payload %s (%v)", data, m.Payload, err)
				}
				if p.Value != nil && (math.IsNaN(*p.Value) || math.IsInf(*p.Value, 0)) {
					t.Fatalf("value %v", *p.Value)
				}
				if m.Time.IsZero() {
					t.Fatalf("handle(%q) emitted a message without a time", data)
				}
			}
		}
	})
}
