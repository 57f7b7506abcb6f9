package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/firmware/manifest"
	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
)

// offers records what the service hands the gateway. It stands in for the
// gateway, whose side (frames on a real socket) runtime/app's tests cover.
type offers struct {
	mu   sync.Mutex
	sent map[string][]Offer // device → offers
}

func (o *offers) OfferFirmware(_, device string, off Offer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sent == nil {
		o.sent = map[string][]Offer{}
	}
	o.sent[device] = append(o.sent[device], off)
	return nil
}

func (o *offers) devices() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for d := range o.sent {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

func (o *offers) count(device string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sent[device])
}

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	store graph.Store
	dir   string
	off   *offers
	clock *clock
	svc   *Service
}

// newFixture opens an embedded store with tenant acme holding releases of
// model esp32 at 1.0.0 (min 0.9.0) and 2.0.0, and a service over it. Images
// are not needed: offers and reports never read them.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := embedded.Open(filepath.Join(dir, "sy.db"), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	if _, err := store.CreateTenant(ctx, graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key := NewKey(filepath.Join(dir, "key.pem"))
	priv, err := key.Private()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ version, min string }{{"1.0.0", "0.9.0"}, {"2.0.0", ""}} {
		sum := strings.Repeat(fmt.Sprint(len(r.version)%10), 64)
		o, err := manifest.Sign(manifest.Manifest{Tenant: "acme", Model: "esp32", Version: r.version, MinVersion: r.min, Size: 10, SHA256: sum}, priv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Tenant("acme").Releases().Create(ctx, graph.FirmwareRelease{
			Meta: graph.Meta{ID: ReleaseID("esp32", r.version)}, Model: "esp32", Version: r.version, MinVersion: r.min,
			Size: 10, SHA256: sum, Manifest: o.Manifest, Signature: o.Signature, KeyID: o.KeyID,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: t, store: store, dir: dir, clock: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	f.start()
	return f
}

// start (re)starts the service over the fixture's store, as a restart of
// the relay would.
func (f *fixture) start() {
	f.t.Helper()
	f.off = &offers{}
	svc, err := New(Options{Store: f.store, Blobs: noBlobs{}, Key: NewKey(filepath.Join(f.dir, "key.pem")), Offerer: f.off, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := svc.Load(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.svc = svc
}

// noBlobs refuses every call: these tests never touch image bytes (the
// relay's image store is runtime/modules, tested with the API upload).
type noBlobs struct{}

var errNoBlobs = errors.New("no image store in this test")

func (noBlobs) Put(string, io.Reader, int64, string) (string, int64, error) { return "", 0, errNoBlobs }
func (noBlobs) Open(string, string) (*os.File, error)                       { return nil, errNoBlobs }
func (noBlobs) Delete(string, string) error                                 { return errNoBlobs }
func (noBlobs) RemoveTenant(string) error                                   { return errNoBlobs }

func (f *fixture) hello(device, version string, labels map[string]string, caps ...string) {
	f.svc.Hello(Device{Tenant: "acme", ID: device, Model: "esp32", Labels: labels}, Hello{Model: "esp32", Firmware: version, Capabilities: caps})
}

func (f *fixture) report(device, version, status, reason string) error {
	return f.svc.Status(Device{Tenant: "acme", ID: device}, Status{Version: version, Status: status, Reason: reason})
}

func (f *fixture) rollout(n NewRollout) graph.Rollout {
	f.t.Helper()
	r, err := f.svc.CreateRollout(context.Background(), "acme", n)
	if err != nil {
		f.t.Fatalf("CreateRollout(%+v): %v", n, err)
	}
	return r
}

func (f *fixture) get(id string) graph.Rollout {
	f.t.Helper()
	r, err := f.svc.Rollout(context.Background(), "acme", id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// TestBucketShares: a stage of p percent admits close to p percent of the
// devices, raising it keeps every device it admitted, and two rollouts pick
// different devices.
func TestBucketShares(t *testing.T) {
	const n = 10000
	prev := map[string]bool{}
	for _, p := range []int{1, 5, 10, 25, 50, 100} {
		r := &rollout{Rollout: graph.Rollout{Meta: graph.Meta{ID: "r1"}, Percent: p}}
		in := 0
		for i := range n {
			id := fmt.Sprintf("d%05d", i)
			if r.includes(id) {
				in++
				prev[id] = true
			} else if prev[id] {
				t.Fatalf("%s was admitted at a lower percentage, not at %d%%", id, p)
			}
		}
		want := float64(n*p) / 100
		sigma := math.Sqrt(want * (1 - float64(p)/100))
		if math.Abs(float64(in)-want) > 4*sigma+0.5 {
			t.Errorf("%d%%: %d of %d admitted, want %.0f ± %.0f", p, in, n, want, 4*sigma)
		}
	}
	a := &rollout{Rollout: graph.Rollout{Meta: graph.Meta{ID: "a"}, Percent: 10}}
	b := &rollout{Rollout: graph.Rollout{Meta: graph.Meta{ID: "b"}, Percent: 10}}
	both := 0
	for i := range n {
		id := fmt.Sprintf("d%05d", i)
		if a.includes(id) && b.includes(id) {
			both++
		}
	}
	if both > n/50 { // independent choices share about 1%
		t.Errorf("rollouts a and b share %d of their canaries", both)
	}
}

func TestOffersFollowTheRules(t *testing.T) {
	f := newFixture(t)
	f.rollout(NewRollout{ID: "r1", Model: "esp32", Version: "2.0.0", Percent: 100, Selector: map[string]string{"ring": "beta"}})
	beta := map[string]string{"ring": "beta"}
	f.hello("ota-old", "1.0.0", beta, "ota")              // offered
	f.hello("v-prefix", "v1.9.9", beta, "display", "ota") // offered: a leading v is a version
	f.hello("no-ota", "1.0.0", beta, "display")           // no "ota" capability
	f.hello("current", "2.0.0", beta, "ota")              // not older
	f.hello("newer", "2.1.0-rc.1", beta, "ota")           // newer already
	f.hello("garbled", "latest", beta, "ota")             // not a version
	f.hello("other-ring", "1.0.0", map[string]string{"ring": "stable"}, "ota")
	f.svc.Hello(Device{Tenant: "acme", ID: "other-model", Labels: beta}, Hello{Model: "esp8266", Firmware: "1.0.0", Capabilities: []string{"ota"}})
	f.svc.Hello(Device{Tenant: "acme", ID: "liar", Model: "esp32", Labels: beta}, Hello{Model: "esp8266", Firmware: "1.0.0", Capabilities: []string{"ota"}})
	f.svc.Hello(Device{Tenant: "acme", ID: "no-record-model", Labels: beta}, Hello{Model: "esp32", Firmware: "1.0.0", Capabilities: []string{"ota"}})
	if got, want := f.off.devices(), []string{"no-record-model", "ota-old", "v-prefix"}; !slices.Equal(got, want) {
		t.Fatalf("offered to %v, want %v", got, want)
	}
	o := f.off.sent["ota-old"][0]
	if o.URL != DownloadPath+strings.Repeat("5", 64) || !strings.Contains(o.Manifest, `"version":"2.0.0"`) {
		t.Errorf("offer %+v", o)
	}
	// The minimum version: 1.0.0 needs 0.9.0 or later.
	f.rollout(NewRollout{ID: "r0", Model: "esp32", Version: "1.0.0", Percent: 100, Selector: map[string]string{"ring": "legacy"}})
	f.hello("too-old", "0.8.0", map[string]string{"ring": "legacy"}, "ota")
	f.hello("old-enough", "0.9.0", map[string]string{"ring": "legacy"}, "ota")
	if f.off.count("too-old") != 0 || f.off.count("old-enough") != 1 {
		t.Errorf("min_version: too-old offered %d times, old-enough %d", f.off.count("too-old"), f.off.count("old-enough"))
	}
	// A device that said hello again before a result is offered again,
	// but counted once.
	f.hello("ota-old", "1.0.0", beta, "ota")
	if f.off.count("ota-old") != 2 || f.get("r1").Stages[0].Offered != 3 {
		t.Errorf("repeat offer: %d offers, stage %+v", f.off.count("ota-old"), f.get("r1").Stages[0])
	}
}

func TestReportsAndResults(t *testing.T) {
	f := newFixture(t)
	f.rollout(NewRollout{ID: "r1", Model: "esp32", Version: "2.0.0", Percent: 100})
	f.hello("a", "1.0.0", nil, "ota")
	f.hello("b", "1.0.0", nil, "ota")
	f.hello("c", "1.0.0", nil, "ota")
	for _, tt := range []struct {
		device, version, status, reason string
		want                            error
	}{
		{"a", "2.0.0", "downloading", "", nil},
		{"a", "2.0.0", "downloaded", "", nil},
		{"a", "1.9.0", "downloaded", "", ErrNotOffered},
		{"z", "2.0.0", "downloaded", "", ErrNotOffered},
		{"a", "2.0.0", "offered", "", &graph.InvalidError{}},
		{"a", "2.0.0", "failed", "", &graph.InvalidError{}},
		{"a", "2.0.0", "verified", "", nil},
		{"a", "2.0.0", "installing", "", nil},
		{"b", "2.0.0", "failed", "sha256 mismatch", nil},
		{"b", "2.0.0", "downloading", "", ErrNotOffered}, // its result is recorded
		{"c", "2.0.0", "installing", "", nil},
	} {
		err := f.report(tt.device, tt.version, tt.status, tt.reason)
		var inv *graph.InvalidError
		switch {
		case tt.want == nil && err != nil,
			errors.As(tt.want, &inv) && !errors.As(err, &inv),
			tt.want != nil && !errors.As(tt.want, &inv) && !errors.Is(err, tt.want):
			t.Errorf("%s %s %s: %v, want %v", tt.device, tt.version, tt.status, err, tt.want)
		}
	}
	f.hello("a", "2.0.0", nil, "ota") // restarted on the new version
	f.hello("c", "1.0.0", nil, "ota") // its bootloader went back
	events, update := f.svc.History("acme", "a")
	var statuses []string
	for _, e := range events {
		statuses = append(statuses, e.Status)
	}
	if want := []string{"offered", "downloading", "downloaded", "verified", "installing", "installed"}; !slices.Equal(statuses, want) || update != nil {
		t.Errorf("a: %v, update %+v; want %v", statuses, update, want)
	}
	events, _ = f.svc.History("acme", "c")
	if last := events[len(events)-1]; last.Status != "failed" || !strings.Contains(last.Reason, "restarted on 1.0.0") {
		t.Errorf("c: last event %+v", last)
	}
	if f.off.count("c") != 1 {
		t.Errorf("c was offered again after its failure: %d offers", f.off.count("c"))
	}
	st := f.get("r1").Stages[0]
	if st.Offered != 3 || st.Installed != 1 || st.Failed != 2 {
		t.Errorf("stage %+v, want 3 offered, 1 installed, 2 failed", st)
	}

	// Restart: results, counts and histories come back from the store.
	if err := f.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.start()
	if st := f.get("r1").Stages[0]; st.Offered != 3 || st.Installed != 1 || st.Failed != 2 {
		t.Errorf("after restart: stage %+v", st)
	}
	f.hello("b", "1.0.0", nil, "ota")
	if f.off.count("b") != 0 {
		t.Error("b was offered again after a restart, though its result is recorded")
	}
	if events, _ := f.svc.History("acme", "a"); len(events) != 6 {
		t.Errorf("a's history after restart: %d events", len(events))
	}
}

func TestStagesPauseHaltAndResume(t *testing.T) {
	f := newFixture(t)
	f.rollout(NewRollout{ID: "r1", Model: "esp32", Version: "2.0.0", Percent: 10, MinResults: 3, MaxFailureRate: ptr(0.5)})
	var devices []string
	for i := range 200 {
		devices = append(devices, fmt.Sprintf("d%03d", i))
		f.hello(devices[i], "1.0.0", nil, "ota")
	}
	var want []string
	for _, d := range devices {
		if bucket("r1", d) < 1000 {
			want = append(want, d)
		}
	}
	if got := f.off.devices(); !slices.Equal(got, want) {
		t.Fatalf("10%%: offered %v, want %v", got, want)
	}
	ctx := context.Background()
	var r graph.Rollout
	var err error
	if _, err := f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Percent: ptr(5)}); err == nil {
		t.Error("lowering the percentage was accepted")
	}
	if _, err := f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Paused: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if r, err = f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Percent: ptr(50)}); err != nil || len(r.Stages) != 2 {
		t.Fatalf("raise while paused: %v, %+v", err, r)
	}
	if n := len(f.off.devices()); n != len(want) {
		t.Errorf("a paused rollout made offers: %d devices offered", n)
	}
	if _, err := f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Paused: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	stage2 := 0
	for _, d := range devices {
		if bucket("r1", d) < 5000 && bucket("r1", d) >= 1000 {
			stage2++
		}
	}
	if got := len(f.off.devices()); got != len(want)+stage2 {
		t.Errorf("50%%: %d devices offered, want %d", got, len(want)+stage2)
	}
	// Stage 2 fails: two of three results are failures (67% > 50%).
	failed := 0
	for _, d := range f.off.devices() {
		if bucket("r1", d) < 1000 || failed == 3 {
			continue
		}
		status, reason := "failed", "flash write error"
		if failed == 0 {
			status, reason = "installed", ""
		}
		if err := f.report(d, "2.0.0", status, reason); err != nil {
			t.Fatal(err)
		}
		failed++
	}
	r = f.get("r1")
	if r.State != graph.RolloutHalted || !strings.Contains(r.Reason, "stage 2 (50%): 2 of 3 devices failed") {
		t.Fatalf("after a failure storm: state %s, reason %q", r.State, r.Reason)
	}
	if _, err := f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Percent: ptr(100)}); !errors.Is(err, ErrConflict) {
		t.Errorf("raising a halted rollout: %v", err)
	}
	f.hello("late", "1.0.0", nil, "ota")
	if f.off.count("late") != 0 {
		t.Error("a halted rollout made an offer")
	}
	r, err = f.svc.ChangeRollout(ctx, "acme", "r1", RolloutChange{Paused: ptr(false)})
	if err != nil || r.State != graph.RolloutActive || len(r.Stages) != 3 || r.Stages[2].Percent != 50 || r.Stages[2].Failed != 0 {
		t.Fatalf("resume after a halt: %v, %+v", err, r)
	}
}

func TestResultTimeout(t *testing.T) {
	f := newFixture(t)
	f.rollout(NewRollout{ID: "r1", Model: "esp32", Version: "2.0.0", Percent: 100, ResultTimeout: "10m", MinResults: 1, MaxFailureRate: ptr(1.0)})
	f.hello("quiet", "1.0.0", nil, "ota")
	f.hello("busy", "1.0.0", nil, "ota")
	f.clock.add(9 * time.Minute)
	if err := f.report("busy", "2.0.0", "downloading", ""); err != nil {
		t.Fatal(err)
	}
	f.svc.expire()
	if _, u := f.svc.History("acme", "quiet"); u == nil {
		t.Fatal("expired before its timeout")
	}
	f.clock.add(2 * time.Minute)
	f.svc.expire()
	for _, d := range []string{"quiet", "busy"} {
		events, u := f.svc.History("acme", d)
		if last := events[len(events)-1]; u != nil || last.Status != "failed" || !strings.Contains(last.Reason, "no result in time") {
			t.Errorf("%s: update %+v, last event %+v", d, u, last)
		}
	}
	if st := f.get("r1").Stages[0]; st.Failed != 2 {
		t.Errorf("stage %+v", st)
	}
}

func TestRolloutRefusals(t *testing.T) {
	f := newFixture(t)
	f.rollout(NewRollout{ID: "beta", Model: "esp32", Version: "2.0.0", Percent: 10, Selector: map[string]string{"ring": "beta"}})
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		n    NewRollout
		want string
	}{
		{"overlapping selector", NewRollout{ID: "r2", Model: "esp32", Version: "2.0.0", Percent: 5, Selector: map[string]string{"site": "paris"}}, "could offer to the same devices"},
		{"no selector overlaps all", NewRollout{ID: "r2", Model: "esp32", Version: "1.0.0", Percent: 5}, "could offer to the same devices"},
		{"no such release", NewRollout{ID: "r2", Model: "esp32", Version: "3.0.0", Percent: 5, Selector: map[string]string{"ring": "x"}}, "no release"},
		{"percent 0", NewRollout{ID: "r2", Model: "esp32", Version: "2.0.0", Percent: 0, Selector: map[string]string{"ring": "x"}}, "percent"},
		{"rate above 1", NewRollout{ID: "r2", Model: "esp32", Version: "2.0.0", Percent: 5, MaxFailureRate: ptr(1.5), Selector: map[string]string{"ring": "x"}}, "max_failure_rate"},
		{"bad timeout", NewRollout{ID: "r2", Model: "esp32", Version: "2.0.0", Percent: 5, ResultTimeout: "soon", Selector: map[string]string{"ring": "x"}}, "result_timeout"},
		{"taken id", NewRollout{ID: "beta", Model: "esp32", Version: "2.0.0", Percent: 5, Selector: map[string]string{"ring": "x"}}, "exists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.CreateRollout(ctx, "acme", tt.n)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CreateRollout: %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := f.svc.CreateRollout(ctx, "ghost", NewRollout{ID: "r", Model: "esp32", Version: "2.0.0", Percent: 5}); !errors.Is(err, graph.ErrTenantNotFound) {
		t.Errorf("a rollout in a tenant that does not exist: %v", err)
	}
	if _, err := f.svc.Releases(ctx, "ghost"); !errors.Is(err, graph.ErrTenantNotFound) {
		t.Errorf("releases of a tenant that does not exist: %v", err)
	}
	// Disjoint selectors may run side by side.
	f.rollout(NewRollout{ID: "stable", Model: "esp32", Version: "2.0.0", Percent: 5, Selector: map[string]string{"ring": "stable"}})
	if err := f.svc.DeleteRelease(ctx, "acme", "esp32", "2.0.0"); !errors.Is(err, ErrInUse) {
		t.Errorf("deleting a release a rollout offers: %v", err)
	}
}
