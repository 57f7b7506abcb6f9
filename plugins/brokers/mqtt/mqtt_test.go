package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/mqtt/topic"
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
	tests := []struct{ name, raw, err string }{
		{name: "minimal", raw: `{"url":"mqtt://127.0.0.1:1883"}`},
		{name: "all keys", raw: `{"url":"mqtts://h","client_id":"c","username":"u","password":"p","tls":{"ca_file":""},"keep_alive":"5s",
			"connect_timeout":"1s","reconnect_max":"2s","topic":"{tenant}/{1}/x","strip_prefix":"device","topic_prefix":"sy","qos":1,"retain":true,"timeout":"3s"}`},
		{name: "unknown key", raw: `{"url":"mqtt://h","topics":"x"}`, err: `unknown field "topics"`},
		{name: "no url", raw: `{}`, err: "url: is required"},
		{name: "qos 2", raw: `{"url":"mqtt://h","qos":2}`, err: "qos: want 0 or 1, got 2"},
		{name: "wildcard in template", raw: `{"url":"mqtt://h","topic":"a/+/{path}"}`, err: "wildcards '+' and '#' cannot be published to"},
		{name: "unknown placeholder", raw: `{"url":"mqtt://h","topic":"{device}"}`, err: "unknown placeholder {device}"},
		{name: "token zero", raw: `{"url":"mqtt://h","topic":"{0}"}`, err: "unknown placeholder {0}"},
		{name: "unclosed brace", raw: `{"url":"mqtt://h","topic":"a/{path"}`, err: "'{' without '}'"},
		{name: "stray brace", raw: `{"url":"mqtt://h","topic":"a}"}`, err: "'}' without '{'"},
		{name: "bad strip prefix", raw: `{"url":"mqtt://h","strip_prefix":"a..b"}`, err: "strip_prefix: \"a..b\" has an empty token"},
		{name: "bad topic prefix", raw: `{"url":"mqtt://h","topic_prefix":"a/#"}`, err: "topic_prefix: topic \"a/#\": wildcard"},
		{name: "bad timeout", raw: `{"url":"mqtt://h","timeout":5}`, err: "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New([]byte(tt.raw))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = b.Cleanup()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.err)
			}
		})
	}
	if _, ok := plugin.Lookup(Use); !ok {
		t.Errorf("%s is not registered", Use)
	}
}

func TestTopicOf(t *testing.T) {
	tests := []struct {
		config, tenant, subject, topic, err string
	}{
		{config: `{}`, subject: "device.sensor-1.telemetry", topic: "device/sensor-1/telemetry"},
		{config: `{"strip_prefix":"device"}`, subject: "device.sensor-1.telemetry", topic: "sensor-1/telemetry"},
		{config: `{"strip_prefix":"device","topic_prefix":"sy/out"}`, subject: "device.s.t", topic: "sy/out/s/t"},
		{config: `{"strip_prefix":"device"}`, subject: "other.s", topic: "other/s"}, // no match: kept whole
		{config: `{"strip_prefix":"mqtt"}`, subject: "mqtt.home.v1~2E2.a~20b.~.x", topic: "home/v1.2/a b//x"},
		{config: `{"topic":"{tenant}/{2}/state"}`, tenant: "acme", subject: "device.lamp.power", topic: "acme/lamp/state"},
		{config: `{"topic":"raw/{subject}"}`, subject: "a.b", topic: "raw/a.b"},
		{config: `{"topic":"{3}"}`, subject: "a.b", err: `wants token {3}, the subject has 2`},
		{config: `{"strip_prefix":"a","topic_prefix":"p"}`, subject: "a", topic: "p"},
		{config: `{"strip_prefix":"a"}`, subject: "a", err: "topic is empty"},
		{config: `{}`, subject: "a.b+c", err: "wildcard '+'"},
	}
	for _, tt := range tests {
		var cfg map[string]any
		_ = json.Unmarshal([]byte(tt.config), &cfg)
		cfg["url"] = "mqtt://h"
		raw, _ := json.Marshal(cfg)
		b, err := New(raw)
		if err != nil {
			t.Fatalf("New(%s): %v", raw, err)
		}
		got, err := b.TopicOf(plugin.Message{Tenant: tt.tenant, Subject: tt.subject})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.subject) {
				t.Errorf("%s: TopicOf(%q) = %q, %v; want an error naming the subject and containing %q", tt.config, tt.subject, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.topic {
			t.Errorf("%s: TopicOf(%q) = %q, %v; want %q", tt.config, tt.subject, got, err, tt.topic)
		}
	}
}

func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	b, err := New(raw)
	if err != nil {
		t.Fatalf("sample.yaml: config refused: %v", err)
	}
	if got, _ := b.TopicOf(plugin.Message{Subject: "device.sensor-1.telemetry"}); got != "switchyard/sensor-1/telemetry" {
		t.Errorf("sample maps device.sensor-1.telemetry to %q", got)
	}
}

// newBroker provisions a broker from raw and cleans it up at the end of the test.
func newBroker(t *testing.T, raw string) *Broker {
	t.Helper()
	b, err := New([]byte(raw))
	if err != nil {
		t.Fatalf("New(%s): %v", raw, err)
	}
	t.Cleanup(func() {
		if err := b.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return b
}

func batch(subjects ...string) []plugin.Message {
	var ms []plugin.Message
	for i, s := range subjects {
		ms = append(ms, plugin.Message{Tenant: "acme", Subject: s, Payload: fmt.Appendf(nil, `{"n":%d}`, i+1)})
	}
	return ms
}

func publish(t *testing.T, b *Broker, ms []plugin.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return b.Publish(ctx, ms)
}

func expect(t *testing.T, sub *mosquittotest.Client, want ...string) {
	t.Helper()
	for _, w := range want {
		topic, payload, _ := strings.Cut(w, " ")
		m := sub.Next(t, within)
		if m.Topic != topic || string(m.Payload) != payload {
			t.Fatalf("subscriber got %s %s (qos %d), want %s %s", m.Topic, m.Payload, m.QoS, topic, payload)
		}
	}
}

// TestPublish: a QoS 1 batch reaches a subscriber in order with the
// payload bytes; retain keeps the last message for a later subscriber.
func TestPublish(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	sub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "sub", Subscribe: []string{"sy/#"}})
	tests := []struct {
		name, config string
		subjects     []string
		want         []string
	}{
		{name: "qos 1 in order", config: `"qos":1,"strip_prefix":"device","topic_prefix":"sy"`,
			subjects: []string{"device.a.t", "device.b.t", "device.a.t", "device.c~2Ed.t"},
			want:     []string{`sy/a/t {"n":1}`, `sy/b/t {"n":2}`, `sy/a/t {"n":3}`, `sy/c.d/t {"n":4}`}},
		{name: "qos 0", config: `"qos":0,"topic":"sy/{tenant}/{path}"`,
			subjects: []string{"x.y"}, want: []string{`sy/acme/x/y {"n":1}`}},
		{name: "empty batch", config: `"qos":1,"topic_prefix":"sy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, fmt.Sprintf(`{"url":%q,%s}`, srv.URL, tt.config))
			if err := publish(t, b, batch(tt.subjects...)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			expect(t, sub, tt.want...)
		})
	}
	t.Run("retain", func(t *testing.T) {
		b := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"retain":true,"topic_prefix":"sy"}`, srv.URL))
		if err := publish(t, b, batch("kept")); err != nil {
			t.Fatal(err)
		}
		expect(t, sub, `sy/kept {"n":1}`)
		late := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "late", Subscribe: []string{"sy/kept"}})
		if m := late.Next(t, within); !m.Retain || string(m.Payload) != `{"n":1}` {
			t.Errorf("a later subscriber got %+v, want the retained message", m)
		}
	})
}

// TestReconnectBetweenCalls: after the server restarts, the next Publish
// waits for the reconnection and delivers.
func TestReconnectBetweenCalls(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	b := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"reconnect_max":"1s"}`, srv.URL))
	sub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "sub", Subscribe: []string{"#"}})
	if err := publish(t, b, batch("before")); err != nil {
		t.Fatal(err)
	}
	expect(t, sub, `before {"n":1}`)
	srv.Stop()
	srv.Start(t)
	sub = mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "sub", Subscribe: []string{"#"}})
	if err := publish(t, b, batch("after.1", "after.2")); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	expect(t, sub, `after/1 {"n":1}`, `after/2 {"n":2}`)
}

// TestServerDown: with no server, Publish fails within its timeout with an
// error naming the server, the topic and the connect error.
func TestServerDown(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	srv.Stop()
	b := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"timeout":"1s"}`, srv.URL))
	err := publish(t, b, batch("a.b"))
	for _, want := range []string{srv.URL, `publish to "a/b"`, "not connected", "connection refused"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Publish = %v, want an error containing %q", err, want)
		}
	}
}

// TestCredentials: the right user publishes; a wrong password fails the
// call at once (not at the timeout) saying the server refused it.
func TestCredentials(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{Users: map[string]string{"out": "pw", "sub": "pw"}})
	sub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "sub", Username: "sub", Password: "pw", Subscribe: []string{"#"}})
	good := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"username":"out","password":"pw"}`, srv.URL))
	if err := publish(t, good, batch("ok")); err != nil {
		t.Fatal(err)
	}
	expect(t, sub, `ok {"n":1}`)
	bad := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"username":"out","password":"wrong","timeout":"1m"}`, srv.URL))
	err := publish(t, bad, batch("no"))
	for _, want := range []string{srv.URL, `publish to "no"`, "refused by the server: not authorized (reason code 0x87)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Publish = %v, want an error containing %q", err, want)
		}
	}
}

// TestTLS: over mqtts:// with the test CA the message arrives; without the
// CA the call fails saying the certificate does not verify.
func TestTLS(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{TLS: true})
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	sub := mosquittotest.Connect(t, srv.TLSURL, mosquittotest.ClientOptions{ClientID: "sub", TLS: &tls.Config{RootCAs: pool}, Subscribe: []string{"#"}})
	b := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"tls":{"ca_file":%q}}`, srv.TLSURL, srv.CAFile))
	if err := publish(t, b, batch("secure")); err != nil {
		t.Fatal(err)
	}
	expect(t, sub, `secure {"n":1}`)
	noCA := newBroker(t, fmt.Sprintf(`{"url":%q,"qos":1,"timeout":"1m"}`, srv.TLSURL))
	if err := publish(t, noCA, batch("x")); err == nil || !strings.Contains(err.Error(), "certificate does not verify") {
		t.Fatalf("Publish without the CA = %v, want a certificate error", err)
	}
}

// FuzzConfig: decoding, provisioning and validating any input never panics;
// an accepted configuration maps a subject to a valid topic or says why not.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"url":"mqtt://h","qos":1,"strip_prefix":"device","topic_prefix":"sy"}`), "device.a.b")
	f.Add([]byte(`{"url":"mqtts://h:1","topic":"{tenant}/{2}/{path}/{subject}"}`), "a.b~2Ec")
	f.Add([]byte(`{"url":"mqtt://h","topic":"{9}"}`), "a")
	f.Fuzz(func(t *testing.T, raw []byte, subject string) {
		b, err := New(raw)
		if err != nil {
			return
		}
		got, err := b.TopicOf(plugin.Message{Subject: subject})
		if err == nil && topic.ValidName(got) != nil {
			t.Fatalf("TopicOf(%q) = %q, not a valid topic", subject, got)
		}
	})
}

// FuzzRoundTrip: what collectors.mqtt emits for a topic under a prefix,
// brokers.mqtt with that strip_prefix publishes to the same topic.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"home/kitchen/temp", "a.b/c d/~/*>", "/x/", "ü"} {
		f.Add(s)
	}
	b, err := New([]byte(`{"url":"mqtt://h","strip_prefix":"mqtt.in"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if topic.ValidName(name) != nil {
			return
		}
		got, err := b.TopicOf(plugin.Message{Subject: topic.Subject("mqtt.in", name)})
		if err != nil || got != name {
			t.Fatalf("topic %q → subject %q → topic %q, %v", name, topic.Subject("mqtt.in", name), got, err)
		}
	})
}
