package jsonpath_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/runtime/host/wasm"
)

// module builds wasm/ as build.sh does, into a temporary folder, so that the
// test runs the guest of the sources it sits next to.
func module(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the WASM module; not in -short")
	}
	out := filepath.Join(t.TempDir(), "jsonpath.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./wasm: %v\n%s", err, b)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// station serves /status with whatever body and status the test sets.
type station struct {
	mu     sync.Mutex
	status int
	body   string
	accept string
}

func (s *station) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *station) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accept = r.Header.Get("Accept")
	if r.URL.Path != "/status" {
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

func TestGuest(t *testing.T) {
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(ctx) })
	mod, err := rt.Compile(ctx, module(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mod.Close(ctx) })

	st := &station{}
	srv := httptest.NewServer(st)
	t.Cleanup(srv.Close)
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	instance := func(config string, hosts ...string) (*wasm.Instance, error) {
		in, err := mod.Instantiate(ctx, wasm.InstanceConfig{
			Tenant: "default", ID: "weather", Use: "collectors.jsonpath", Config: []byte(config),
			Limits: wasm.Limits{CallTimeout: 5 * time.Second}, HTTPFetch: wasm.HTTPFetchPolicy{Hosts: hosts},
		})
		if err == nil {
			t.Cleanup(func() { _ = in.Close(ctx) })
		}
		return in, err
	}
	collect := func(in *wasm.Instance) (string, error) {
		var b strings.Builder
		err := in.Collect(ctx, time.Now(), func(m wasm.Message) { b.WriteString(m.Subject + " " + string(m.Payload) + "\n") })
		return b.String(), err
	}

	config := `{"url":"` + srv.URL + `/status","on_change":true,"readings":[
		{"path":"main.temp","subject":"weather.temp","unit":"°C"},
		{"path":"sensors[1].value","subject":"weather.s1"}]}`
	in, err := instance(config, hostPort)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		status      int
		body, want  string
		errContains string
	}{
		{200, `{"main":{"temp":21.5},"sensors":[{"value":1},{"value":"zwölf"}]}`, "weather.temp {\"value\":21.5,\"unit\":\"°C\"}\nweather.s1 {\"value\":\"zwölf\"}\n", ""},
		{200, `{"main":{"temp":21.5},"sensors":[{"value":1},{"value":"zwölf"}]}`, "", ""},
		{200, `{"main":{"temp":22}}`, "weather.temp {\"value\":22,\"unit\":\"°C\"}\n", ""},
		{500, `overheated`, "", `GET ` + srv.URL + `/status: HTTP status 500: body "overheated"`},
		{200, ``, "", "empty body, want JSON"},
		{200, `{"main":{"temp":22},"sensors":[0,{"value":[1,2]}]}`, "weather.s1 {\"value\":[1,2]}\n", ""},
	}
	for i, s := range steps {
		st.set(s.status, s.body)
		got, err := collect(in)
		switch {
		case s.errContains != "":
			if err == nil || !strings.Contains(err.Error(), s.errContains) {
				t.Fatalf("step %d: %v, want an error with %q", i, err, s.errContains)
			}
		case err != nil:
			t.Fatalf("step %d: %v", i, err)
		case got != s.want:
			t.Fatalf("step %d: outputs:\n%s\nwant:\n%s", i, got, s.want)
		}
	}
	if st.accept != "application/json" {
		t.Errorf("Accept header %q, want application/json", st.accept)
	}

	// A fetch the instance's policy refuses: the host's reason reaches the operator.
	in, err = instance(config, "api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collect(in); err == nil || !strings.Contains(err.Error(), "fetch "+srv.URL+"/status: not allowed here: ") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("a fetch to a host not listed: %v", err)
	}

	// A refused configuration names the key.
	if _, err := instance(`{"url":"`+srv.URL+`","readings":[{"path":"a","subject":"s"}],"on_chang":true}`, hostPort); err == nil || !strings.Contains(err.Error(), `unknown field "on_chang"`) {
		t.Errorf("an unknown key: %v", err)
	}
}
