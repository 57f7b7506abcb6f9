//go:build linux

package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// hangLimit bounds how long a test waits for something that should happen
// promptly; reaching it means the plugin hung, not that it was slow.
const hangLimit = 10 * time.Second

// start makes an instance the way the runtime does: New from the registry,
// strict decode, Provision, Validate.
func start(t *testing.T, cfg string) (*Collector, error) {
	t.Helper()
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	c := info.New().(*Collector)
	if err := plugin.DecodeConfig([]byte(cfg), c); err != nil {
		return nil, err
	}
	if err := c.Provision(context.Background()); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustStart(t *testing.T, cfg string) *Collector {
	t.Helper()
	c, err := start(t, cfg)
	if err != nil {
		t.Fatalf("config %s: %v", cfg, err)
	}
	return c
}

// recorder is an Emitter that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []plugin.Message
	fail error // returned by every Emit when set
}

func (r *recorder) Emit(m plugin.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return r.fail
}

// take returns what was emitted since the last take.
func (r *recorder) take() []plugin.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	msgs := r.msgs
	r.msgs = nil
	return msgs
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

type emitted struct {
	Subject string
	Payload string
}

func (e emitted) String() string { return e.Subject + " " + e.Payload }

func emittedOf(msgs []plugin.Message) []emitted {
	var out []emitted
	for _, m := range msgs {
		out = append(out, emitted{m.Subject, string(m.Payload)})
	}
	return out
}

// copyTree copies the files of testdata/<from> into dir, over what is there.
func copyTree(t *testing.T, from, dir string) {
	t.Helper()
	src := filepath.Join("testdata", from)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// t0 is the fixture's first sample; the second comes 10s later.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeFS is what the fixture's statfs answers, by mount point.
var fakeFS = map[string]fsStat{
	"/":                  {total: 1_000_000_000, free: 400_000_000, avail: 350_000_000},
	"/boot/efi":          {total: 536_870_912, free: 530_579_456, avail: 530_579_456},
	"/srv/media Library": {total: 4_000_000_000_000, free: 1_000_000_000_000, avail: 1_000_000_000_000},
	"/run":               {total: 1_666_097_152, free: 1_664_000_000, avail: 1_664_000_000},
	"/empty":             {},
}

// fixture makes an instance reading a copy of testdata/host (root is
// appended to cfg), with a fake clock and statfs; next moves the copy to
// testdata/later and the clock 10s on.
func fixture(t *testing.T, cfg string) (c *Collector, root string, next func()) {
	t.Helper()
	root = t.TempDir()
	copyTree(t, "host", root)
	cfg = strings.TrimSuffix(strings.TrimSpace(cfg), "}")
	if strings.TrimSpace(cfg) != "{" {
		cfg += ","
	}
	c = mustStart(t, fmt.Sprintf(`%s "root": %q}`, cfg, root))
	now := t0
	c.sampler.now = func() time.Time { return now }
	c.sampler.statfs = func(p string) (fsStat, error) {
		point := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		st, ok := fakeFS[point]
		if !ok {
			return fsStat{}, &fs.PathError{Op: "statfs", Path: p, Err: fs.ErrNotExist}
		}
		return st, nil
	}
	return c, root, func() {
		copyTree(t, "later", root)
		now = now.Add(10 * time.Second)
	}
}

func e(subject, payload string) emitted { return emitted{subject, payload} }

var (
	wantLoads = []emitted{
		e("system.cpu.load1", `{"value":0.52}`),
		e("system.cpu.load5", `{"value":0.58}`),
		e("system.cpu.load15", `{"value":0.59}`),
	}
	wantMemory = []emitted{
		e("system.memory.total", `{"value":16777216000,"unit":"B"}`),
		e("system.memory.available", `{"value":8388608000,"unit":"B"}`),
		e("system.memory.used", `{"value":8388608000,"unit":"B"}`),
		e("system.memory.used_percent", `{"value":50,"unit":"%"}`),
		e("system.memory.swap_total", `{"value":2147483648,"unit":"B"}`),
		e("system.memory.swap_used", `{"value":1073741824,"unit":"B"}`),
	}
	wantTemperatures = []emitted{
		e("system.temperatures.acpitz", `{"value":27.8,"unit":"°C"}`),
		e("system.temperatures.x86_pkg_temp", `{"value":45,"unit":"°C"}`),
		e("system.temperatures.acpitz_2", `{"value":-5,"unit":"°C"}`),
		e("system.temperatures.int3400_thermal", `{"value":20,"unit":"°C"}`),
		e("system.temperatures.coretemp_package_id_0", `{"value":46,"unit":"°C"}`),
		e("system.temperatures.coretemp_core_0", `{"value":44,"unit":"°C"}`),
		e("system.temperatures.coretemp_core_8", `{"value":43,"unit":"°C"}`),
		e("system.temperatures.nvme_composite", `{"value":38.85,"unit":"°C"}`),
		e("system.temperatures.nvme_temp2", `{"value":40.85,"unit":"°C"}`),
		e("system.temperatures.hwmon2_temp1", `{"value":30,"unit":"°C"}`),
		e("system.temperatures.nvme_composite_2", `{"value":33,"unit":"°C"}`),
	}
	wantMounts = []emitted{
		e("system.disks.root.total_bytes", `{"value":1000000000,"unit":"B"}`),
		e("system.disks.root.used_bytes", `{"value":600000000,"unit":"B"}`),
		e("system.disks.root.used_percent", `{"value":63.16,"unit":"%"}`),
		e("system.disks.boot_efi.total_bytes", `{"value":536870912,"unit":"B"}`),
		e("system.disks.boot_efi.used_bytes", `{"value":6291456,"unit":"B"}`),
		e("system.disks.boot_efi.used_percent", `{"value":1.17,"unit":"%"}`),
		e("system.disks.srv_media_library.total_bytes", `{"value":4000000000000,"unit":"B"}`),
		e("system.disks.srv_media_library.used_bytes", `{"value":3000000000000,"unit":"B"}`),
		e("system.disks.srv_media_library.used_percent", `{"value":75,"unit":"%"}`),
	}
	wantDiskIO = []emitted{
		e("system.disks.dm-0.read_bytes_per_second", `{"value":0,"unit":"B/s"}`),
		e("system.disks.dm-0.write_bytes_per_second", `{"value":0,"unit":"B/s"}`),
		e("system.disks.nvme0n1.read_bytes_per_second", `{"value":1048576,"unit":"B/s"}`),
		e("system.disks.nvme0n1.write_bytes_per_second", `{"value":104857.6,"unit":"B/s"}`),
		e("system.disks.sda.read_bytes_per_second", `{"value":0,"unit":"B/s"}`),
		e("system.disks.sda.write_bytes_per_second", `{"value":51200,"unit":"B/s"}`),
	}
	wantNetwork = []emitted{
		e("system.network.eth0.rx_bytes_per_second", `{"value":125000,"unit":"B/s"}`),
		e("system.network.eth0.tx_bytes_per_second", `{"value":12.5,"unit":"B/s"}`),
		e("system.network.eth0_100.rx_bytes_per_second", `{"value":0,"unit":"B/s"}`),
		e("system.network.eth0_100.tx_bytes_per_second", `{"value":1,"unit":"B/s"}`),
	}
	wantLoopback = []emitted{
		e("system.network.lo.rx_bytes_per_second", `{"value":500,"unit":"B/s"}`),
		e("system.network.lo.tx_bytes_per_second", `{"value":500,"unit":"B/s"}`),
	}
)

func join(parts ...[]emitted) []emitted {
	var all []emitted
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

func withPrefix(prefix string, in []emitted) []emitted {
	out := make([]emitted, len(in))
	for i, m := range in {
		out[i] = emitted{prefix + strings.TrimPrefix(m.Subject, "system"), m.Payload}
	}
	return out
}

func TestFixture(t *testing.T) {
	tests := []struct {
		name           string
		cfg            string
		first, second  []emitted
		wantMalformed  uint64
		wantFirstTimes time.Time
	}{
		{
			name:   "every group",
			cfg:    `{}`,
			first:  join(wantLoads, wantMemory, wantTemperatures, wantMounts),
			second: join([]emitted{e("system.cpu.usage", `{"value":40,"unit":"%"}`)}, wantLoads, wantMemory, wantTemperatures, wantMounts, wantDiskIO, wantNetwork),
		},
		{
			name:  "cpu per core",
			cfg:   `{"groups": ["cpu"], "per_core": true}`,
			first: wantLoads,
			second: join([]emitted{
				e("system.cpu.usage", `{"value":40,"unit":"%"}`),
				e("system.cpu.cpu0.usage", `{"value":37.5,"unit":"%"}`),
				e("system.cpu.cpu1.usage", `{"value":42.31,"unit":"%"}`),
			}, wantLoads),
		},
		{
			name:   "groups in any order emit in the usual order",
			cfg:    `{"groups": ["network", "memory"]}`,
			first:  wantMemory,
			second: join(wantMemory, wantNetwork),
		},
		{
			name:   "loopback included",
			cfg:    `{"groups": ["network"], "include_loopback": true}`,
			second: join(wantNetwork, wantLoopback),
		},
		{
			name:   "interfaces listed",
			cfg:    `{"groups": ["network"], "interfaces": ["lo", "eth0.100", "wlan0"]}`,
			second: join(wantNetwork[2:], wantLoopback),
		},
		{
			name:  "mounts listed, virtual ones too",
			cfg:   `{"groups": ["disks"], "mounts": ["/run", "/not/mounted", "/empty"]}`,
			first: []emitted{e("system.disks.run.total_bytes", `{"value":1666097152,"unit":"B"}`), e("system.disks.run.used_bytes", `{"value":2097152,"unit":"B"}`), e("system.disks.run.used_percent", `{"value":0.13,"unit":"%"}`)},
			second: []emitted{e("system.disks.run.total_bytes", `{"value":1666097152,"unit":"B"}`), e("system.disks.run.used_bytes", `{"value":2097152,"unit":"B"}`), e("system.disks.run.used_percent", `{"value":0.13,"unit":"%"}`),
				wantDiskIO[0], wantDiskIO[1], wantDiskIO[2], wantDiskIO[3], wantDiskIO[4], wantDiskIO[5]},
		},
		{
			name:   "subject prefix",
			cfg:    `{"groups": ["memory", "temperatures"], "subject_prefix": "host.nas"}`,
			first:  withPrefix("host.nas", join(wantMemory, wantTemperatures)),
			second: withPrefix("host.nas", join(wantMemory, wantTemperatures)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, next := fixture(t, tt.cfg)
			var rec recorder
			c.round(&rec)
			first := rec.take()
			if got := emittedOf(first); !reflect.DeepEqual(got, tt.first) {
				t.Errorf("first round:\n%s\nwant\n%s", lines2(got), lines2(tt.first))
			}
			next()
			c.round(&rec)
			second := rec.take()
			if got := emittedOf(second); !reflect.DeepEqual(got, tt.second) {
				t.Errorf("second round:\n%s\nwant\n%s", lines2(got), lines2(tt.second))
			}
			for _, m := range first {
				if !m.Time.Equal(t0) || m.Tenant != "" {
					t.Errorf("%s: time %s tenant %q, want the round's time and no tenant", m.Subject, m.Time, m.Tenant)
				}
			}
			for _, m := range second {
				if !m.Time.Equal(t0.Add(10 * time.Second)) {
					t.Errorf("%s: time %s, want the second round's", m.Subject, m.Time)
				}
			}
			st := c.Stats()
			if st.Rounds != 2 || st.Messages != uint64(len(first)+len(second)) || st.Malformed != 0 || st.EmitErrors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func lines2(ms []emitted) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString("  " + m.String() + "\n")
	}
	return b.String()
}

func subjects(ms []emitted) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Subject)
	}
	return s
}

// TestMalformed breaks one file in both rounds: its metrics are left out,
// every other metric keeps its subject, and each round counts it.
func TestMalformed(t *testing.T) {
	everything := join([]emitted{e("system.cpu.usage", `{"value":40,"unit":"%"}`)}, wantLoads, wantMemory, wantTemperatures, wantMounts, wantDiskIO, wantNetwork)
	tests := []struct {
		name, file, content string
		gone                []string // subjects missing from the second round
		perRound            uint64
		lastErr             string
	}{
		{"cpu line", "proc/stat", "cpu  1000 0 x 8000\ncpu0 1 2 3 4\n", []string{"system.cpu.usage"}, 1, `"x" is not a tick count`},
		{"cpu line short", "proc/stat", "cpu  1000 0\n", []string{"system.cpu.usage"}, 1, "want at least 4 tick counts"},
		{"loadavg", "proc/loadavg", "n/a\n", subjects(wantLoads), 1, "want 3 load averages"},
		{"loadavg negative", "proc/loadavg", "-1 0 0 1/1 1\n", subjects(wantLoads), 1, `"-1" is not a load average`},
		{"meminfo number", "proc/meminfo", "MemTotal: lots kB\n", subjects(wantMemory), 1, `"lots" is not a number`},
		{"meminfo without total", "proc/meminfo", "MemFree: 1 kB\n", subjects(wantMemory), 1, "no MemTotal or MemAvailable"},
		{"thermal zone", "sys/class/thermal/thermal_zone0/temp", "\n", []string{"system.temperatures.acpitz"}, 1, "is not a temperature in millidegrees"},
		{"hwmon input", "sys/class/hwmon/hwmon1/temp1_input", "hot\n", []string{"system.temperatures.nvme_composite"}, 1, `"hot" is not a temperature`},
		{"diskstats line", "proc/diskstats", "   8       0 sda 1 2\n", subjects(wantDiskIO), 1, "want at least 14 fields"},
		{"diskstats numbers", "proc/diskstats", " 259 0 nvme0n1 0 0 x 0 0 0 0 0 0 0 0 0 0\n", subjects(wantDiskIO), 1, "sector counts are not numbers"},
		{"net/dev line", "proc/net/dev", "Inter-|\n face |\n  eth0: 1 2 3\n", subjects(wantNetwork), 1, "want an interface and 16 counters"},
		{"net/dev numbers", "proc/net/dev", "  eth0: x 2 0 0 0 0 0 0 y 3 0 0 0 0 0 0\n", subjects(wantNetwork), 1, "byte counts are not numbers"},
		{"mounts line", "proc/mounts", "garbage\n/dev/nvme0n1p2 / ext4 rw 0 0\nx relative ext4 rw 0 0\n", subjects(wantMounts[3:]), 2, "mount point is not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, root, next := fixture(t, `{}`)
			breakIt := func() {
				if err := os.WriteFile(filepath.Join(root, tt.file), []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var rec recorder
			breakIt()
			c.round(&rec)
			rec.take()
			next()
			breakIt()
			c.round(&rec)
			var want []emitted
			for _, m := range everything {
				if !slices.Contains(tt.gone, m.Subject) {
					want = append(want, m)
				}
			}
			if got := emittedOf(rec.take()); !reflect.DeepEqual(got, want) {
				t.Errorf("second round:\n%s\nwant\n%s", lines2(got), lines2(want))
			}
			st := c.Stats()
			if st.Malformed != 2*tt.perRound || !strings.Contains(st.LastMalformed, tt.lastErr) || !strings.Contains(st.LastMalformed, tt.file) || !st.LastMalformedAt.Equal(t0.Add(10*time.Second)) {
				t.Errorf("stats %+v, want %d malformed, the last naming %s and %q", st, 2*tt.perRound, tt.file, tt.lastErr)
			}
		})
	}
}

// TestMissingSources: what a host or a container does not have gives no
// metrics and no error.
func TestMissingSources(t *testing.T) {
	tests := []struct {
		name   string
		remove []string
		want   []emitted
	}{
		{"nothing at all", []string{"proc", "sys"}, nil},
		{"no hwmon (a container)", []string{"sys/class/hwmon"}, join(wantLoads, wantMemory, wantTemperatures[:4], wantMounts)},
		{"no thermal zones", []string{"sys/class/thermal"}, join(wantLoads, wantMemory, wantTemperatures[4:], wantMounts)},
		{"no /sys", []string{"sys"}, join(wantLoads, wantMemory, wantMounts)},
		{"no mounts, stat or loadavg", []string{"proc/mounts", "proc/stat", "proc/loadavg"}, join(wantMemory, wantTemperatures)},
		{"hwmon labels and names", []string{"sys/class/hwmon/hwmon0/name", "sys/class/hwmon/hwmon0/temp2_label", "sys/class/hwmon/hwmon1", "sys/class/hwmon/hwmon10", "sys/class/hwmon/hwmon2"},
			join(wantLoads, wantMemory, wantTemperatures[:4], []emitted{
				e("system.temperatures.hwmon0_package_id_0", `{"value":46,"unit":"°C"}`),
				e("system.temperatures.hwmon0_temp2", `{"value":44,"unit":"°C"}`),
				e("system.temperatures.hwmon0_core_8", `{"value":43,"unit":"°C"}`),
			}, wantMounts)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, root, _ := fixture(t, `{}`)
			for _, p := range tt.remove {
				if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
			var rec recorder
			c.round(&rec)
			if got := emittedOf(rec.take()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("emitted:\n%s\nwant\n%s", lines2(got), lines2(tt.want))
			}
			if st := c.Stats(); st.Malformed != 0 {
				t.Errorf("stats %+v: a missing source is not malformed", st)
			}
		})
	}
}

func TestCountersGoingBackwards(t *testing.T) {
	c, root, next := fixture(t, `{"groups": ["cpu", "network"]}`)
	var rec recorder
	next() // the later counters first
	c.round(&rec)
	rec.take()
	copyTree(t, "host", root) // then the earlier ones: a reset, or a wrap
	c.sampler.now = func() time.Time { return t0.Add(20 * time.Second) }
	c.round(&rec)
	var got []string
	for _, m := range rec.take() {
		got = append(got, m.Subject)
	}
	// eth0.100 received nothing in either file: a rate of 0, not a reset
	if want := append(subjects(wantLoads), "system.network.eth0_100.rx_bytes_per_second"); !reflect.DeepEqual(got, want) {
		t.Errorf("after counters went back, emitted %v, want only %v", got, want)
	}
}

func TestEmitErrorStopsTheRound(t *testing.T) {
	c, _, _ := fixture(t, `{}`)
	rec := &recorder{fail: errors.New("route closed")}
	c.round(rec)
	c.round(rec)
	if n := len(rec.take()); n != 2 {
		t.Errorf("Emit called %d times in two rounds that each failed at once, want 2", n)
	}
	if st := c.Stats(); st.EmitErrors != 2 || st.Messages != 0 || st.Rounds != 2 {
		t.Errorf("stats %+v, want 2 emit errors, no messages", st)
	}
}

func TestCollectUntilCanceled(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "host", root)
	c := mustStart(t, fmt.Sprintf(`{"interval": "50ms", "groups": ["memory", "temperatures"], "root": %q}`, root))
	perRound := len(wantMemory) + len(wantTemperatures)
	var rec recorder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- c.Collect(ctx, &rec) }()
	deadline := time.Now().Add(hangLimit)
	for rec.count() < 3*perRound {
		if time.Now().After(deadline) {
			t.Fatalf("three rounds did not come within %s", hangLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(began); took < 100*time.Millisecond {
		t.Errorf("three rounds took %s, want at least two 50ms intervals", took)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Collect returned %v after its context ended, want nil", err)
		}
	case <-time.After(hangLimit):
		t.Fatal("Collect did not return after its context ended")
	}
	msgs := rec.take()
	if got := emittedOf(msgs[:perRound]); !reflect.DeepEqual(got, join(wantMemory, wantTemperatures)) {
		t.Errorf("first round:\n%s", lines2(got))
	}
	rounds := c.Stats().Rounds
	time.Sleep(150 * time.Millisecond)
	if c.Stats().Rounds != rounds {
		t.Error("rounds went on after Collect returned")
	}
}

func TestCollectBeforeProvision(t *testing.T) {
	if err := new(Collector).Collect(context.Background(), new(recorder)); err == nil {
		t.Error("Collect of an unprovisioned instance returned nil")
	}
}

// TestRealHost samples this machine's own /proc and /sys twice and checks
// that the values are sane; it logs what it found.
func TestRealHost(t *testing.T) {
	c := mustStart(t, `{"per_core": true, "include_loopback": true}`)
	var rec recorder
	c.round(&rec)
	first := rec.take()
	time.Sleep(300 * time.Millisecond)
	c.round(&rec)
	msgs := rec.take() // the second round, with rates and CPU usage
	t.Logf("first round: %d metrics; second round: %d", len(first), len(msgs))
	values := map[string]float64{}
	for _, m := range msgs {
		var p struct {
			Value *float64 `json:"value"`
			Unit  string   `json:"unit"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Value == nil {
			t.Fatalf("%s: payload %s: %v", m.Subject, m.Payload, err)
		}
		values[m.Subject] = *p.Value
		t.Logf("%-50s %s %s", m.Subject, strconv.FormatFloat(*p.Value, 'f', -1, 64), p.Unit)
		parts := strings.Split(m.Subject, ".")
		for _, tok := range parts {
			if tok == "" || token(tok, "") != tok {
				t.Errorf("subject %q has a token that is not [a-z0-9_-]", m.Subject)
			}
		}
		switch {
		case strings.HasSuffix(m.Subject, "percent") || strings.HasSuffix(m.Subject, ".usage"):
			if *p.Value < 0 || *p.Value > 100 || p.Unit != "%" {
				t.Errorf("%s = %v %s, want a percentage", m.Subject, *p.Value, p.Unit)
			}
		case strings.HasSuffix(m.Subject, "_per_second") || strings.HasSuffix(m.Subject, "bytes") || parts[1] == "memory":
			if *p.Value < 0 {
				t.Errorf("%s = %v, want ≥ 0", m.Subject, *p.Value)
			}
		case parts[1] == "temperatures":
			if *p.Value < -60 || *p.Value > 150 {
				t.Errorf("%s = %v °C, not a temperature a working machine has", m.Subject, *p.Value)
			}
		}
	}
	if u, ok := values["system.cpu.usage"]; !ok || u < 0 || u > 100 {
		t.Errorf("cpu usage %v (found %v), want a percentage", u, ok)
	}
	if values["system.memory.total"] <= 0 || values["system.memory.used"] > values["system.memory.total"] {
		t.Errorf("memory total %v used %v", values["system.memory.total"], values["system.memory.used"])
	}
	if _, ok := values["system.cpu.load1"]; !ok {
		t.Error("no load average")
	}
	disks := 0
	for s := range values {
		if strings.HasPrefix(s, "system.disks.") && strings.HasSuffix(s, ".total_bytes") {
			disks++
		}
	}
	if disks == 0 {
		t.Error("no disk found among the mounts")
	}
	if st := c.Stats(); st.Malformed != 0 {
		t.Errorf("stats %+v: this machine's files should parse", st)
	}
}

func TestDefaults(t *testing.T) {
	c := mustStart(t, `{}`)
	if c.interval != DefaultInterval || c.prefix != DefaultSubjectPrefix || c.sampler.root != DefaultRoot || c.sampler.perCore || c.sampler.includeLoopback || c.sampler.mounts != nil || c.sampler.interfaces != nil {
		t.Errorf("defaults: interval %s prefix %q root %q sampler %+v", c.interval, c.prefix, c.sampler.root, c.sampler)
	}
	for _, g := range Groups {
		if !c.sampler.groups[g] {
			t.Errorf("group %s is not on by default", g)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, err string
	}{
		{"unknown key", `{"interval": "1s", "devices": ["sda"]}`, `config: unknown field "devices"`},
		{"bad group", `{"groups": ["cpu", "gpu"]}`, `groups[1]: unknown group "gpu" (want cpu, memory, temperatures, disks, network)`},
		{"group case", `{"groups": ["CPU"]}`, `groups[0]: unknown group "CPU"`},
		{"empty groups", `{"groups": []}`, "groups: is empty"},
		{"groups a string", `{"groups": "cpu"}`, `field "groups": want []string, got JSON string`},
		{"bad interval", `{"interval": "ten"}`, `field "interval": want a duration such as "30s", "5m" or "1h30m", got "ten"`},
		{"interval a number", `{"interval": 10}`, `field "interval": want a duration such as "30s", "5m" or "1h30m", got 10`},
		{"zero interval", `{"interval": "0s"}`, "interval: must be positive, got 0s"},
		{"negative interval", `{"interval": "-1s"}`, "interval: must be positive, got -1s"},
		{"per_core a string", `{"per_core": "yes"}`, `field "per_core": want bool`},
		{"wildcard prefix", `{"subject_prefix": "host.*"}`, `subject_prefix: "host.*": a token "*" is a wildcard`},
		{"empty token prefix", `{"subject_prefix": "a..b"}`, `subject_prefix: "a..b": a token must not be empty`},
		{"relative mount", `{"mounts": ["/", "data"]}`, `mounts[1]: want an absolute path such as "/" or "/mnt/data", got "data"`},
		{"empty mounts", `{"mounts": []}`, "mounts: is empty"},
		{"bad interface", `{"interfaces": ["eth0", "a/b"]}`, `interfaces[1]: want an interface name such as "eth0", got "a/b"`},
		{"empty interfaces", `{"interfaces": []}`, "interfaces: is empty"},
		{"root not there", `{"root": "/nonexistent/switchyard"}`, `root: "/nonexistent/switchyard" is not a directory`},
		{"not an object", `[]`, "want a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := start(t, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("config %s: error %v, want one containing %q", tt.cfg, err, tt.err)
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := start(t, `{"interval": "-1s", "groups": ["x"], "mounts": ["rel"], "subject_prefix": ">"}`)
	for _, want := range []string{"interval:", "groups[0]:", "mounts[0]:", "subject_prefix:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"acpitz\n":          "acpitz",
		"INT3400 Thermal":   "int3400_thermal",
		"Package id 0":      "package_id_0",
		"eth0.100":          "eth0_100",
		"dm-0":              "dm-0",
		"srv/media Library": "srv_media_library",
		"__a__b__":          "a_b",
		"Tctl (°C)":         "tctl_c",
		"":                  "x",
		"...":               "x",
	} {
		if got := token(in, "x"); got != want {
			t.Errorf("token(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDiskstatsPartitions(t *testing.T) {
	line := func(name string) string { return "1 0 " + name + " 0 0 8 0 0 0 16 0 0 0 0\n" }
	var b strings.Builder
	for _, n := range []string{"sda", "sda1", "sda15", "sdaa", "nvme0n1", "nvme0n1p1", "nvme0n10", "mmcblk0", "mmcblk0p2", "mmcblk0boot0", "nbd1", "nbd10", "md0", "md0p1", "loop0", "ram1", "zram0", "vda", "vda1", "sr0", "cciss/c0d0", "cciss/c0d0p1"} {
		b.WriteString(line(n))
	}
	b.WriteString("8 2 sdb2 1 2 3 4\n") // the old short partition format
	devs, bad := parseDiskstats([]byte(b.String()))
	if len(bad) != 0 {
		t.Errorf("errors %v", bad)
	}
	got := sortedKeys(devs)
	want := []string{"cciss/c0d0", "md0", "mmcblk0", "mmcblk0boot0", "nbd1", "nbd10", "nvme0n1", "nvme0n10", "sda", "sdaa", "sr0", "vda"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("whole devices %v, want %v", got, want)
	}
	if devs["sda"] != (ioBytes{in: 8 * 512, out: 16 * 512}) {
		t.Errorf("sda %+v", devs["sda"])
	}
}

func TestParseMounts(t *testing.T) {
	m, bad := parseMounts([]byte("/dev/sdb1 /mnt/my\\040disk\\011x ext4 rw 0 0\n/dev/x /a\\134b\\9 xfs rw 0 0\n"))
	if len(bad) != 0 || len(m) != 2 || m[0].point != "/mnt/my disk\tx" || m[1].point != `/a\b\9` {
		t.Errorf("parseMounts = %+v, %v", m, bad)
	}
}

func TestRegistered(t *testing.T) {
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	if _, ok := info.New().(plugin.Collector); !ok {
		t.Errorf("New returns %T, not a plugin.Collector", info.New())
	}
}

// TestSample loads sample.yaml with the runtime's own loader, checks that
// it declares one built-in instance of the plugin, that the plugin accepts
// its configuration, and that the README shows it verbatim.
func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	c := mustStart(t, string(raw))
	if c.interval != 30*time.Second || c.prefix != "host.nas" || !c.PerCore || len(c.Mounts) != 2 || !reflect.DeepEqual(c.Interfaces, []string{"eth0"}) || len(c.sampler.groups) != len(Groups) {
		t.Errorf("sample decoded as interval %s prefix %q %+v", c.interval, c.prefix, c)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(`{"interval": "1s", "groups": ["cpu", "disks"], "per_core": true, "mounts": ["/"], "interfaces": ["eth0"], "include_loopback": true}`)
	f.Add(`{"subject_prefix": "a.b", "root": "testdata/host"}`)
	f.Add(`{"groups": [], "interval": 5, "x": 1}`)
	f.Add(`{"interval": "-3h", "mounts": ["rel"], "interfaces": [""]}`)
	f.Fuzz(func(t *testing.T, cfg string) {
		c := new(Collector)
		if err := plugin.DecodeConfig([]byte(cfg), c); err != nil {
			return
		}
		if err := c.Provision(context.Background()); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("provisioned but not valid: %v", err)
		}
		if c.interval <= 0 || len(c.sampler.groups) == 0 || c.prefix == "" {
			t.Fatalf("accepted %s as interval %s groups %v prefix %q", cfg, c.interval, c.sampler.groups, c.prefix)
		}
		for g := range c.sampler.groups {
			if !slices.Contains(Groups, g) {
				t.Fatalf("accepted group %q", g)
			}
		}
	})
}

func FuzzParseStat(f *testing.F) {
	for _, s := range []string{"testdata/host/proc/stat", "testdata/later/proc/stat"} {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("cpu 1 2 3\ncpu0 18446744073709551615 1 1 1\ncpux 1 1 1 1\ncpu"))
	f.Fuzz(func(t *testing.T, b []byte) {
		times, _ := parseStat(b)
		for name, ct := range times {
			if ct.idle > ct.total || !strings.HasPrefix(name, "cpu") {
				t.Fatalf("%s: %+v", name, ct)
			}
			if u, ok := usage(cpuTimes{}, ct); ok && (u < 0 || u > 100) {
				t.Fatalf("%s: usage %v", name, u)
			}
		}
	})
}

func FuzzParseNetDev(f *testing.F) {
	for _, s := range []string{"testdata/host/proc/net/dev", "testdata/later/proc/net/dev"} {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n:\n|:x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ifs, _ := parseNetDev(b)
		for name := range ifs {
			if name == "" || strings.ContainsAny(name, ": \t\n") {
				t.Fatalf("interface %q", name)
			}
			if tok := token(name, "dev"); token(tok, "") != tok {
				t.Fatalf("token(%q) = %q is not stable", name, tok)
			}
		}
	})
}

// FuzzParseOther covers the other parsers of kernel files: none may panic.
func FuzzParseOther(f *testing.F) {
	for _, s := range []string{"proc/meminfo", "proc/loadavg", "proc/mounts", "proc/diskstats"} {
		b, err := os.ReadFile(filepath.Join("testdata/host", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseMeminfo(b)
		parseLoadavg(b)
		parseMilli(b)
		for _, m := range must(parseMounts(b)) {
			if !strings.HasPrefix(m.point, "/") {
				t.Fatalf("mount point %q", m.point)
			}
			mountToken(m.point)
		}
		parseDiskstats(b)
	})
}

func must[T any](v T, _ []error) T { return v }
