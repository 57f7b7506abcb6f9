package process_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/host/builtin"
	"github.com/switchyard/switchyard/runtime/host/process"
	_ "github.com/switchyard/switchyard/runtime/host/process/internal/testplugins"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// The plugin binary, built once from testdata/testplugin (without -race:
// the tests are about the process, not the plugin's code).
var (
	binary string
	binSum string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "testplugin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "testplugin")
	build := exec.Command("go", "build", "-o", binary, "./testdata/testplugin")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build testplugin:", err)
		os.Exit(1)
	}
	binSum = sum(binary)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func sum(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testLog collects what the plugin's process logs.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func start(t testing.TB, use string, config string, edit ...func(*process.Config)) *process.Plugin {
	t.Helper()
	p, err := process.Start(context.Background(), cfg(use, config, edit...))
	if err != nil {
		t.Fatalf("start %s: %v", use, err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func cfg(use, config string, edit ...func(*process.Config)) process.Config {
	c := process.Config{
		Path: binary, SHA256: binSum, Args: []string{},
		Use: use, Tenant: "acme", Instance: "inst-1", Config: []byte(config),
	}
	for _, e := range edit {
		e(&c)
	}
	return c
}

func msg(payload string) plugin.Message {
	return plugin.Message{Tenant: "acme", Source: "s", Subject: "a.b", Time: time.Unix(1700000000, 5), Meta: map[string]string{"k": "v"}, Payload: []byte(payload)}
}

func TestTransformRoundTrip(t *testing.T) {
	lg := &testLog{}
	t.Setenv("VISIBLE_VAR", "yes")
	t.Setenv("HIDDEN_VAR", "no")
	p := start(t, "transforms.test-upper", `{"suffix":"!"}`, func(c *process.Config) {
		c.Env = []string{"VISIBLE_VAR"}
		c.Log = slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"hello", []string{"HELLO!"}, ""},
		{"twice", []string{"TWICE!", "TWICE!"}, ""},
		{"drop", nil, ""},
		{"fail", nil, "refused: fail"},
		{"panic", nil, "transforms.test-upper panicked: asked to panic"},
		{"env:VISIBLE_VAR", []string{`VISIBLE_VAR="yes" set=true`}, ""},
		{"env:HIDDEN_VAR", []string{`HIDDEN_VAR="" set=false`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got []string
			in := msg(tt.in)
			in.Tenant = "other" // the host's stamp wins
			err := p.Transform(context.Background(), in, func(o plugin.Message) {
				if o.Tenant != "acme" || o.Subject != "a.b" || o.Meta["k"] != "v" || !o.Time.Equal(time.Unix(1700000000, 5)) {
					t.Errorf("message not carried over: %+v", o)
				}
				got = append(got, string(o.Payload))
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	res, err := p.TransformBatch(context.Background(), []plugin.Message{msg("a"), msg("fail"), msg("b")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || string(res[0].Messages[0].Payload) != "A!" || res[1].Err == nil || string(res[2].Messages[0].Payload) != "B!" {
		t.Errorf("batch results: %+v", res)
	}
	st := p.Stats()
	if st.State != process.Running || st.PID == 0 || st.Calls == 0 || st.Errors == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCollectorStreams(t *testing.T) {
	p := start(t, "collectors.test-ticker", `{"every":"5ms"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []plugin.Message
	cctx, stop := context.WithCancel(ctx)
	err := p.Collect(cctx, func(m plugin.Message) error {
		got = append(got, m)
		if len(got) == 5 {
			stop()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 5 {
		t.Fatalf("got %d messages", len(got))
	}
	for _, m := range got {
		if m.Tenant != "acme" || m.Source != "inst-1" || m.Subject != "test.tick" || m.Time.IsZero() || m.Meta["pid"] != fmt.Sprint(p.PID()) {
			t.Errorf("message %+v", m)
		}
	}
}

func TestBrokerRoundTrip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	p := start(t, "brokers.test-file", fmt.Sprintf(`{"path":%q}`, out))
	batch := []plugin.Message{msg("one"), msg("two"), msg("three")}
	if err := p.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines %q", lines)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["payload"] != "one" || first["tenant"] != "acme" || first["time"] != float64(time.Unix(1700000000, 5).UnixNano()) {
		t.Errorf("first %v", first)
	}
	fail := msg("x")
	fail.Subject = "fail"
	if err := p.Publish(context.Background(), []plugin.Message{fail}); err == nil || !strings.Contains(err.Error(), "refused subject fail") {
		t.Errorf("failed batch: err %v", err)
	}
	if st := p.Stats(); st.Calls != 2 || st.Errors != 1 || !strings.Contains(st.LastError, "refused subject fail") {
		t.Errorf("stats %+v", st)
	}
}

func TestChecksumMismatchRunsNothing(t *testing.T) {
	dir := t.TempDir()
	// A copy with one byte more: another sum, and a path of its own.
	other := filepath.Join(dir, "tampered")
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	t.Setenv("TESTPLUGIN_MARKER", marker)
	_, err = process.Start(context.Background(), cfg("transforms.test-upper", "{}", func(c *process.Config) {
		c.Path = other
		c.Env = []string{"TESTPLUGIN_MARKER"}
	}))
	if err == nil {
		t.Fatal("a binary with another sum was started")
	}
	for _, want := range []string{other, "sha256 mismatch", "expected " + binSum, "actual " + sum(other)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the tampered binary ran (marker: %v)", err)
	}
	if pids := procsOf(other); len(pids) > 0 {
		t.Errorf("processes of the tampered binary: %v", pids)
	}
	// The same file with its true sum does run: the marker proves the check
	// above is what kept it from running.
	p, err := process.Start(context.Background(), cfg("transforms.test-upper", "{}", func(c *process.Config) {
		c.Path, c.SHA256 = other, sum(other)
		c.Env = []string{"TESTPLUGIN_MARKER"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("marker after a good start: %v", err)
	}
}

// procsOf returns the pids of live processes whose executable is path.
func procsOf(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestConfigureErrors(t *testing.T) {
	tests := []struct {
		use, config string
		want        string
	}{
		{"transforms.test-upper", `{"bogus":1}`, `configure: config: unknown field "bogus"`},
		{"transforms.test-upper", `{"suffix":5}`, `configure: config: field "suffix": want string, got JSON number`},
		{"transforms.test-upper", `{"fail_provision":true}`, `configure: provision: told to fail`},
		{"brokers.test-file", `{}`, `configure: validate: path is required`},
		{"transforms.nope", `{}`, `configure: transforms.nope is not served by this binary (it serves: brokers.test-file, collectors.test-ticker, transforms.test-upper)`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := process.Start(context.Background(), cfg(tt.use, tt.config))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestRestartAfterSIGKILL(t *testing.T) {
	p := start(t, "transforms.test-upper", `{}`)
	first := p.PID()
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lastOK atomic.Int64 // unix nanos of the last successful call
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := p.Transform(ctx, msg("x"), func(plugin.Message) {})
				cancel()
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
				} else {
					ok.Add(1)
					lastOK.Store(time.Now().UnixNano())
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	killed := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for a new process that serves calls.
	var back time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := p.PID(); pid != 0 && pid != first && lastOK.Load() > killed.UnixNano() {
			back = time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("no restart after 10s: stats %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	before := ok.Load()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("SIGKILL → calls succeed on the new process after %v (ok %d, failed %d)", back, ok.Load(), failed.Load())
	if ok.Load() <= before {
		t.Errorf("no successful calls after the restart")
	}
	st := p.Stats()
	if st.Restarts != 1 || st.State != process.Running || st.PID == first {
		t.Errorf("stats %+v", st)
	}
	if processAlive(first) {
		t.Errorf("old process %d still alive", first)
	}
}

func TestCollectorResumesAfterKill(t *testing.T) {
	p := start(t, "collectors.test-ticker", `{"every":"5ms"}`)
	first := fmt.Sprint(p.PID())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var n int
	var killedAt time.Time
	err := p.Collect(ctx, func(m plugin.Message) error {
		n++
		switch {
		case n == 3 && killedAt.IsZero():
			killedAt = time.Now()
			pid := 0
			fmt.Sscan(first, &pid)
			go syscall.Kill(pid, syscall.SIGKILL)
		case m.Meta["pid"] != first:
			t.Logf("collector resumed on pid %s %v after the kill", m.Meta["pid"], time.Since(killedAt))
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if killedAt.IsZero() || ctx.Err() == nil || p.Stats().Restarts != 1 {
		t.Fatalf("collector did not resume: %d messages, stats %+v", n, p.Stats())
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses; Z is a zombie.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// BenchmarkTransform compares a transform in a process with the same code
// built in, per message, at batches of 1 and 100.
func BenchmarkTransform(b *testing.B) {
	payload := `{"value": 21.5, "unit": "c"}`
	for _, size := range []int{1, 100} {
		batch := make([]plugin.Message, size)
		for i := range batch {
			batch[i] = msg(payload)
		}
		b.Run(fmt.Sprintf("builtin/batch=%d", size), func(b *testing.B) {
			in, err := builtin.New(context.Background(), "transforms.test-upper", "acme", "inst-1", []byte(`{}`))
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close()
			ctx := context.Background()
			for b.Loop() {
				for _, m := range batch {
					if err := in.Transform(ctx, m, func(plugin.Message) {}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
		})
		b.Run(fmt.Sprintf("process/batch=%d", size), func(b *testing.B) {
			p := start(b, "transforms.test-upper", `{}`)
			ctx := context.Background()
			for b.Loop() {
				if size == 1 {
					if err := p.Transform(ctx, batch[0], func(plugin.Message) {}); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := p.TransformBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
		})
	}
}
