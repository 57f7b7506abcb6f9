package app_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/mosquittotest"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// MQTT both ways through a relay, against a real Mosquitto: a device's data
// reaches a topic through brokers.mqtt, and QoS 1 messages published to a
// topic reach a device through collectors.mqtt — all of them, across a
// restart of the broker, none that Mosquitto acknowledged lost.
func TestMQTTBothWaysAcrossBrokerRestart(t *testing.T) {
	srv := mosquittotest.Start(t, mosquittotest.Config{})
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{
			{ID: "mqtt-in", Use: "collectors.mqtt", Runtime: "builtin", Config: map[string]any{
				"url": srv.URL, "client_id": "relay-in", "reconnect_max": "1s", "subject_prefix": "mqtt",
				"subscriptions": []any{map[string]any{"topic": "home/#", "qos": 1}},
			}},
			{ID: "mqtt-out", Use: "brokers.mqtt", Runtime: "builtin", Config: map[string]any{
				"url": srv.URL, "client_id": "relay-out", "qos": 1, "reconnect_max": "1s",
			}},
		}
		c.Junctions = []config.Junction{
			{ID: "to-mqtt", Source: "device.>", Targets: []config.Target{{Broker: "mqtt-out"}}},
			{ID: "from-mqtt", Source: "mqtt.>", Collector: "mqtt-in", Targets: []config.Target{{Device: "panel"}}},
		}
	})
	panel := r.Connect(r.CreateDevice("default", "panel", nil))
	sensor := r.Connect(r.CreateDevice("default", "sensor", nil))

	// Device → brokers.mqtt → topic.
	watcher := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "watcher", Subscribe: []string{"device/#"}})
	sensor.Send(map[string]any{"type": "data", "stream": "telemetry", "payload": map[string]any{"t": 21.5}})
	got := watcher.Next(t, 10*time.Second)
	var payload map[string]any
	if got.Topic != "device/sensor/telemetry" || json.Unmarshal(got.Payload, &payload) != nil || payload["t"] != 21.5 || got.QoS != 1 {
		t.Fatalf("the topic got %s %q at QoS %d; want device/sensor/telemetry {\"t\":21.5} at QoS 1", got.Topic, got.Payload, got.QoS)
	}

	// Topic → collectors.mqtt → device, across a restart of Mosquitto.
	const total = 30
	pub := mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub-1"})
	publish := func(pub *mosquittotest.Client, from, to int) {
		for i := from; i <= to; i++ {
			pub.Publish(t, "home/seq", fmt.Appendf(nil, `{"n":%d}`, i), 1) // returns once Mosquitto acknowledged it
		}
	}
	seen := map[int]bool{}
	read := func(want int) {
		deadline := time.Now().Add(20 * time.Second)
		for len(seen) < want {
			f, err := panel.TryRead(time.Until(deadline))
			if err != nil {
				t.Fatalf("the panel has %d of %d messages: %v", len(seen), want, err)
			}
			if f["type"] != "message" {
				continue
			}
			if f["subject"] != "mqtt.home.seq" {
				t.Fatalf("panel got %v", f)
			}
			seen[int(f["payload"].(map[string]any)["n"].(float64))] = true
		}
	}
	publish(pub, 1, 10)
	read(10)
	srv.Stop()
	srv.Start(t)
	pub = mosquittotest.Connect(t, srv.URL, mosquittotest.ClientOptions{ClientID: "pub-2"})
	publish(pub, 11, total)
	read(total)
	for i := 1; i <= total; i++ {
		if !seen[i] {
			t.Errorf("message %d was acknowledged by Mosquitto and never reached the device", i)
		}
	}
}
