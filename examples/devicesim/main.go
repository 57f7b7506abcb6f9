// Command devicesim is a device for trying Switchyard by hand, built on the
// reference device (firmware/device): it connects to the gateway with a
// device token, says hello (protocol v1, see firmware/PROTOCOL.md),
// heart-beats at the interval the relay announces, prints every frame it
// receives (acking messages that ask for it), can send a reading on a
// stream at an interval, and, given the relay's public key, takes firmware
// updates: it verifies the offer, downloads the image into a slot file,
// "installs" it and comes back saying hello with the new version.
//
//	devicesim -token sydev_… -send telemetry -every 2s
//	devicesim -token sydev_… -model esp32 -firmware 1.0.0 -trust "$(curl -s -H "Authorization: Bearer $KEY" \
//	    http://127.0.0.1:8081/api/v1/firmware/key | jq -r .public_key)"
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/firmware/device"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws/device", "gateway URL")
	tok := flag.String("token", os.Getenv("DEVICE_TOKEN"), "device token (or $DEVICE_TOKEN)")
	model := flag.String("model", "devicesim", "model reported in hello")
	firmware := flag.String("firmware", "1.0.0", "firmware version reported in hello")
	stream := flag.String("send", "", "send a simulated temperature reading on this stream")
	every := flag.Duration("every", 2*time.Second, "interval between readings")
	caps := flag.String("capabilities", "", "capabilities reported in hello, comma-separated (e.g. display)")
	trust := flag.String("trust", "", `the relay's firmware signing key (base64, "public_key" of GET /api/v1/firmware/key): take firmware updates`)
	slot := flag.String("slot", "", "the file a firmware image is downloaded into (default: one in the temp folder)")
	flag.Parse()
	if *tok == "" {
		fmt.Fprintln(os.Stderr, "devicesim: -token is required (the token printed when the device was created)")
		os.Exit(2)
	}
	cfg := device.Config{URL: *url, Token: *tok, Model: *model, Firmware: *firmware,
		OnEvent: show, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if *caps != "" {
		cfg.Capabilities = strings.Split(*caps, ",")
	}
	if *trust != "" {
		key, err := base64.StdEncoding.DecodeString(*trust)
		if err != nil || len(key) != ed25519.PublicKeySize {
			fmt.Fprintln(os.Stderr, "devicesim: -trust must be the 32-byte Ed25519 public key in base64")
			os.Exit(2)
		}
		cfg.TrustedKeys = []ed25519.PublicKey{key}
		cfg.Slot = *slot
		if cfg.Slot == "" {
			cfg.Slot = filepath.Join(os.TempDir(), "devicesim-"+*model+".slot")
		}
	}
	d, err := device.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *stream != "" {
		go send(ctx, d, *stream, *every)
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

// show prints what happens: frames received, sessions, firmware steps.
func show(e device.Event) {
	switch e.Kind {
	case device.EventMessage, device.EventError, device.EventAck:
		fmt.Println(string(e.Frame))
	case device.EventConnected:
		fmt.Printf("connected (session %s), running %s\n", e.Session, e.Version)
	case device.EventClosed:
		fmt.Printf("session closed: %d %s\n", e.CloseCode, e.Reason)
	case device.EventConnectFailed:
		fmt.Printf("cannot connect: %s\n", e.Reason)
	case device.EventOffer:
		fmt.Printf("firmware %s offered %s\n", e.Version, e.Reason)
	case device.EventStatus:
		fmt.Printf("firmware %s: %s %s\n", e.Version, e.Status, e.Reason)
	case device.EventBooted:
		fmt.Printf("restarted on %s %s\n", e.Version, e.Reason)
	}
}

// send sends a simulated temperature on stream every interval.
func send(ctx context.Context, d *device.Device, stream string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	temp := 21.0
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		temp += rand.NormFloat64() * 0.2
		if err := d.Send(stream, map[string]any{"temperature_c": temp}, fmt.Sprint(n)); err != nil {
			fmt.Fprintln(os.Stderr, "devicesim: reading not sent:", err)
		}
	}
}
