package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI is the admin API contract as the load tool uses it.
type fakeAPI struct {
	t           *testing.T
	key         string
	rejectID    string
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	mu          sync.Mutex
	created     map[string]deviceRequest
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond) // long enough for requests to overlap
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/tenants/default/devices" {
		http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
		return
	}
	var req deviceRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.t.Errorf("request body: %v", err)
		http.Error(w, `{"error":{"code":"bad_body"}}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	reject := req.ID == f.rejectID
	if !reject {
		f.created[req.ID] = req
	}
	f.mu.Unlock()
	if reject {
		http.Error(w, `{"error":{"code":"device_exists","field":"id"}}`, http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"device":{"id":%q},"token":"tok-%s"}`, req.ID, req.ID)
}

func TestProvision(t *testing.T) {
	api := &fakeAPI{t: t, key: "syop_test", created: map[string]deviceRequest{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = DeviceID("load-", i)
	}
	p := Provisioner{API: srv.URL, Key: "syop_test", Tenant: "default", Concurrency: 4, Log: quietLog()}
	tokens, err := p.Provision(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	for i, id := range ids {
		if tokens[i] != "tok-"+id {
			t.Fatalf("token %d = %q, want tok-%s", i, tokens[i], id)
		}
		req := api.created[id]
		if req.Model != "load" || req.Labels["load"] != "1" {
			t.Fatalf("device %s created as %+v", id, req)
		}
	}
	if ids[0] != "load-000001" {
		t.Fatalf("first device id %q, want load-000001", ids[0])
	}
	if got := api.maxInFlight.Load(); got > 4 || got < 2 {
		t.Fatalf("max requests in flight %d, want 2..4", got)
	}

	api.rejectID = ids[50]
	api.mu.Unlock()
	t.Run("a refusal stops provisioning", func(t *testing.T) {
		_, err := p.Provision(t.Context(), ids)
		if err == nil || !strings.Contains(err.Error(), "http 409") || !strings.Contains(err.Error(), "device_exists") {
			t.Fatalf("error = %v, want the 409 and its body", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		bad := p
		bad.Key = "nope"
		if _, err := bad.Provision(t.Context(), ids[:3]); err == nil || !strings.Contains(err.Error(), "http 401") {
			t.Fatalf("error = %v, want http 401", err)
		}
	})
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	if err := WaitReady(t.Context(), srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls to /ready, want 3", calls.Load())
	}

	exited := make(chan struct{})
	close(exited)
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(notReady.Close)
	if err := WaitReady(t.Context(), notReady.URL, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("error = %v, want relay exited", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := WaitReady(ctx, notReady.URL, nil); err == nil || !strings.Contains(err.Error(), "http 503") {
		t.Fatalf("error = %v, want a timeout naming http 503", err)
	}
}
