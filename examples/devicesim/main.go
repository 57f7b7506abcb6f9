// Command devicesim is a device for trying Switchyard by hand: it connects to
// the gateway with a device token, says hello (protocol v1, see
// firmware/PROTOCOL.md), heart-beats at the interval the relay announces,
// prints every frame it receives (acking messages that ask for it), and can
// send a reading on a stream at an interval.
//
//	devicesim -token sydev_… -send telemetry -every 2s
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws/device", "gateway URL")
	tok := flag.String("token", os.Getenv("DEVICE_TOKEN"), "device token (or $DEVICE_TOKEN)")
	model := flag.String("model", "devicesim", "model reported in hello")
	firmware := flag.String("firmware", "1.0.0", "firmware version reported in hello")
	stream := flag.String("send", "", "send a simulated temperature reading on this stream")
	every := flag.Duration("every", 2*time.Second, "interval between readings")
	caps := flag.String("capabilities", "", "capabilities reported in hello, comma-separated (e.g. display)")
	flag.Parse()
	if *tok == "" {
		fmt.Fprintln(os.Stderr, "devicesim: -token is required (the token printed when the device was created)")
		os.Exit(2)
	}
	var capabilities []string
	if *caps != "" {
		capabilities = strings.Split(*caps, ",")
	}
	if err := run(*url, *tok, *model, *firmware, capabilities, *stream, *every); err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

type frame = map[string]any

func run(url, tok, model, firmware string, capabilities []string, stream string, every time.Duration) error {
	h := http.Header{"Authorization": {"Bearer " + tok}}
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("connect: %s", resp.Status)
		}
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()

	var mu sync.Mutex // gorilla allows one writer at a time
	send := func(f frame) error {
		mu.Lock()
		defer mu.Unlock()
		return conn.WriteJSON(f)
	}
	if err := send(frame{"type": "hello", "protocol": 1, "model": model, "firmware": firmware, "capabilities": capabilities}); err != nil {
		return err
	}
	var welcome struct {
		Type                string `json:"type"`
		HeartbeatIntervalMS int64  `json:"heartbeat_interval_ms"`
	}
	if err := conn.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" {
		return fmt.Errorf("no welcome (got %q): %v", welcome.Type, err)
	}
	fmt.Printf("connected; heartbeat every %v\n", time.Duration(welcome.HeartbeatIntervalMS)*time.Millisecond)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	go func() {
		<-stop
		mu.Lock()
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		mu.Unlock()
	}()
	go tick(time.Duration(welcome.HeartbeatIntervalMS)*time.Millisecond, func(int) error { return send(frame{"type": "heartbeat"}) })
	if stream != "" {
		temp := 21.0
		go tick(every, func(n int) error {
			temp += rand.NormFloat64() * 0.2
			return send(frame{"type": "data", "stream": stream, "id": fmt.Sprint(n), "payload": frame{"temperature_c": temp}})
		})
	}
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("connection closed: %w", err)
		}
		fmt.Println(string(raw))
		var m struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Ack  bool   `json:"ack"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Type == "message" && m.Ack {
			_ = send(frame{"type": "ack", "id": m.ID})
		}
	}
}

func tick(every time.Duration, f func(n int) error) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		<-t.C
		if f(n) != nil {
			return
		}
	}
}
