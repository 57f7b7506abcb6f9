package api_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// get answers a GET with key (none when "") with its status and body.
func get(t *testing.T, r *apptest.Relay, key, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.API+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestPprofIsOperatorOnlyAndOffByDefault(t *testing.T) {
	const heap = "/api/v1/debug/pprof/heap"
	off := apptest.Start(t, "", nil)
	if s, b := get(t, off, apptest.OperatorKey, heap); s != http.StatusNotFound {
		t.Fatalf("api.pprof off: %s answered %d %s, want 404", heap, s, b)
	}

	r := apptest.Start(t, "", func(c *config.Config) { c.API.Pprof = true })
	tenantKey := r.CreateKey("default", "k1")
	for _, tc := range []struct {
		name, key string
		status    int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"tenant key", tenantKey, http.StatusForbidden},
	} {
		if s, b := get(t, r, tc.key, heap); s != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, s, b, tc.status)
		}
	}

	s, b := get(t, r, apptest.OperatorKey, heap)
	if s != http.StatusOK {
		t.Fatalf("operator: %d %s", s, b)
	}
	// A heap profile is a gzipped protobuf that names the sampled functions.
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("heap profile is not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || !bytes.Contains(raw, []byte("runtime.")) {
		t.Fatalf("heap profile: %d bytes, err %v, no runtime function named", len(raw), err)
	}

	if s, b := get(t, r, apptest.OperatorKey, "/api/v1/debug/pprof/"); s != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Errorf("index: %d %.200s", s, b)
	}
	if s, b := get(t, r, apptest.OperatorKey, "/api/v1/debug/pprof/goroutine?debug=1"); s != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
		t.Errorf("goroutine?debug=1: %d %.200s", s, b)
	}
	if s, _ := get(t, r, apptest.OperatorKey, "/api/v1/debug/pprof/no-such-profile"); s != http.StatusNotFound {
		t.Errorf("unknown profile: %d, want 404", s)
	}
}
