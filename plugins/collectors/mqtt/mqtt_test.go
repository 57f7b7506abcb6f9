package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
	"github.com/switchyard/switchyard/plugins/mosquittotest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

// within bounds every wait for something that must happen.
const within = 20 * time.Second

func TestConfig(t *testing.T) {
	tests := []struct {
		name, raw, err string
	}{
		{name: "minimal", raw: `{"url":"mqtt://127.0.0.1:1883","client_id":"c","subscriptions":[{"topic":"a/#","qos":1}],"subject_prefix":"mqtt"}`},
		{name: "clean start needs no client id", raw: `{"url":"mqtt://h","clean_start":true,"subscriptions":[{"topic":"a"}],"subject_prefix":"p"}`},
		{name: "all keys", raw: `{"url":"mqtts://h:8883","client_id":"c","username":"u","password":"p","tls":{"server_name":"h","insecure_skip_verify":true},
			"clean_start":false,"session_expiry":"10m","keep_alive":"10s","connect_timeout":"2s","reconnect_max":"5s",
			"subscriptions":[{"topic":"+/b/#","qos":0}],"subject_prefix":"a.b"}`},
		{name: "unknown key", raw: `{"url":"mqtt://h","client_id":"c","topics":["a"]}`, err: `unknown field "topics"`},
		{name: "unknown nested key", raw: `{"url":"mqtts://h","client_id":"c","tls":{"ca":"x"}}`, err: `unknown field "ca"`},
		{name: "wrong type", raw: `{"url":"mqtt://h","client_id":"c","subscriptions":[{"topic":"a","qos":"1"}]}`, err: `field "subscriptions.qos": want int`},
		{name: "bad duration", raw: `{"url":"mqtt://h","client_id":"c","session_expiry":"1 hour"}`, err: `want a duration such as "30s"`},
		{name: "negative duration", raw: `{"url":"mqtt://h","client_id":"c","keep_alive":"-1s"}`, err: "zero or more"},
		{name: "persistent session needs client id", raw: `{"url":"mqtt://h","subscriptions":[{"topic":"a"}],"subject_prefix":"p"}`, err: "client_id: is required for a persistent session"},
		{name: "no url", raw: `{"client_id":"c","subscriptions":[{"topic":"a"}],"subject_prefix":"p"}`, err: "url: is required"},
		{name: "http url", raw: `{"url":"http://h:1","client_id":"c"}`, err: "url: want mqtt://host:port or mqtts://host:port"},
		{name: "credentials in url", raw: `{"url":"mqtt://u:p@h:1","client_id":"c"}`, err: "credentials go in username and password"},
		{name: "bad port", raw: `{"url":"mqtt://h:99999","client_id":"c"}`, err: "port must be 1 to 65535"},
		{name: "tls without mqtts", raw: `{"url":"mqtt://h","client_id":"c","tls":{}}`, err: "tls: set, but url"},
		{name: "missing ca file", raw: `{"url":"mqtts://h","client_id":"c","tls":{"ca_file":"/nonexistent/ca.pem"}}`, err: "tls.ca_file: open /nonexistent/ca.pem"},
		{name: "cert without key", raw: `{"url":"mqtts://h","client_id":"c","tls":{"cert_file":"c.pem"}}`, err: "cert_file and key_file go together"},
		{name: "password without user", raw: `{"url":"mqtt://h","client_id":"c","password":"p"}`, err: "password: set without username"},
		{name: "no subscriptions", raw: `{"url":"mqtt://h","client_id":"c","subject_prefix":"p"}`, err: "subscriptions: want at least one"},
		{name: "qos 2", raw: `{"url":"mqtt://h","client_id":"c","subscriptions":[{"topic":"a","qos":2}],"subject_prefix":"p"}`, err: "subscriptions[0].qos: want 0 or 1, got 2"},
		{name: "bad filter", raw: `{"url":"mqtt://h","client_id":"c","subscriptions":[{"topic":"a/#/b"}],"subject_prefix":"p"}`, err: "subscriptions[0].topic: filter \"a/#/b\": '#' may only be the last level"},
		{name: "no prefix", raw: `{"url":"mqtt://h","client_id":"c","subscriptions":[{"topic":"a"}]}`, err: "subject_prefix: is required"},
		{name: "wildcard prefix", raw: `{"url":"mqtt://h","client_id":"c","subscriptions":[{"topic":"a"}],"subject_prefix":"a.*"}`, err: "subject_prefix: \"a.*\": tokens may not hold"},
		{name: "trailing data", raw: `{"url":"mqtt://h"} {}`, err: "unexpected data after the object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New([]byte(tt.raw))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := New([]byte(`{"url":"mqtt://broker.lan","client_id":"c","subscriptions":[{"topic":"a"}],"subject_prefix":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.link.URL.String() != "mqtt://broker.lan:1883" || c.expiry != time.Hour || c.link.KeepAlive != 30*time.Second {
		t.Errorf("defaults: url %s, session expiry %s, keep alive %s", c.link.URL, c.expiry, c.link.KeepAlive)
	}
	if _, ok := plugin.Lookup(Use); !ok {
		t.Errorf("%s is not registered", Use)
	}
}

func TestPayload(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"temp":21.5}`, `{"temp":21.5}`},
		{` [1, 2] `, ` [1, 2] `},
		{`21.5`, `21.5`},
		{`"on"`, `"on"`},
		{`on`, `{"text":"on"}`},
		{`{"broken":`, `{"text":"{\"broken\":"}`},
		{"", `{"text":""}`},
		{"grüße <b>", `{"text":"grüße \u003cb\u003e"}`},
		{"\xff\x00\x01", `{"base64":"/wAB"}`},
	}
	for _, tt := range tests {
		if got := string(Payload([]byte(tt.in))); got != tt.want {
			t.Errorf("Payload(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestSample loads sample.yaml with the runtime's loader (runtime builtin),
// decodes its configuration, and checks that the README shows it.
func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	if _, err := New(raw); err != nil {
		t.Fatalf("sample.yaml: config refused: %v", err)
	}
}

// emitter records what Collect emits; refuse, when set, decides per message
// whether Emit refuses it.
type emitter struct {
	mu       sync.Mutex
	accepted []plugin.Message
	refused  []plugin.Message
	refuse   func(plugin.Message) bool
	notify   chan struct{}
}

func newEmitter() *emitter { return &emitter{notify: make(chan struct{}, 1)} }

func (e *emitter) Emit(m plugin.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		select {
		case e.notify <- struct{}{}:
		default:
		}
	}()
	if e.refuse != nil && e.refuse(m) {
		e.refused = append(e.refused, m)
		return errors.New("queue full")
	}
	e.accepted = append(e.accepted, m)
	return nil
}

// waitFor waits until cond holds over the accepted messages.
func (e *emitter) waitFor(t *testing.T, what string, cond func([]plugin.Message) bool) []plugin.Message {
	t.Helper()
	deadline := time.After(within)
	for {
		e.mu.Lock()
		got := append([]plugin.Message(nil), e.accepted...)
		e.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-e.notify:
		case <-deadline:
			t.Fatalf("%s: not within %s; accepted %d: %s", what, within, len(got), subjects(got))
		}
	}
}

func subjects(ms []plugin.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Subject+" "+string(m.Payload))
	}
	return strings.Join(s, ", ")
}

// running is one Collect call in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	ready  chan struct{}
}

// start provisions a collector from raw and runs Collect until stop or the end of the test.
func start(t *testing.T, raw string, out plugin.Emitter) *running {
	t.Helper()
	c, err := New([]byte(raw))
	if err != nil {
		t.Fatalf("New(%s): %v", raw, err)
	}
	r := &running{done: make(chan error, 1), ready: make(chan struct{}, 16)}
	c.ready = func() { r.ready <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- c.Collect(ctx, out) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// waitReady waits until the collector has subscribed on a (new) connection.
func (r *running) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-r.ready:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Collect returned before subscribing: %v", err)
	case <-time.After(within):
		t.Fatalf("the collector did not subscribe within %s", within)
	}
}

// stop cancels Collect and returns its result (nil once it has returned).
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(within):
		t.Fatalf("Collect did not return within %s of its context ending", within)
		return nil
	}
}

func conf(url, clientID, extra string) string {
	return fmt.Sprintf(`{"url":%q,"client_id":%q,"subscriptions":[{"topic":"home/#","qos":1},{"topic":"raw/+","qos":0}],"subject_prefix":"mqtt"%s}`, url, clientID, extra)
}

// TestReceive subscribes with two filters and checks the subject, payload
// and meta of what a publisher sends, including escaped topic levels.
func TestReceive(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	out := newEmitter()
	r := start(t, conf(srv.URL, "recv", ""), out)
	r.waitReady(t)
	pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub"})
	tests := []struct {
		topic, payload string
		qos            byte
		subject, want  string
	}{
		{"home/kitchen/temp", `{"value":21.5}`, 1, "mqtt.home.kitchen.temp", `{"value":21.5}`},
		{"home/living_room/light", `on`, 1, "mqtt.home.living_room.light", `{"text":"on"}`},
		{"home/v1.2/a b", `3`, 0, "mqtt.home.v1~2E2.a~20b", `3`},
		{"home//x", "\xfe\xff", 1, "mqtt.home.~.x", `{"base64":"/v8="}`},
		{"raw/bytes", `[1,2]`, 0, "mqtt.raw.bytes", `[1,2]`},
		{"other/ignored", `{}`, 1, "", ""}, // not subscribed
		{"home/last", `{"end":true}`, 1, "mqtt.home.last", `{"end":true}`},
	}
	for _, tt := range tests {
		pub.Publish(t, tt.topic, []byte(tt.payload), tt.qos)
	}
	got := out.waitFor(t, "all subscribed messages", func(ms []plugin.Message) bool {
		return len(ms) > 0 && ms[len(ms)-1].Subject == "mqtt.home.last"
	})
	var want []plugin.Message
	for _, tt := range tests {
		if tt.subject != "" {
			want = append(want, plugin.Message{Subject: tt.subject, Payload: []byte(tt.want),
				Meta: map[string]string{"mqtt_topic": tt.topic, "mqtt_qos": fmt.Sprint(tt.qos)}})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages (%s), want %d", len(got), subjects(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Subject != w.Subject || string(g.Payload) != string(w.Payload) ||
			g.Meta["mqtt_topic"] != w.Meta["mqtt_topic"] || g.Meta["mqtt_qos"] != w.Meta["mqtt_qos"] || g.Time.IsZero() {
			t.Errorf("message %d = %s %s %v, want %s %s %v", i, g.Subject, g.Payload, g.Meta, w.Subject, w.Payload, w.Meta)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Collect returned %v after its context ended, want nil", err)
	}
}

// numbered returns the set of "n" values in accepted payloads and their
// first-seen order.
func numbered(ms []plugin.Message) (map[int]bool, []int) {
	seen := map[int]bool{}
	var order []int
	for _, m := range ms {
		var p struct{ N int }
		if json.Unmarshal(m.Payload, &p) == nil && p.N > 0 && !seen[p.N] {
			seen[p.N] = true
			order = append(order, p.N)
		}
	}
	return seen, order
}

func hasAll(n int) func([]plugin.Message) bool {
	return func(ms []plugin.Message) bool {
		seen, _ := numbered(ms)
		for i := 1; i <= n; i++ {
			if !seen[i] {
				return false
			}
		}
		return true
	}
}

func publishN(t *testing.T, pub *mosquittotest.Client, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		pub.Publish(t, "home/seq", fmt.Appendf(nil, `{"n":%d}`, i), 1)
	}
}

// TestPersistentSession: QoS 1 messages published while the collector is
// away, and across a restart of the server, all arrive when it comes back
// with the same client id — none that the server acknowledged is lost.
func TestPersistentSession(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	out := newEmitter()
	r := start(t, conf(srv.URL, "persist", ""), out)
	r.waitReady(t)
	pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub1"})
	publishN(t, pub, 1, 5)
	out.waitFor(t, "1-5 while connected", hasAll(5))
	if err := r.stop(t); err != nil {
		t.Fatalf("Collect: %v", err)
	}

	publishN(t, pub, 6, 10) // queued for the away session
	srv.Stop()
	srv.Start(t)
	pub = mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub2"})
	publishN(t, pub, 11, 15) // queued after the restart

	r = start(t, conf(srv.URL, "persist", ""), out)
	got := out.waitFor(t, "6-15 after the restart", hasAll(15))
	if _, order := numbered(got); !increasing(order) {
		t.Errorf("first deliveries out of order: %v", order)
	}
	r.waitReady(t)
	publishN(t, pub, 16, 16)
	out.waitFor(t, "16 on the resumed session", hasAll(16))
}

func increasing(s []int) bool {
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			return false
		}
	}
	return true
}

// TestRefusedMessageRedelivered: a QoS 1 message Emit refuses is not
// acknowledged; the server delivers it again and it, and those after it,
// are accepted in order.
func TestRefusedMessageRedelivered(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	out := newEmitter()
	refusals := 0
	out.refuse = func(m plugin.Message) bool {
		if string(m.Payload) == `{"n":3}` && refusals < 2 {
			refusals++
			return true
		}
		return false
	}
	r := start(t, conf(srv.URL, "refuse", `,"reconnect_max":"1s"`), out)
	r.waitReady(t)
	pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub"})
	publishN(t, pub, 1, 6)
	got := out.waitFor(t, "1-6 with 3 refused twice", hasAll(6))
	if _, order := numbered(got); !increasing(order) {
		t.Errorf("first acceptances out of order: %v", order)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.refused) != 2 {
		t.Errorf("Emit refused %d messages, want 2 (n=3 twice)", len(out.refused))
	}
}

// TestReconnectAfterRestart: the collector stays in Collect while the
// server is down, reconnects when it is back, and receives again.
func TestReconnectAfterRestart(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	out := newEmitter()
	r := start(t, conf(srv.URL, "reconnect", `,"reconnect_max":"1s"`), out)
	r.waitReady(t)
	srv.Stop()
	srv.Start(t)
	r.waitReady(t) // subscribed again on the new connection
	pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub"})
	publishN(t, pub, 1, 3)
	out.waitFor(t, "1-3 after the restart", hasAll(3))
	select {
	case err := <-r.done:
		t.Fatalf("Collect returned %v while the server restarted", err)
	default:
	}
}

// TestCredentials: the right user connects; a wrong password or none ends
// Collect with an error that says the server refused them.
func TestCredentials(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{Users: map[string]string{"sensor": "s3cret"}})
	tests := []struct {
		name, extra, err string
	}{
		{name: "right password", extra: `,"username":"sensor","password":"s3cret"`},
		// Mosquitto 2.0 answers a wrong password with "not authorized" too.
		{name: "wrong password", extra: `,"username":"sensor","password":"nope"`, err: "refused by the server: not authorized (reason code 0x87)"},
		{name: "unknown user", extra: `,"username":"ghost","password":"s3cret"`, err: "refused by the server: not authorized (reason code 0x87)"},
		{name: "anonymous", extra: ``, err: "refused by the server: not authorized (reason code 0x87)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := newEmitter()
			r := start(t, conf(srv.URL, "cred-"+strings.ReplaceAll(tt.name, " ", "-"), tt.extra), out)
			if tt.err == "" {
				r.waitReady(t)
				return
			}
			select {
			case err := <-r.done:
				r.done <- err
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), srv.URL) {
					t.Fatalf("Collect = %v, want an error naming %s and containing %q", err, srv.URL, tt.err)
				}
			case <-time.After(within):
				t.Fatalf("Collect did not give up within %s", within)
			}
		})
	}
}

// TestTLS: over mqtts:// with the test CA the collector receives; without
// it, Collect ends saying the certificate does not verify.
func TestTLS(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{TLS: true})
	t.Run("with the CA", func(t *testing.T) {
		out := newEmitter()
		r := start(t, conf(srv.TLSURL, "tls-ok", fmt.Sprintf(`,"tls":{"ca_file":%q}`, srv.CAFile)), out)
		r.waitReady(t)
		pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub"})
		publishN(t, pub, 1, 1)
		out.waitFor(t, "a message over TLS", hasAll(1))
	})
	t.Run("wrong server name", func(t *testing.T) {
		r := start(t, conf(srv.TLSURL, "tls-name", fmt.Sprintf(`,"tls":{"ca_file":%q,"server_name":"mqtt.example"}`, srv.CAFile)), newEmitter())
		expectErr(t, r, "does not verify")
	})
	t.Run("without the CA", func(t *testing.T) {
		r := start(t, conf(srv.TLSURL, "tls-noca", ""), newEmitter())
		expectErr(t, r, "certificate does not verify")
	})
}

func expectErr(t *testing.T, r *running, want string) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Collect = %v, want an error containing %q", err, want)
		}
	case <-time.After(within):
		t.Fatalf("Collect did not give up within %s", within)
	}
}

// FuzzConfig: decoding, provisioning and validating any input never panics,
// and an accepted configuration has a URL, a valid prefix and filters.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"url":"mqtt://127.0.0.1:1883","client_id":"c","subscriptions":[{"topic":"a/#","qos":1}],"subject_prefix":"mqtt"}`))
	f.Add([]byte(`{"url":"mqtts://h","clean_start":true,"tls":{"insecure_skip_verify":true},"session_expiry":"0s","subscriptions":[{"topic":"+"}],"subject_prefix":"a.b"}`))
	f.Add([]byte(`{"url":"mqtt://[::1]:1","client_id":"c","subscriptions":[{"topic":"#","qos":2}],"subject_prefix":"*"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := New(raw)
		if err != nil {
			return
		}
		if c.link == nil || c.link.URL.Port() == "" || c.link.ClientID == "" || len(c.Subscriptions) == 0 {
			t.Fatalf("accepted %s but provisioned %+v", raw, c.link)
		}
	})
}
