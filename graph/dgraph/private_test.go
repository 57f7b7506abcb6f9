package dgraph_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
)

// These tests run a private cluster each (~6-10 s to start): one with
// short-lived tokens, one that is stopped and started again. They run in
// parallel with each other (after the tests on the shared cluster): most of
// their time is spent waiting.

// TestRelogin checks that a store outlives its tokens: past the access
// token's lifetime dgo renews it with the refresh token, and past the
// refresh token's lifetime the store logs in again with the password — for
// a tenant's session and for the guardian's, gRPC and /admin alike
// (CreateTenant goes through both).
func TestRelogin(t *testing.T) {
	if testing.Short() {
		t.Skip("waits ~11 s for tokens to expire")
	}
	t.Parallel()
	const ttl = 3 * time.Second // refresh tokens live 2×
	c := dgraphtest.Start(t, dgraphtest.Config{TokenTTL: "3s"})
	s := open(t, c.Options(dgraphtest.Install()))
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	devices := s.Tenant("acme").Devices()
	if _, err := devices.Create(ctx, device("d1", "Boiler")); err != nil {
		t.Fatal(err)
	}
	// The guardian's session renews its tokens the same way, through a
	// gRPC call (Ping) or an /admin one, whichever comes first.
	for i, step := range []struct {
		name  string
		sleep time.Duration
		admin bool // an /admin call before any galaxy gRPC call
	}{
		{"access token expired", ttl + time.Second, false},
		{"refresh token expired", 2*ttl + time.Second, true},
	} {
		time.Sleep(step.sleep)
		t.Run(step.name, func(t *testing.T) {
			if step.admin {
				if name, err := s.CurrentAdminUser(ctx); err != nil || name != "groot" {
					t.Errorf("/admin getCurrentUser = %q, %v; want groot", name, err)
				}
				if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "late"}); err != nil {
					t.Errorf("CreateTenant: %v", err)
				}
			}
			if d, err := devices.Get(ctx, "d1"); err != nil || d.Name != "Boiler" {
				t.Errorf("Get: %+v, %v", d, err)
			}
			if _, err := devices.Create(ctx, device(fmt.Sprintf("n%d", i), "New")); err != nil {
				t.Errorf("Create: %v", err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

// TestOutage checks what callers see while the cluster is down — a prompt
// graph.ErrUnavailable, not a hang — and that the same store recovers by
// itself when the cluster is back.
func TestOutage(t *testing.T) {
	t.Parallel()
	c := dgraphtest.Start(t, dgraphtest.Config{})
	s := open(t, c.Options(dgraphtest.Install()))
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	devices := s.Tenant("acme").Devices()
	want, err := devices.Create(ctx, device("d1", "Boiler"))
	if err != nil {
		t.Fatal(err)
	}

	c.Stop()
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := devices.Get(ctx, "d1"); return err }},
		{"Create", func(ctx context.Context) error { _, err := devices.Create(ctx, device("d2", "Pump")); return err }},
		{"List", func(ctx context.Context) error { _, err := devices.List(ctx); return err }},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
		{"ListTenants", func(ctx context.Context) error { _, err := s.ListTenants(ctx); return err }},
		{"CreateTenant", func(ctx context.Context) error {
			_, err := s.CreateTenant(ctx, graph.Tenant{ID: "other"})
			return err
		}},
		{"RecordSeen", func(ctx context.Context) error {
			return s.RecordSeen(ctx, []graph.Seen{{Tenant: "acme", Device: "d1", At: time.Now()}})
		}},
		{"a tenant never used", func(ctx context.Context) error { _, err := s.Tenant("ghost").Devices().Get(ctx, "d1"); return err }},
	}
	const deadline, prompt = 10 * time.Second, 5 * time.Second
	t.Run("down", func(t *testing.T) {
		for _, tc := range calls {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), deadline)
				defer cancel()
				start := time.Now()
				err := tc.call(ctx)
				took := time.Since(start)
				if !errors.Is(err, graph.ErrUnavailable) {
					t.Errorf("got %v, want an error that wraps graph.ErrUnavailable", err)
				}
				if took > prompt {
					t.Errorf("took %s to fail, want at most %s", took.Round(time.Millisecond), prompt)
				}
			})
		}
	})

	c.Start(t)
	t.Run("back", func(t *testing.T) {
		start := time.Now()
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			err := s.Ping(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("Ping still fails 30 s after the cluster came back: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("Ping succeeded %s after the cluster was healthy", time.Since(start).Round(time.Millisecond))
		got, err := devices.Get(ctx, "d1")
		if err != nil {
			t.Fatalf("Get after the outage: %v", err)
		}
		if got.Name != want.Name || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("Get after the outage = %+v, want %+v", got, want)
		}
		if _, err := devices.Create(ctx, device("d2", "Pump")); err != nil {
			t.Errorf("Create after the outage: %v", err)
		}
		if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "other"}); err != nil {
			t.Errorf("CreateTenant after the outage: %v", err)
		}
	})
}
