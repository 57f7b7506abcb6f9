package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// Run runs the conformance suite against one backend.
//
// open returns a new, empty store (no tenants, no settings) for one test; it
// registers t.Cleanup for whatever it creates besides the store (folders,
// servers). The suite closes every store it is given, once, except that one
// subtest checks that a second Close does not panic.
//
// reopen closes old and returns a store on the same data, as a process
// restart would. A backend without a restart notion passes nil, and the
// subtests that need it are skipped with a message.
func Run(t *testing.T, open func(t *testing.T) graph.Store, reopen func(t *testing.T, old graph.Store) graph.Store) {
	t.Helper()
	if open == nil {
		t.Fatal("storetest: open is nil")
	}
	h := harness{open: open, reopen: reopen}
	t.Run("tenants", h.testTenants)
	t.Run("devices", func(t *testing.T) { runKind(t, h, deviceKind()) })
	t.Run("junctions", func(t *testing.T) { runKind(t, h, junctionKind()) })
	t.Run("plugins", func(t *testing.T) { runKind(t, h, pluginKind()) })
	t.Run("keys", func(t *testing.T) { runKind(t, h, apiKeyKind()) })
	t.Run("releases", func(t *testing.T) { runKind(t, h, releaseKind()) })
	t.Run("rollouts", func(t *testing.T) { runKind(t, h, rolloutKind()) })
	t.Run("firmware_histories", func(t *testing.T) { runKind(t, h, firmwareHistoryKind()) })
	t.Run("delete_tenant_cascades", h.testDeleteTenantCascades)
	t.Run("record_seen", h.testRecordSeen)
	t.Run("settings", h.testSettings)
	t.Run("concurrent_writers", h.testConcurrentWriters)
	t.Run("survives_restart", h.testRestart)
	t.Run("ping", h.testPing)
	t.Run("after_close", h.testAfterClose)
}

type harness struct {
	open   func(t *testing.T) graph.Store
	reopen func(t *testing.T, old graph.Store) graph.Store
}

// handle is a store the suite closes at the end of the test unless it was
// closed (or handed to reopen) before.
type handle struct {
	graph.Store
	closed bool
}

// fresh opens a store, checks that it is empty and closes it when the test
// ends.
func (h harness) fresh(t *testing.T) *handle {
	t.Helper()
	s := h.open(t)
	if s == nil {
		t.Fatal("storetest: open returned a nil store")
	}
	hd := h.track(t, s)
	tenants, err := s.ListTenants(t.Context())
	if err != nil {
		t.Fatalf("ListTenants on a new store: %v", err)
	}
	if len(tenants) != 0 {
		t.Fatalf("storetest: open must return an empty store, this one has %d tenants", len(tenants))
	}
	return hd
}

func (h harness) track(t *testing.T, s graph.Store) *handle {
	t.Helper()
	hd := &handle{Store: s}
	t.Cleanup(func() {
		if !hd.closed {
			if err := hd.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return hd
}

// restart hands hd to reopen and returns the store on the same data.
func (h harness) restart(t *testing.T, hd *handle) *handle {
	t.Helper()
	hd.closed = true
	s := h.reopen(t, hd.Store)
	if s == nil {
		t.Fatal("storetest: reopen returned a nil store")
	}
	return h.track(t, s)
}

// createTenants creates tenants with the given ids.
func createTenants(t *testing.T, s graph.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.CreateTenant(t.Context(), graph.Tenant{ID: id, Name: "Tenant " + id}); err != nil {
			t.Fatalf("CreateTenant(%q): %v", id, err)
		}
	}
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one that wraps %q", what, err, target)
	}
}

// wantInvalid fails the test unless err is an *graph.InvalidError for field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ie *graph.InvalidError
	if !errors.As(err, &ie) {
		t.Errorf("%s: got error %v, want a *graph.InvalidError for %q", what, err, field)
		return
	}
	if ie.Field != field {
		t.Errorf("%s: InvalidError names field %q (%v), want %q", what, ie.Field, err, field)
	}
}

// wantNear fails the test unless at lies within a second of [from, to]:
// backends may store time with less than nanosecond precision.
func wantNear(t *testing.T, what string, at, from, to time.Time) {
	t.Helper()
	if at.Before(from.Add(-time.Second)) || at.After(to.Add(time.Second)) {
		t.Errorf("%s = %v, want a time between %v and %v", what, at, from, to)
	}
}

// canon is the JSON form of v with every timestamp in UTC, so that records
// compare equal whatever time zone or nil-versus-empty choice a backend makes
// for fields the JSON form omits.
func canon(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	out, err := json.Marshal(utcTimes(tree))
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	return string(out)
}

func utcTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = utcTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = utcTimes(e)
		}
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return ts.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// wantSame fails the test unless got and want have the same canonical form.
func wantSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := canon(t, got), canon(t, want); g != w {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

// pause lets the clock advance so that a later write gets a later UpdatedAt
// even on a backend that keeps milliseconds.
func pause() { time.Sleep(3 * time.Millisecond) }

func (h harness) testTenants(t *testing.T) {
	t.Run("lifecycle", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		before := time.Now()
		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		created := map[string]graph.Tenant{}
		for _, id := range []string{"beta", "alpha", "gamma"} {
			got, err := s.CreateTenant(ctx, graph.Tenant{ID: id, Name: "Tenant " + id, CreatedAt: old, UpdatedAt: old})
			if err != nil {
				t.Fatalf("CreateTenant(%q): %v", id, err)
			}
			after := time.Now()
			if got.ID != id || got.Name != "Tenant "+id {
				t.Errorf("CreateTenant(%q) returned %+v", id, got)
			}
			wantNear(t, "created_at", got.CreatedAt, before, after)
			wantNear(t, "updated_at", got.UpdatedAt, before, after)
			if got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("updated_at %v is before created_at %v", got.UpdatedAt, got.CreatedAt)
			}
			created[id] = got
		}
		for id, want := range created {
			got, err := s.GetTenant(ctx, id)
			if err != nil {
				t.Fatalf("GetTenant(%q): %v", id, err)
			}
			wantSame(t, "GetTenant("+id+")", got, want)
		}
		list, err := s.ListTenants(ctx)
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		slices.SortFunc(list, func(a, b graph.Tenant) int { return strings.Compare(a.ID, b.ID) })
		wantSame(t, "ListTenants", list, []graph.Tenant{created["alpha"], created["beta"], created["gamma"]})

		pause()
		upd := created["alpha"]
		upd.Name = "Renamed"
		upd.CreatedAt = old
		got, err := s.UpdateTenant(ctx, upd)
		if err != nil {
			t.Fatalf("UpdateTenant: %v", err)
		}
		if got.Name != "Renamed" {
			t.Errorf("UpdateTenant returned name %q, want %q", got.Name, "Renamed")
		}
		if !got.CreatedAt.Equal(created["alpha"].CreatedAt) {
			t.Errorf("UpdateTenant changed created_at from %v to %v", created["alpha"].CreatedAt, got.CreatedAt)
		}
		if !got.UpdatedAt.After(created["alpha"].UpdatedAt) {
			t.Errorf("UpdateTenant: updated_at %v is not after %v", got.UpdatedAt, created["alpha"].UpdatedAt)
		}
		stored, err := s.GetTenant(ctx, "alpha")
		if err != nil {
			t.Fatalf("GetTenant after update: %v", err)
		}
		wantSame(t, "GetTenant after update", stored, got)

		if err := s.DeleteTenant(ctx, "beta"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		_, err = s.GetTenant(ctx, "beta")
		wantErr(t, "GetTenant of a deleted tenant", err, graph.ErrNotFound)
		wantErr(t, "DeleteTenant twice", s.DeleteTenant(ctx, "beta"), graph.ErrNotFound)
		list, err = s.ListTenants(ctx)
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		slices.SortFunc(list, func(a, b graph.Tenant) int { return strings.Compare(a.ID, b.ID) })
		wantSame(t, "ListTenants after delete", list, []graph.Tenant{got, created["gamma"]})
	})

	t.Run("conflict", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		first, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme", Name: "first"})
		if err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		_, err = s.CreateTenant(ctx, graph.Tenant{ID: "acme", Name: "second"})
		wantErr(t, "CreateTenant of an existing id", err, graph.ErrConflict)
		got, err := s.GetTenant(ctx, "acme")
		if err != nil {
			t.Fatalf("GetTenant: %v", err)
		}
		wantSame(t, "tenant after a refused create", got, first)
	})

	t.Run("invalid", func(t *testing.T) {
		for _, tc := range []struct{ name, id string }{
			{"empty", ""},
			{"upper case", "Acme"},
			{"leading dash", "-acme"},
			{"slash", "a/b"},
			{"space", "a b"},
			{"64 characters", strings.Repeat("a", 64)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				_, err := s.CreateTenant(t.Context(), graph.Tenant{ID: tc.id})
				wantInvalid(t, "CreateTenant", err, "id")
				list, err := s.ListTenants(t.Context())
				if err != nil {
					t.Fatalf("ListTenants: %v", err)
				}
				if len(list) != 0 {
					t.Errorf("a refused tenant was stored: %+v", list)
				}
			})
		}
		t.Run("update", func(t *testing.T) {
			s := h.fresh(t)
			_, err := s.UpdateTenant(t.Context(), graph.Tenant{ID: "Not Valid"})
			wantInvalid(t, "UpdateTenant", err, "id")
		})
		t.Run("63 characters is fine", func(t *testing.T) {
			s := h.fresh(t)
			if _, err := s.CreateTenant(t.Context(), graph.Tenant{ID: strings.Repeat("a", 63)}); err != nil {
				t.Errorf("CreateTenant with a 63-character id: %v", err)
			}
		})
	})

	t.Run("missing", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		_, err := s.GetTenant(ctx, "ghost")
		wantErr(t, "GetTenant", err, graph.ErrNotFound)
		_, err = s.GetTenant(ctx, "")
		wantErr(t, "GetTenant of an empty id", err, graph.ErrNotFound)
		_, err = s.UpdateTenant(ctx, graph.Tenant{ID: "ghost", Name: "x"})
		wantErr(t, "UpdateTenant", err, graph.ErrNotFound)
		wantErr(t, "DeleteTenant", s.DeleteTenant(ctx, "ghost"), graph.ErrNotFound)
		_, err = s.GetTenant(ctx, "ghost")
		wantErr(t, "GetTenant after a refused update", err, graph.ErrNotFound)
	})
}

// anyKind is a kind with its record type erased, for the tests that go
// over every kind of a tenant at once.
type anyKind struct {
	name   string // plural, for messages: "devices"
	create func(ctx context.Context, sc graph.Scope, id string) (any, error)
	get    func(ctx context.Context, sc graph.Scope, id string) (any, error)
	list   func(ctx context.Context, sc graph.Scope) ([]any, error)
	delete func(ctx context.Context, sc graph.Scope, id string) error
}

func erase[T any, P interface {
	*T
	graph.Record
}](name string, k kind[T, P]) anyKind {
	return anyKind{
		name: name,
		create: func(ctx context.Context, sc graph.Scope, id string) (any, error) {
			rec, err := k.coll(sc).Create(ctx, k.valid(id))
			return rec, err
		},
		get: func(ctx context.Context, sc graph.Scope, id string) (any, error) {
			rec, err := k.coll(sc).Get(ctx, id)
			return rec, err
		},
		list: func(ctx context.Context, sc graph.Scope) ([]any, error) {
			list, err := k.coll(sc).List(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]any, len(list))
			for i, rec := range list {
				out[i] = rec
			}
			return out, nil
		},
		delete: func(ctx context.Context, sc graph.Scope, id string) error {
			return k.coll(sc).Delete(ctx, id)
		},
	}
}

// tenantKinds is every kind of record a tenant holds.
func tenantKinds() []anyKind {
	return []anyKind{
		erase("devices", deviceKind()),
		erase("junctions", junctionKind()),
		erase("plugin instances", pluginKind()),
		erase("API keys", apiKeyKind()),
		erase("firmware releases", releaseKind()),
		erase("rollouts", rolloutKind()),
		erase("firmware histories", firmwareHistoryKind()),
	}
}

func (h harness) testDeleteTenantCascades(t *testing.T) {
	s := h.fresh(t)
	ctx := t.Context()
	createTenants(t, s, "a", "b")
	kinds := tenantKinds()
	keep := map[string]any{} // b's record of each kind, by kind name
	for _, tenant := range []string{"a", "b"} {
		for _, k := range kinds {
			rec, err := k.create(ctx, s.Tenant(tenant), "x")
			if err != nil {
				t.Fatalf("%s: create in %q: %v", k.name, tenant, err)
			}
			if tenant == "b" {
				keep[k.name] = rec
			}
		}
	}
	if err := s.DeleteTenant(ctx, "a"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	a := s.Tenant("a")
	for _, k := range kinds {
		_, err := k.list(ctx, a)
		wantErr(t, k.name+" of a deleted tenant: List", err, graph.ErrNotFound)
		_, err = k.get(ctx, a, "x")
		wantErr(t, k.name+" of a deleted tenant: Get", err, graph.ErrNotFound)
	}

	// A tenant created again with the same id starts empty.
	createTenants(t, s, "a")
	for _, k := range kinds {
		list, err := k.list(ctx, a)
		if err != nil {
			t.Fatalf("%s of the re-created tenant: %v", k.name, err)
		}
		if len(list) != 0 {
			t.Errorf("re-created tenant has %d %s from before", len(list), k.name)
		}
		_, err = k.get(ctx, a, "x")
		wantErr(t, k.name+" of the re-created tenant: Get", err, graph.ErrNotFound)
	}

	b := s.Tenant("b")
	for _, k := range kinds {
		got, err := k.get(ctx, b, "x")
		if err != nil {
			t.Fatalf("%s of the other tenant: %v", k.name, err)
		}
		wantSame(t, k.name+" of the other tenant", got, keep[k.name])
	}
}

func mustList[T any](t *testing.T, c graph.Collection[T]) []T {
	t.Helper()
	list, err := c.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return list
}

func (h harness) testRecordSeen(t *testing.T) {
	s := h.fresh(t)
	ctx := t.Context()
	createTenants(t, s, "a", "b")
	dk := deviceKind()
	created := map[string]graph.Device{}
	for _, key := range []string{"a/d1", "a/d2", "a/d3", "b/d1"} {
		tenant, id, _ := strings.Cut(key, "/")
		rec := dk.valid(id)
		rec.Firmware = "0.9.0"
		d, err := s.Tenant(tenant).Devices().Create(ctx, rec)
		if err != nil {
			t.Fatalf("create %s: %v", key, err)
		}
		created[key] = d
	}

	if err := s.RecordSeen(ctx, nil); err != nil {
		t.Errorf("RecordSeen of an empty batch: %v", err)
	}
	t1 := time.Date(2030, 1, 2, 3, 4, 5, 123_000_000, time.UTC)
	t2 := t1.Add(90 * time.Second)
	t3 := t1.Add(time.Hour)
	batch := []graph.Seen{
		{Tenant: "a", Device: "d1", At: t1, Firmware: "1.2.0"},
		{Tenant: "a", Device: "ghost", At: t1, Firmware: "6.6.6"},
		{Tenant: "a", Device: "d2", At: t2},
		{Tenant: "nobody", Device: "d1", At: t1, Firmware: "6.6.6"},
		{Tenant: "b", Device: "d1", At: t3, Firmware: "2.0.0"},
	}
	if err := s.RecordSeen(ctx, batch); err != nil {
		t.Fatalf("RecordSeen: %v", err)
	}
	for _, tc := range []struct {
		key      string
		lastSeen time.Time
		firmware string
	}{
		{"a/d1", t1, "1.2.0"},
		{"a/d2", t2, "0.9.0"},          // empty firmware leaves it unchanged
		{"a/d3", time.Time{}, "0.9.0"}, // not in the batch
		{"b/d1", t3, "2.0.0"},          // same id, other tenant
	} {
		tenant, id, _ := strings.Cut(tc.key, "/")
		got, err := s.Tenant(tenant).Devices().Get(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", tc.key, err)
		}
		if !got.LastSeen.Equal(tc.lastSeen) {
			t.Errorf("%s: last_seen = %v, want %v", tc.key, got.LastSeen, tc.lastSeen)
		}
		if got.Firmware != tc.firmware {
			t.Errorf("%s: firmware = %q, want %q", tc.key, got.Firmware, tc.firmware)
		}
		want := created[tc.key]
		want.LastSeen, want.Firmware = got.LastSeen, got.Firmware
		wantSame(t, tc.key+" other fields (UpdatedAt included: RecordSeen is not an edit)", got, want)
	}

	// An update built from a read older than the sighting keeps the sighting.
	stale := created["a/d1"]
	stale.Name = "renamed"
	upd, err := s.Tenant("a").Devices().Update(ctx, stale)
	if err != nil {
		t.Fatalf("update from a stale read: %v", err)
	}
	if upd.Name != "renamed" || !upd.LastSeen.Equal(t1) || upd.Firmware != "1.2.0" {
		t.Errorf("update from a stale read: name %q, last_seen %v, firmware %q; want renamed, %v, 1.2.0", upd.Name, upd.LastSeen, upd.Firmware, t1)
	}
	_, err = s.Tenant("a").Devices().Get(ctx, "ghost")
	wantErr(t, "RecordSeen of an unknown device must not create it", err, graph.ErrNotFound)
	_, err = s.GetTenant(ctx, "nobody")
	wantErr(t, "RecordSeen of an unknown tenant must not create it", err, graph.ErrNotFound)

	only := []graph.Seen{{Tenant: "a", Device: "gone", At: t1}, {Tenant: "zz", Device: "d1", At: t1}}
	if err := s.RecordSeen(ctx, only); err != nil {
		t.Errorf("RecordSeen of unknown devices only: %v", err)
	}
}

func (h harness) testSettings(t *testing.T) {
	s := h.fresh(t)
	ctx := t.Context()
	_, err := s.GetSetting(ctx, "operator_key_hash")
	wantErr(t, "GetSetting of a key never set", err, graph.ErrNotFound)

	value := []byte("first value")
	if err := s.PutSetting(ctx, "operator_key_hash", value); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	value[0] = 'X' // the caller's slice is not the stored value
	got, err := s.GetSetting(ctx, "operator_key_hash")
	if err != nil {
		t.Fatalf("GetSetting: %v", err)
	}
	if string(got) != "first value" {
		t.Errorf("GetSetting = %q, want %q", got, "first value")
	}
	got[0] = 'Y' // nor is the returned one
	if again, err := s.GetSetting(ctx, "operator_key_hash"); err != nil || string(again) != "first value" {
		t.Errorf("GetSetting after mutating a returned value = %q, %v; want %q", again, err, "first value")
	}

	if err := s.PutSetting(ctx, "operator_key_hash", []byte("second")); err != nil {
		t.Fatalf("PutSetting overwrite: %v", err)
	}
	if err := s.PutSetting(ctx, "other", []byte{0, 1, 2, 255}); err != nil {
		t.Fatalf("PutSetting binary: %v", err)
	}
	for key, want := range map[string]string{"operator_key_hash": "second", "other": "\x00\x01\x02\xff"} {
		got, err := s.GetSetting(ctx, key)
		if err != nil || string(got) != want {
			t.Errorf("GetSetting(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	// Settings live outside every tenant.
	tenants, err := s.ListTenants(ctx)
	if err != nil || len(tenants) != 0 {
		t.Errorf("settings showed up as tenants: %+v, %v", tenants, err)
	}
}

func (h harness) testConcurrentWriters(t *testing.T) {
	const writers, each = 8, 50
	s := h.fresh(t)
	ctx := t.Context()
	createTenants(t, s, "busy")
	devices := s.Tenant("busy").Devices()
	dk := deviceKind()

	errs := make(chan error, writers*each)
	contended := make(chan error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			_, err := devices.Create(ctx, dk.valid("contended"))
			contended <- err
			for i := range each {
				id := fmt.Sprintf("w%d-%03d", w, i)
				if _, err := devices.Create(ctx, dk.valid(id)); err != nil {
					errs <- fmt.Errorf("create %s: %w", id, err)
				}
			}
		})
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("concurrent writers did not finish within a minute")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	won := 0
	for range writers {
		switch err := <-contended; {
		case err == nil:
			won++
		case errors.Is(err, graph.ErrConflict):
		default:
			t.Errorf("create of a contended id: %v, want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers created the same id, want exactly 1", won)
	}
	list := mustList(t, devices)
	if len(list) != writers*each+1 {
		t.Fatalf("List has %d devices, want %d", len(list), writers*each+1)
	}
	seen := map[string]bool{}
	for _, d := range list {
		seen[d.ID] = true
	}
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("w%d-%03d", w, i); !seen[id] {
				t.Errorf("device %s is missing", id)
			}
		}
	}
}

func (h harness) testRestart(t *testing.T) {
	if h.reopen == nil {
		t.Skip("storetest: this backend passed no reopen, so data surviving a restart is not checked")
	}
	s := h.fresh(t)
	ctx := t.Context()
	createTenants(t, s, "a", "b")
	dk := deviceKind()
	a := s.Tenant("a")
	d, err := a.Devices().Create(ctx, dk.valid("d1"))
	if err != nil {
		t.Fatalf("create device: %v", err)
	}
	if _, err := a.Devices().Create(ctx, dk.valid("d2")); err != nil {
		t.Fatalf("create device: %v", err)
	}
	if err := a.Devices().Delete(ctx, "d2"); err != nil {
		t.Fatalf("delete device: %v", err)
	}
	// One record of every other kind (devices are checked with their
	// sighting), and one created and deleted again.
	var others []anyKind
	kept := map[string]any{}
	for _, k := range tenantKinds() {
		if k.name == "devices" {
			continue
		}
		others = append(others, k)
		rec, err := k.create(ctx, a, "r1")
		if err != nil {
			t.Fatalf("%s: create: %v", k.name, err)
		}
		kept[k.name] = rec
		if _, err := k.create(ctx, a, "r2"); err != nil {
			t.Fatalf("%s: create: %v", k.name, err)
		}
		if err := k.delete(ctx, a, "r2"); err != nil {
			t.Fatalf("%s: delete: %v", k.name, err)
		}
	}
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := s.RecordSeen(ctx, []graph.Seen{{Tenant: "a", Device: "d1", At: at, Firmware: "3.1.4"}}); err != nil {
		t.Fatalf("RecordSeen: %v", err)
	}
	if d, err = a.Devices().Get(ctx, "d1"); err != nil {
		t.Fatalf("get device: %v", err)
	}
	if err := s.PutSetting(ctx, "operator_key_hash", []byte("kept")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	tenants, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatalf("ListTenants: %v", err)
	}

	s2 := h.restart(t, s)
	a = s2.Tenant("a")
	gotTenants, err := s2.ListTenants(ctx)
	if err != nil {
		t.Fatalf("ListTenants after restart: %v", err)
	}
	byID := func(x, y graph.Tenant) int { return strings.Compare(x.ID, y.ID) }
	slices.SortFunc(tenants, byID)
	slices.SortFunc(gotTenants, byID)
	wantSame(t, "tenants after restart", gotTenants, tenants)
	wantSame(t, "devices after restart", mustList(t, a.Devices()), []graph.Device{d})
	for _, k := range others {
		list, err := k.list(ctx, a)
		if err != nil {
			t.Fatalf("%s after restart: %v", k.name, err)
		}
		wantSame(t, k.name+" after restart", list, []any{kept[k.name]})
	}
	if got, err := s2.GetSetting(ctx, "operator_key_hash"); err != nil || string(got) != "kept" {
		t.Errorf("setting after restart = %q, %v; want %q", got, err, "kept")
	}
	// The reopened store takes writes.
	if _, err := a.Devices().Create(ctx, dk.valid("d2")); err != nil {
		t.Errorf("create after restart: %v", err)
	}
	for _, k := range others {
		if _, err := k.create(ctx, a, "r2"); err != nil {
			t.Errorf("%s: create after restart: %v", k.name, err)
		}
	}
}

func (h harness) testPing(t *testing.T) {
	s := h.fresh(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping on an open store: %v", err)
	}
}

func (h harness) testAfterClose(t *testing.T) {
	s := h.fresh(t)
	ctx := t.Context()
	createTenants(t, s, "a")
	dk := deviceKind()
	if _, err := s.Tenant("a").Devices().Create(ctx, dk.valid("d1")); err != nil {
		t.Fatalf("create device: %v", err)
	}
	s.closed = true
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sc := s.Tenant("a")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"CreateTenant", func() error { _, err := s.CreateTenant(ctx, graph.Tenant{ID: "b"}); return err }},
		{"GetTenant", func() error { _, err := s.GetTenant(ctx, "a"); return err }},
		{"ListTenants", func() error { _, err := s.ListTenants(ctx); return err }},
		{"UpdateTenant", func() error { _, err := s.UpdateTenant(ctx, graph.Tenant{ID: "a"}); return err }},
		{"DeleteTenant", func() error { return s.DeleteTenant(ctx, "a") }},
		{"Devices.Create", func() error { _, err := sc.Devices().Create(ctx, dk.valid("d2")); return err }},
		{"Devices.Get", func() error { _, err := sc.Devices().Get(ctx, "d1"); return err }},
		{"Devices.List", func() error { _, err := sc.Devices().List(ctx); return err }},
		{"Devices.Update", func() error { _, err := sc.Devices().Update(ctx, dk.valid("d1")); return err }},
		{"Devices.Delete", func() error { return sc.Devices().Delete(ctx, "d1") }},
		{"Junctions.List", func() error { _, err := sc.Junctions().List(ctx); return err }},
		{"Plugins.List", func() error { _, err := sc.Plugins().List(ctx); return err }},
		{"Keys.List", func() error { _, err := sc.Keys().List(ctx); return err }},
		{"Releases.List", func() error { _, err := sc.Releases().List(ctx); return err }},
		{"Rollouts.List", func() error { _, err := sc.Rollouts().List(ctx); return err }},
		{"FirmwareHistories.List", func() error { _, err := sc.FirmwareHistories().List(ctx); return err }},
		{"RecordSeen", func() error {
			return s.RecordSeen(ctx, []graph.Seen{{Tenant: "a", Device: "d1", At: time.Now()}})
		}},
		{"GetSetting", func() error { _, err := s.GetSetting(ctx, "k"); return err }},
		{"PutSetting", func() error { return s.PutSetting(ctx, "k", []byte("v")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s after Close panicked: %v", tc.name, p)
				}
			}()
			if err := tc.call(); err == nil {
				t.Errorf("%s after Close returned no error", tc.name)
			}
		})
	}
	t.Run("Close again", func(t *testing.T) {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("second Close panicked: %v", p)
			}
		}()
		_ = s.Close() // an error is fine, a panic is not
	})
}
