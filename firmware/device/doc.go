// Package device is the reference device client of Switchyard: it speaks
// the device protocol, version 1, of firmware/PROTOCOL.md (§1–§7: the
// WebSocket upgrade with a bearer token, hello/welcome, heartbeats, data,
// message and ack, error frames, close codes, reconnecting with backoff)
// and the firmware update flow of §8 (firmware_offer, the signed manifest,
// the HTTP download with Range resumption, firmware_status).
//
// It has two uses. Device authors read it (with README.md) as the
// executable form of the protocol: VerifyOffer makes every check of §8.3
// in the spec's order (with the rules of package firmware/manifest, which
// the relay shares: manifest.Verify, then Manifest.Admits) and VerifyImage
// the check after the download, pure functions that can be ported as they
// are. The relay's integration
// tests and load tool run it as a simulator, hundreds of Devices in one
// process: a connected device costs two goroutines (the reader, which is
// the goroutine that called Run, and a heartbeat/close goroutine), a 2 KiB
// read buffer and no write buffer while idle; a download adds one
// goroutine and a 32 KiB buffer while it lasts.
//
// # Use
//
//	d, err := device.New(device.Config{
//		URL:         "ws://127.0.0.1:8080/ws/device",
//		Token:       token,
//		Model:       "esp32-s3",
//		Firmware:    "1.4.2",
//		TrustedKeys: []ed25519.PublicKey{relayKey}, // GET /api/v1/firmware/key
//		Slot:        filepath.Join(dir, "slot.bin"),
//		OnEvent:     func(e device.Event) { log.Println(e.Kind, e.Version, e.Status) },
//	})
//	err = d.Run(ctx) // nil when ctx ends; *CloseError (4003, 4004) or *RefusedError (401) otherwise
//
// The API:
//
//	func New(c Config) (*Device, error)
//	func (d *Device) Run(ctx context.Context) error
//	func (d *Device) Firmware() string
//	func (d *Device) Send(stream string, payload any, id string) error
//	func VerifyOffer(o Offer, trusted []ed25519.PublicKey, model, running string, maxSize int64) (Manifest, error)
//	func VerifyImage(m Manifest, path string) error
//	type Manifest = manifest.Manifest
//	type Offer struct { manifest.Offer; URL string }
//
// Key ids (manifest.KeyID), the manifest format (manifest.Format) and
// SemVer (manifest.ParseVersion, ParseDeviceVersion, Version.Compare) are
// package firmware/manifest's.
//
// # Sessions
//
// Run dials the endpoint with "Authorization: Bearer <token>", says hello
// (protocol 1, Model, the running firmware, Capabilities plus "ota" when a
// Slot is set), waits for welcome, then sends a heartbeat every
// heartbeat_interval_ms, answers a message that asks for it with an ack,
// ignores frame types and members it does not know, and drops a connection
// that has been silent for longer than heartbeat_timeout_ms (the relay
// answers every heartbeat). Writes are serialized. When the session ends,
// Run reconnects as §4 and §6 ask (see Run); it returns only after the
// session's goroutines have ended.
//
// # Firmware updates
//
// An offer is verified at once (VerifyOffer); a refused one is reported as
// firmware_status failed with the error as reason. An accepted one starts
// a download goroutine while the session goes on heartbeating; offers that
// arrive meanwhile are ignored (a repeat of the same version included), as
// §8.5 allows. The image is fetched from the offer's url on the endpoint's
// host and port (ws→http, wss→https) into Config.Slot; the sidecar file
// Slot+".meta" records the image's sha256 and ETag, so that a later attempt
// resumes with "Range: bytes=N-" and "If-Range: <etag>". A 206 is appended
// (its Content-Range must start at N), a 200 starts over, a 503 is retried
// after Retry-After, a cut body is resumed after a short backoff (10 times
// at most), other refusals fail. The device reports downloading (at start
// and at most once a second), downloaded, verified (VerifyImage), installing,
// calls Config.Install, "restarts" into what Config.Boot returns (closing
// with 1000) and says hello with it. If the session ends during the
// download, the download stops; the relay offers again after the next
// hello and the download resumes from the slot.
package device
