package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/firmware/device"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/apptest"
)

// The fleet tests drive the reference device (firmware/device) against a
// whole relay over loopback: real WebSocket sessions, real HTTP downloads,
// the embedded store. Nothing is mocked; a "cut" download is a client
// transport that drops the connection mid-body, as a network would.

// sim is one simulated device running in the test.
type sim struct {
	id   string
	d    *device.Device
	stop context.CancelFunc
	done chan error

	mu     sync.Mutex
	events []device.Event
}

func (s *sim) record(e device.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// statuses is what the device reported, in order.
func (s *sim) statuses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		if e.Kind == device.EventStatus {
			out = append(out, e.Status)
		}
	}
	return out
}

func (s *sim) offers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Kind == device.EventOffer {
			n++
		}
	}
	return n
}

// relayKey is the relay's manifest signing key, as a device is given it.
func relayKey(t *testing.T, r *apptest.Relay) ed25519.PublicKey {
	t.Helper()
	status, body := r.Do("GET", "/api/v1/firmware/key", nil)
	raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(body["public_key"]))
	if status != http.StatusOK || err != nil || len(raw) != ed25519.PublicKeySize {
		t.Fatalf("public key: %d %v", status, body)
	}
	return raw
}

// runSim creates device id (model "sim") and runs the reference device for
// it, running version, until the test ends.
func runSim(t *testing.T, r *apptest.Relay, key ed25519.PublicKey, id, version string, edit func(*device.Config)) *sim {
	t.Helper()
	tok := r.CreateDevice("default", id, nil)
	s := &sim{id: id, done: make(chan error, 1)}
	cfg := device.Config{
		URL: r.WS, Token: tok, Model: "test", Firmware: version,
		TrustedKeys: []ed25519.PublicKey{key}, Slot: filepath.Join(t.TempDir(), "slot.bin"),
		OnEvent: s.record,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := device.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.d = d
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { s.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("device %s did not stop", id)
		}
	})
	return s
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bucketOf is a device's place in a rollout, as firmware/README.md defines
// it: the first 8 bytes of SHA-256("<rollout>/<device>"), big-endian,
// modulo 10,000. A stage of p percent admits the devices below 100·p.
func bucketOf(rollout, dev string) int {
	sum := sha256.Sum256([]byte(rollout + "/" + dev))
	return int(binary.BigEndian.Uint64(sum[:8]) % 10000)
}

func rolloutOf(t *testing.T, r *apptest.Relay, id string) map[string]any {
	t.Helper()
	status, body := r.Do("GET", "/api/v1/tenants/default/rollouts/"+id, nil)
	if status != http.StatusOK {
		t.Fatalf("rollout %s: %d %v", id, status, body)
	}
	return body
}

func stage(ro map[string]any, i int) (offered, installed, failed int) {
	st := ro["stages"].([]any)[i].(map[string]any)
	return int(st["offered"].(float64)), int(st["installed"].(float64)), int(st["failed"].(float64))
}

// TestStagedRollout runs a rollout across 150 simulated devices: each stage
// admits exactly the devices the documented rule places in it, close to its
// percentage; they update and come back on the new version; the others are
// never offered anything, until the stage that takes them.
func TestStagedRollout(t *testing.T) {
	const n = 150
	r := apptest.Start(t, "", nil)
	img := randomImage(t, 200<<10)
	if st, b := upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, img); st != http.StatusCreated {
		t.Fatalf("upload: %d %v", st, b)
	}
	key := relayKey(t, r)
	var installed atomic.Int64
	sims := map[string]*sim{}
	for i := range n {
		id := fmt.Sprintf("sim-%03d", i)
		sims[id] = runSim(t, r, key, id, "1.0.0", func(c *device.Config) {
			c.Install = func(m device.Manifest, slot string) error {
				got, err := os.ReadFile(slot)
				if err != nil || sha(got) != m.SHA256 || m.SHA256 != sha(img) {
					return fmt.Errorf("the slot does not hold the image (%v)", err)
				}
				installed.Add(1)
				return nil
			}
		})
	}
	eventually(t, 20*time.Second, "every device connected", func() bool {
		_, b := r.Do("GET", "/api/v1/tenants/default/sessions", nil)
		return len(b["sessions"].([]any)) == n
	})

	check := func(percent int) {
		t.Helper()
		var want []string
		for id := range sims {
			if bucketOf("fleet", id) < percent*100 {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		eventually(t, 30*time.Second, fmt.Sprintf("%d%%: %d devices on 2.0.0", percent, len(want)), func() bool {
			return installed.Load() == int64(len(want)) && allOn(sims, want, "2.0.0")
		})
		var updated []string
		for id, s := range sims {
			if s.d.Firmware() == "2.0.0" {
				updated = append(updated, id)
			} else if s.offers() != 0 {
				t.Errorf("%d%%: %s, outside the stage, was offered the release", percent, id)
			}
		}
		slices.Sort(updated)
		if !slices.Equal(updated, want) {
			t.Fatalf("%d%%: updated %v, want %v", percent, updated, want)
		}
		// The share itself: binomial around the percentage, within 4σ.
		mean := float64(n*percent) / 100
		if sd := math.Sqrt(mean * (1 - float64(percent)/100)); math.Abs(float64(len(want))-mean) > 4*sd+1 {
			t.Errorf("%d%% admitted %d of %d devices", percent, len(want), n)
		}
		t.Logf("%d%%: %d of %d devices updated", percent, len(updated), n)
	}
	if st, b := r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "fleet", "model": "test", "version": "2.0.0", "percent": 10}); st != http.StatusCreated {
		t.Fatalf("create rollout: %d %v", st, b)
	}
	check(10)
	for _, p := range []int{40, 100} {
		if st, b := r.Do("PATCH", "/api/v1/tenants/default/rollouts/fleet", map[string]any{"percent": p}); st != http.StatusOK {
			t.Fatalf("raise to %d: %d %v", p, st, b)
		}
		check(p)
	}
	// The relay counts an update installed at the device's hello on the new
	// version, a moment after the device itself runs it.
	eventually(t, 10*time.Second, "every update counted", func() bool {
		ro := rolloutOf(t, r, "fleet")
		sum := 0
		for i := range 3 {
			_, inst, _ := stage(ro, i)
			sum += inst
		}
		return sum == n
	})
	ro := rolloutOf(t, r, "fleet")
	total := 0
	for i := range 3 {
		offered, inst, failed := stage(ro, i)
		if offered != inst || failed != 0 {
			t.Errorf("stage %d: %d offered, %d installed, %d failed", i+1, offered, inst, failed)
		}
		total += offered
	}
	if total != n || ro["state"] != "active" {
		t.Errorf("rollout %v: %d devices counted, want %d", ro, total, n)
	}
	// Each device's story is in its history, in order.
	_, hist := r.Do("GET", "/api/v1/tenants/default/devices/sim-000/firmware", nil)
	var got []string
	for _, e := range hist["events"].([]any) {
		got = append(got, e.(map[string]any)["status"].(string))
	}
	if strings.Join(got, " ") != "offered downloading downloaded verified installing installed" || hist["firmware"] != "2.0.0" {
		t.Errorf("history of sim-000: %v", hist)
	}
}

func allOn(sims map[string]*sim, ids []string, version string) bool {
	for _, id := range ids {
		if sims[id].d.Firmware() != version {
			return false
		}
	}
	return true
}

// TestFailureStormHaltsTheRollout: most devices of a stage fail to install;
// once the stage has min_results results and its failure rate passes the
// threshold, the rollout halts and makes no more offers, even to devices it
// admits; resuming starts a new stage.
func TestFailureStormHaltsTheRollout(t *testing.T) {
	const n = 60
	r := apptest.Start(t, "", nil)
	if st, b := upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, randomImage(t, 32<<10)); st != http.StatusCreated {
		t.Fatalf("upload: %d %v", st, b)
	}
	key := relayKey(t, r)
	var sims []*sim
	for i := range n {
		sims = append(sims, runSim(t, r, key, fmt.Sprintf("storm-%02d", i), "1.0.0", func(c *device.Config) {
			c.Install = func(device.Manifest, string) error { return errors.New("flash write failed at 0x10000") }
		}))
	}
	eventually(t, 20*time.Second, "every device connected", func() bool {
		_, b := r.Do("GET", "/api/v1/tenants/default/sessions", nil)
		return len(b["sessions"].([]any)) == n
	})
	if st, b := r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "storm", "model": "test", "version": "2.0.0",
		"percent": 50, "min_results": 5, "max_failure_rate": 0.2}); st != http.StatusCreated {
		t.Fatalf("create rollout: %d %v", st, b)
	}
	eventually(t, 20*time.Second, "the rollout halts", func() bool { return rolloutOf(t, r, "storm")["state"] == "halted" })
	ro := rolloutOf(t, r, "storm")
	if !strings.Contains(fmt.Sprint(ro["reason"]), "stage 1 (50%)") || !strings.Contains(fmt.Sprint(ro["reason"]), "above 20%") {
		t.Errorf("halt reason %q", ro["reason"])
	}
	// Every device of the stage was offered at once; the halt stops offers:
	// devices reconnecting without a result are offered nothing more.
	offeredAtHalt, _, _ := stage(ro, 0)
	var late []*sim
	for i := range 20 {
		id := fmt.Sprintf("late-%02d", i)
		if bucketOf("storm", id) < 5000 { // admitted by the stage
			late = append(late, runSim(t, r, key, id, "1.0.0", nil))
		}
	}
	eventually(t, 10*time.Second, "the late devices connected", func() bool {
		_, b := r.Do("GET", "/api/v1/tenants/default/sessions", nil)
		return len(b["sessions"].([]any)) == n+len(late)
	})
	time.Sleep(200 * time.Millisecond)
	for _, s := range late {
		if s.offers() != 0 {
			t.Errorf("%s, admitted by the halted stage, was offered the release", s.id)
		}
	}
	for _, s := range sims {
		if s.d.Firmware() != "1.0.0" {
			t.Errorf("%s runs %s after a failed install", s.id, s.d.Firmware())
		}
	}
	if offered, _, failed := stage(rolloutOf(t, r, "storm"), 0); offered != offeredAtHalt || failed < 5 {
		t.Errorf("after the halt: %d offered (was %d), %d failed", offered, offeredAtHalt, failed)
	}
	_, hist := r.Do("GET", "/api/v1/tenants/default/devices/storm-20/firmware", nil)
	if ev := hist["events"].([]any); len(ev) == 0 || ev[len(ev)-1].(map[string]any)["status"] == "installed" {
		t.Errorf("history of a failed device: %v", hist)
	}
	if st, b := r.Do("PATCH", "/api/v1/tenants/default/rollouts/storm", map[string]any{"percent": 100}); st != http.StatusConflict {
		t.Errorf("raising a halted rollout: %d %v", st, b)
	}
	st, b := r.Do("PATCH", "/api/v1/tenants/default/rollouts/storm", map[string]any{"paused": false})
	if st != http.StatusOK || b["state"] != "active" || len(b["stages"].([]any)) != 2 {
		t.Errorf("resume: %d %v", st, b)
	}
}

// cutTransport drops the first download's body after cut bytes, as a
// network that fails mid-transfer would, and records each request's Range.
type cutTransport struct {
	cut    int64
	mu     sync.Mutex
	ranges []string
}

func (c *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	first := len(c.ranges) == 0
	c.ranges = append(c.ranges, req.Header.Get("Range"))
	c.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !first {
		return resp, err
	}
	resp.Body = &cutBody{rc: resp.Body, left: c.cut}
	return resp, nil
}

type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.rc.Close()
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// TestDownloadCutMidwayResumes: a download cut after 300 KiB of a 1 MiB
// image resumes with a Range request from there and installs an image with
// the right sha256.
func TestDownloadCutMidwayResumes(t *testing.T) {
	r := apptest.Start(t, "", nil)
	img := randomImage(t, 1<<20)
	upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, img)
	r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "r", "model": "test", "version": "2.0.0", "percent": 100})
	tr := &cutTransport{cut: 300 << 10}
	var slotSum string
	s := runSim(t, r, relayKey(t, r), "resumer", "1.0.0", func(c *device.Config) {
		c.HTTPClient = &http.Client{Transport: tr}
		c.Install = func(_ device.Manifest, slot string) error {
			b, err := os.ReadFile(slot)
			slotSum = sha(b)
			return err
		}
	})
	eventually(t, 20*time.Second, "the device runs 2.0.0", func() bool { return s.d.Firmware() == "2.0.0" })
	tr.mu.Lock()
	ranges := slices.Clone(tr.ranges)
	tr.mu.Unlock()
	if len(ranges) < 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", 300<<10) {
		t.Errorf("requests' ranges %q, want the whole image then bytes=%d-", ranges, 300<<10)
	}
	if slotSum != sha(img) {
		t.Errorf("installed sha256 %s, want %s", slotSum, sha(img))
	}
}

// TestTamperedImageAndManifest: the reference device refuses an image whose
// bytes changed on the relay's disk (sha256) and a manifest changed in the
// store (signature), and says why in its history.
func TestTamperedImageAndManifest(t *testing.T) {
	dir := t.TempDir()
	r := apptest.Start(t, dir, nil)
	img := randomImage(t, 64<<10)
	upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, img)
	upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "3.0.0"}}, randomImage(t, 64<<10))
	key := relayKey(t, r)
	// The image: one byte flipped where the relay keeps it.
	path := filepath.Join(r.Config.FirmwareDirOrDefault(), "images", "default", sha(img)+".img")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "img", "model": "test", "version": "2.0.0", "percent": 100,
		"selector": map[string]string{"case": "image"}})
	tok := r.CreateDevice("default", "victim", map[string]string{"case": "image"})
	runSimToken(t, r, key, tok, "1.0.0")
	eventually(t, 20*time.Second, "the tampered image is refused", func() bool { return lastEvent(t, r, "victim")["status"] == "failed" })
	if reason := fmt.Sprint(lastEvent(t, r, "victim")["reason"]); !strings.Contains(reason, "sha256") {
		t.Errorf("reason %q, want a sha256 mismatch", reason)
	}

	// The manifest: its text changed in the store while the relay is down
	// (the version claimed inside), its signature left as it was.
	r.Stop()
	store, err := embedded.Open(filepath.Join(dir, "switchyard.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rels, err := store.Tenant("default").Releases().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range rels {
		if rel.Version == "3.0.0" {
			rel.Manifest = strings.Replace(rel.Manifest, `"notes"`, `"x"`, 1)
			rel.Manifest = strings.Replace(rel.Manifest, `"size":65536`, `"size":65535`, 1)
			if _, err := store.Tenant("default").Releases().Update(ctx, rel); err != nil {
				t.Fatal(err)
			}
		}
	}
	store.Close()
	r = apptest.Start(t, dir, nil)
	r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "man", "model": "test", "version": "3.0.0", "percent": 100,
		"selector": map[string]string{"case": "manifest"}})
	tok = r.CreateDevice("default", "victim2", map[string]string{"case": "manifest"})
	runSimToken(t, r, key, tok, "1.0.0")
	eventually(t, 20*time.Second, "the tampered manifest is refused", func() bool { return lastEvent(t, r, "victim2")["status"] == "failed" })
	if reason := fmt.Sprint(lastEvent(t, r, "victim2")["reason"]); !strings.Contains(reason, "signature") {
		t.Errorf("reason %q, want a signature that does not verify", reason)
	}
	if fetchCount(t, r) != 0 {
		t.Error("the device downloaded an image whose manifest it refused")
	}
}

// runSimToken runs the reference device for an existing device's token.
func runSimToken(t *testing.T, r *apptest.Relay, key ed25519.PublicKey, tok, version string) {
	t.Helper()
	d, err := device.New(device.Config{URL: r.WS, Token: tok, Model: "test", Firmware: version,
		TrustedKeys: []ed25519.PublicKey{key}, Slot: filepath.Join(t.TempDir(), "slot.bin")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// lastEvent is the newest event of a device's firmware history.
func lastEvent(t *testing.T, r *apptest.Relay, dev string) map[string]any {
	t.Helper()
	_, hist := r.Do("GET", "/api/v1/tenants/default/devices/"+dev+"/firmware", nil)
	ev, _ := hist["events"].([]any)
	if len(ev) == 0 {
		return map[string]any{}
	}
	return ev[len(ev)-1].(map[string]any)
}

// fetchCount is how many download requests the gateway answered.
func fetchCount(t *testing.T, r *apptest.Relay) int {
	t.Helper()
	total := 0.0
	for _, result := range []string{"complete", "cut", "busy", "not_found", "refused"} {
		total += metric(t, r, `switchyard_gateway_downloads_total{result="`+result+`"}`)
	}
	return int(total)
}

// TestFirmwareOnDgraph: the same service on the Dgraph store. A stage of a
// rollout runs across devices; after a restart on the same Dgraph
// installation and data folder, the rollout's counts, the devices' results
// and histories are what they were, and an updated device is not offered
// the release again.
func TestFirmwareOnDgraph(t *testing.T) {
	onDgraph := apptest.OnDgraph(dgraphtest.Shared(t))
	dir := t.TempDir()
	r := apptest.Start(t, dir, onDgraph)
	if st, b := upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, randomImage(t, 64<<10)); st != http.StatusCreated {
		t.Fatalf("upload: %d %v", st, b)
	}
	key := relayKey(t, r)
	if st, b := r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "dg", "model": "test", "version": "2.0.0", "percent": 50}); st != http.StatusCreated {
		t.Fatalf("create rollout: %d %v", st, b)
	}
	var want []string
	sims := map[string]*sim{}
	for i := range 20 {
		id := fmt.Sprintf("dg-%02d", i)
		sims[id] = runSim(t, r, key, id, "1.0.0", nil)
		if bucketOf("dg", id) < 5000 {
			want = append(want, id)
		}
	}
	eventually(t, 30*time.Second, "the stage's devices installed", func() bool {
		_, inst, _ := stage(rolloutOf(t, r, "dg"), 0)
		return inst == len(want)
	})
	for _, s := range sims {
		s.stop()
	}
	before := rolloutOf(t, r, "dg")
	_, histBefore := r.Do("GET", "/api/v1/tenants/default/devices/"+want[0]+"/firmware", nil)
	r.Stop()

	r = apptest.Start(t, dir, onDgraph)
	after := rolloutOf(t, r, "dg")
	if fmt.Sprint(after["stages"]) != fmt.Sprint(before["stages"]) || after["state"] != "active" {
		t.Errorf("after a restart: %v, was %v", after["stages"], before["stages"])
	}
	_, histAfter := r.Do("GET", "/api/v1/tenants/default/devices/"+want[0]+"/firmware", nil)
	if fmt.Sprint(histAfter["events"]) != fmt.Sprint(histBefore["events"]) {
		t.Errorf("history after a restart: %v, was %v", histAfter["events"], histBefore["events"])
	}
	// A device that already has its result is not offered again, even if
	// it comes back on its old version.
	tok := rotate(t, r, want[0])
	again := &sim{id: want[0], done: make(chan error, 1)}
	d, err := device.New(device.Config{URL: r.WS, Token: tok, Model: "test", Firmware: "1.0.0",
		TrustedKeys: []ed25519.PublicKey{key}, Slot: filepath.Join(t.TempDir(), "slot"), OnEvent: again.record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { again.done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-again.done })
	eventually(t, 10*time.Second, "the device connected", func() bool {
		_, b := r.Do("GET", "/api/v1/tenants/default/sessions", nil)
		return len(b["sessions"].([]any)) == 1
	})
	time.Sleep(200 * time.Millisecond)
	if again.offers() != 0 {
		t.Error("a device with a result was offered the release again after a restart")
	}
}

// rotate gives a device a new token and returns it.
func rotate(t *testing.T, r *apptest.Relay, dev string) string {
	t.Helper()
	st, b := r.Do("POST", "/api/v1/tenants/default/devices/"+dev+"/token", nil)
	if st != http.StatusOK {
		t.Fatalf("rotate token: %d %v", st, b)
	}
	return b["token"].(string)
}
