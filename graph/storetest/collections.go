package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// kind describes one tenant-scoped record type so that devices, junctions,
// plugin instances, API keys, firmware releases, rollouts and firmware
// histories run the very same tests.
type kind[T any, P interface {
	*T
	graph.Record
}] struct {
	coll func(graph.Scope) graph.Collection[T]
	// valid returns a valid record with id and every optional field set.
	valid func(id string) T
	// change edits a field other than the id, as an update would.
	change func(*T)
	// scribble mutates every map and slice of the record in place.
	scribble func(*T)
	// invalid breaks one field of a valid record; Validate names field.
	invalid []invalidCase[T]
}

type invalidCase[T any] struct {
	name  string
	field string
	spoil func(*T)
}

func meta[T any, P interface {
	*T
	graph.Record
}](rec *T) *graph.Meta {
	return P(rec).RecordMeta()
}

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func deviceKind() kind[graph.Device, *graph.Device] {
	return kind[graph.Device, *graph.Device]{
		coll: func(s graph.Scope) graph.Collection[graph.Device] { return s.Devices() },
		valid: func(id string) graph.Device {
			return graph.Device{
				Meta:      graph.Meta{ID: id},
				Name:      "Kitchen display " + id,
				Model:     "esp32-s3",
				Labels:    map[string]string{"room": "kitchen", "floor": "1"},
				TokenHash: sum("token of " + id),
				Firmware:  "1.0.0",
			}
		},
		change: func(d *graph.Device) {
			d.Name = "Hall display"
			d.Revoked = true
			d.Labels = map[string]string{"room": "hall"}
			d.TokenHash = sum("rotated")
		},
		scribble: func(d *graph.Device) {
			d.Labels["room"] = "scribbled"
			d.Labels["extra"] = "scribbled"
			d.TokenHash[0] ^= 0xff
		},
		invalid: []invalidCase[graph.Device]{
			{"empty id", "id", func(d *graph.Device) { d.ID = "" }},
			{"upper-case id", "id", func(d *graph.Device) { d.ID = "Kitchen" }},
			{"64-character id", "id", func(d *graph.Device) { d.ID = strings.Repeat("d", 64) }},
			{"no token hash", "token_hash", func(d *graph.Device) { d.TokenHash = nil }},
			{"short token hash", "token_hash", func(d *graph.Device) { d.TokenHash = d.TokenHash[:31] }},
			{"bad label key", "labels", func(d *graph.Device) { d.Labels["Room"] = "x" }},
			{"long label value", "labels.room", func(d *graph.Device) { d.Labels["room"] = strings.Repeat("v", 257) }},
		},
	}
}

func junctionKind() kind[graph.Junction, *graph.Junction] {
	return kind[graph.Junction, *graph.Junction]{
		coll: func(s graph.Scope) graph.Collection[graph.Junction] { return s.Junctions() },
		valid: func(id string) graph.Junction {
			return graph.Junction{
				Meta:       graph.Meta{ID: id},
				Name:       "Temperatures " + id,
				Enabled:    true,
				Source:     "device.*.temp",
				Transforms: []string{"scale", "round"},
				Targets: []graph.Target{
					{Device: "panel"},
					{Selector: map[string]string{"room": "kitchen"}},
					{Broker: "mqtt-out"},
				},
			}
		},
		change: func(j *graph.Junction) {
			j.Enabled = false
			j.Source = "sensors.>"
			j.Transforms = []string{"round"}
			j.Targets = []graph.Target{{Broker: "webhook"}}
		},
		scribble: func(j *graph.Junction) {
			j.Transforms[0] = "scribbled"
			j.Targets[0].Device = "scribbled"
			j.Targets[1].Selector["room"] = "scribbled"
		},
		invalid: []invalidCase[graph.Junction]{
			{"empty id", "id", func(j *graph.Junction) { j.ID = "" }},
			{"no source", "source", func(j *graph.Junction) { j.Source = "" }},
			{"'>' in the middle", "source", func(j *graph.Junction) { j.Source = "a.>.b" }},
			{"bad transform id", "transforms[1]", func(j *graph.Junction) { j.Transforms[1] = "Bad" }},
			{"no targets", "targets", func(j *graph.Junction) { j.Targets = nil }},
			{"two destinations", "targets[0]", func(j *graph.Junction) { j.Targets[0].Broker = "b" }},
			{"no destination", "targets[2]", func(j *graph.Junction) { j.Targets[2] = graph.Target{} }},
			{"empty selector", "targets[1].selector", func(j *graph.Junction) { j.Targets[1].Selector = map[string]string{} }},
			{"bad device id", "targets[0].device", func(j *graph.Junction) { j.Targets[0].Device = "Panel" }},
		},
	}
}

func pluginKind() kind[graph.PluginInstance, *graph.PluginInstance] {
	return kind[graph.PluginInstance, *graph.PluginInstance]{
		coll: func(s graph.Scope) graph.Collection[graph.PluginInstance] { return s.Plugins() },
		valid: func(id string) graph.PluginInstance {
			return graph.PluginInstance{
				Meta:    graph.Meta{ID: id},
				Use:     "transforms.scale",
				Runtime: "wasm",
				Module:  hex.EncodeToString(sum("module of " + id)),
				Config:  []byte(`{"factor":2}`),
				Limits:  &graph.PluginLimits{Memory: "16MiB", CallTimeout: "100ms", PoolSize: 2},
				HTTPFetch: &graph.PluginHTTPFetch{Hosts: []string{"api.example", "*.lan:8080"}, Timeout: "5s",
					MaxResponse: "1MiB", MaxRequest: "64KiB"},
			}
		},
		change: func(p *graph.PluginInstance) {
			p.Runtime = "builtin"
			p.Module = ""
			p.Config = []byte(`{"factor":3}`)
			p.Limits, p.HTTPFetch = nil, nil
			p.Use, p.Interval, p.Env = "collectors.system", "30s", []string{"HOME"}
		},
		scribble: func(p *graph.PluginInstance) {
			p.Config[0] = 'X'
		},
		invalid: []invalidCase[graph.PluginInstance]{
			{"empty id", "id", func(p *graph.PluginInstance) { p.ID = "" }},
			{"use without kind", "use", func(p *graph.PluginInstance) { p.Use = "scale" }},
			{"unknown kind", "use", func(p *graph.PluginInstance) { p.Use = "sinks.scale" }},
			{"no runtime", "runtime", func(p *graph.PluginInstance) { p.Runtime = "" }},
			{"unknown runtime", "runtime", func(p *graph.PluginInstance) { p.Runtime = "docker" }},
		},
	}
}

func apiKeyKind() kind[graph.APIKey, *graph.APIKey] {
	return kind[graph.APIKey, *graph.APIKey]{
		coll: func(s graph.Scope) graph.Collection[graph.APIKey] { return s.Keys() },
		valid: func(id string) graph.APIKey {
			return graph.APIKey{Meta: graph.Meta{ID: id}, Name: "CI deploy " + id, KeyHash: sum("key of " + id)}
		},
		change: func(k *graph.APIKey) {
			k.Name = "rotated"
			k.KeyHash = sum("rotated")
		},
		scribble: func(k *graph.APIKey) {
			k.KeyHash[0] ^= 0xff
		},
		invalid: []invalidCase[graph.APIKey]{
			{"empty id", "id", func(k *graph.APIKey) { k.ID = "" }},
			{"upper-case id", "id", func(k *graph.APIKey) { k.ID = "Deploy" }},
			{"no key hash", "key_hash", func(k *graph.APIKey) { k.KeyHash = nil }},
			{"short key hash", "key_hash", func(k *graph.APIKey) { k.KeyHash = k.KeyHash[:31] }},
		},
	}
}

// firmwareTime is a timestamp inside a firmware record: UTC, with
// nanoseconds, so that a backend must keep it exactly.
func firmwareTime(day, nanos int) time.Time {
	return time.Date(2030, 3, day, 8, 30, 15, nanos, time.UTC)
}

func releaseKind() kind[graph.FirmwareRelease, *graph.FirmwareRelease] {
	return kind[graph.FirmwareRelease, *graph.FirmwareRelease]{
		coll: func(s graph.Scope) graph.Collection[graph.FirmwareRelease] { return s.Releases() },
		valid: func(id string) graph.FirmwareRelease {
			return graph.FirmwareRelease{
				Meta:       graph.Meta{ID: id},
				Model:      "esp32-s3",
				Version:    "1.4.0-rc.1+build.7",
				MinVersion: "1.2.0",
				Size:       1 << 20,
				SHA256:     hex.EncodeToString(sum("image of " + id)),
				Notes:      "Fixes the display flicker of " + id,
				Manifest:   `{"model":"esp32-s3","version":"1.4.0-rc.1+build.7","id":"` + id + `"}`,
				Signature:  "c2lnbmF0dXJlIG9mIHRoZSBtYW5pZmVzdA==",
				KeyID:      "release-2030",
			}
		},
		change: func(r *graph.FirmwareRelease) {
			r.MinVersion = ""
			r.Size = 2 << 20
			r.SHA256 = hex.EncodeToString(sum("rebuilt"))
			r.Notes = "Rebuilt"
			r.Manifest = `{"rebuilt":true}`
			r.Signature, r.KeyID = "cmVzaWduZWQ=", "release-2031"
		},
		// A release has no maps or slices to share.
		scribble: func(*graph.FirmwareRelease) {},
		invalid: []invalidCase[graph.FirmwareRelease]{
			{"empty id", "id", func(r *graph.FirmwareRelease) { r.ID = "" }},
			{"no model", "model", func(r *graph.FirmwareRelease) { r.Model = "" }},
			{"bad model", "model", func(r *graph.FirmwareRelease) { r.Model = "-esp32 s3" }},
			{"no version", "version", func(r *graph.FirmwareRelease) { r.Version = "" }},
			{"bad version characters", "version", func(r *graph.FirmwareRelease) { r.Version = "1.4.0 beta" }},
			{"bad min version", "min_version", func(r *graph.FirmwareRelease) { r.MinVersion = "1.2/0" }},
			{"size 0", "size", func(r *graph.FirmwareRelease) { r.Size = 0 }},
			{"negative size", "size", func(r *graph.FirmwareRelease) { r.Size = -1 }},
			{"upper-case sha256", "sha256", func(r *graph.FirmwareRelease) { r.SHA256 = strings.ToUpper(r.SHA256) }},
			{"short sha256", "sha256", func(r *graph.FirmwareRelease) { r.SHA256 = r.SHA256[:63] }},
			{"notes too long", "notes", func(r *graph.FirmwareRelease) { r.Notes = strings.Repeat("n", graph.MaxReleaseNotes+1) }},
			{"no manifest", "manifest", func(r *graph.FirmwareRelease) { r.Manifest = "" }},
			{"no signature", "signature", func(r *graph.FirmwareRelease) { r.Signature = "" }},
			{"no key id", "key_id", func(r *graph.FirmwareRelease) { r.KeyID = "" }},
		},
	}
}

func rolloutKind() kind[graph.Rollout, *graph.Rollout] {
	return kind[graph.Rollout, *graph.Rollout]{
		coll: func(s graph.Scope) graph.Collection[graph.Rollout] { return s.Rollouts() },
		valid: func(id string) graph.Rollout {
			return graph.Rollout{
				Meta:           graph.Meta{ID: id},
				Model:          "esp32-s3",
				Version:        "1.4.0",
				Selector:       map[string]string{"room": "kitchen", "floor": "1"},
				Percent:        25,
				State:          graph.RolloutActive,
				Reason:         "raised by the operator of " + id,
				MaxFailureRate: 0.05,
				MinResults:     10,
				ResultTimeout:  "30m",
				Stages: []graph.RolloutStage{
					{Percent: 5, StartedAt: firmwareTime(1, 0), Offered: 12, Installed: 11, Failed: 1},
					{Percent: 25, StartedAt: firmwareTime(2, 123_456_789), Offered: 40, Installed: 3},
				},
			}
		},
		change: func(r *graph.Rollout) {
			r.Selector = map[string]string{"room": "hall"}
			r.Percent = 50
			r.State, r.Reason = graph.RolloutHalted, "stage 3 failed 4 of 20"
			r.MaxFailureRate, r.MinResults, r.ResultTimeout = 0.1, 20, "1h"
			r.Stages = []graph.RolloutStage{
				{Percent: 5, StartedAt: firmwareTime(1, 0), Offered: 12, Installed: 12},
				{Percent: 25, StartedAt: firmwareTime(2, 123_456_789), Offered: 40, Installed: 40},
				{Percent: 50, StartedAt: firmwareTime(3, 999_999_999), Offered: 20, Installed: 16, Failed: 4},
			}
		},
		scribble: func(r *graph.Rollout) {
			r.Selector["room"] = "scribbled"
			r.Selector["extra"] = "scribbled"
			r.Stages[0].Offered = 999
			r.Stages[1].StartedAt = time.Time{}
		},
		invalid: []invalidCase[graph.Rollout]{
			{"empty id", "id", func(r *graph.Rollout) { r.ID = "" }},
			{"bad model", "model", func(r *graph.Rollout) { r.Model = "esp32/s3" }},
			{"bad version characters", "version", func(r *graph.Rollout) { r.Version = "v1.4.0!" }},
			{"bad selector key", "selector", func(r *graph.Rollout) { r.Selector["Room"] = "x" }},
			{"long selector value", "selector.room", func(r *graph.Rollout) { r.Selector["room"] = strings.Repeat("v", 257) }},
			{"percent 0", "percent", func(r *graph.Rollout) { r.Percent = 0 }},
			{"percent 101", "percent", func(r *graph.Rollout) { r.Percent = 101 }},
			{"no state", "state", func(r *graph.Rollout) { r.State = "" }},
			{"unknown state", "state", func(r *graph.Rollout) { r.State = "done" }},
			{"max failure rate 1.5", "max_failure_rate", func(r *graph.Rollout) { r.MaxFailureRate = 1.5 }},
			{"negative max failure rate", "max_failure_rate", func(r *graph.Rollout) { r.MaxFailureRate = -0.1 }},
			{"min results 0", "min_results", func(r *graph.Rollout) { r.MinResults = 0 }},
			{"result timeout not a duration", "result_timeout", func(r *graph.Rollout) { r.ResultTimeout = "soon" }},
			{"result timeout 0", "result_timeout", func(r *graph.Rollout) { r.ResultTimeout = "0s" }},
			{"no stages", "stages", func(r *graph.Rollout) { r.Stages = nil }},
			{"stage percent 0", "stages[1]", func(r *graph.Rollout) { r.Stages[1].Percent = 0 }},
			{"negative stage count", "stages[0]", func(r *graph.Rollout) { r.Stages[0].Failed = -1 }},
		},
	}
}

func firmwareHistoryKind() kind[graph.FirmwareHistory, *graph.FirmwareHistory] {
	return kind[graph.FirmwareHistory, *graph.FirmwareHistory]{
		coll: func(s graph.Scope) graph.Collection[graph.FirmwareHistory] { return s.FirmwareHistories() },
		valid: func(id string) graph.FirmwareHistory {
			return graph.FirmwareHistory{
				Meta: graph.Meta{ID: id},
				Events: []graph.FirmwareEvent{
					{Time: firmwareTime(1, 0), Rollout: "r1", From: "1.2.0", To: "1.4.0", Status: graph.FirmwareOffered},
					{Time: firmwareTime(1, 500_000_001), Rollout: "r1", From: "1.2.0", To: "1.4.0", Status: graph.FirmwareDownloading},
					{Time: firmwareTime(2, 42), Rollout: "r1", From: "1.2.0", To: "1.4.0", Status: graph.FirmwareFailed,
						Reason: "checksum mismatch on " + id},
				},
			}
		},
		change: func(h *graph.FirmwareHistory) {
			h.Events = []graph.FirmwareEvent{
				{Time: firmwareTime(3, 7), Rollout: "r2", From: "1.2.0", To: "1.4.1", Status: graph.FirmwareOffered},
				{Time: firmwareTime(4, 999_999_999), Rollout: "r2", From: "1.2.0", To: "1.4.1", Status: graph.FirmwareInstalled},
			}
		},
		scribble: func(h *graph.FirmwareHistory) {
			h.Events[0].Status = "scribbled"
			h.Events[1].Time = time.Time{}
		},
		invalid: []invalidCase[graph.FirmwareHistory]{
			{"empty id", "id", func(h *graph.FirmwareHistory) { h.ID = "" }},
			{"too many events", "events", func(h *graph.FirmwareHistory) {
				h.Events = slices.Repeat(h.Events[:1], graph.MaxFirmwareEvents+1)
			}},
			{"zero time", "events[0].time", func(h *graph.FirmwareHistory) { h.Events[0].Time = time.Time{} }},
			{"bad rollout id", "events[1].rollout", func(h *graph.FirmwareHistory) { h.Events[1].Rollout = "Rollout 1" }},
			{"no version offered", "events[0].to", func(h *graph.FirmwareHistory) { h.Events[0].To = "" }},
			{"bad version offered", "events[2].to", func(h *graph.FirmwareHistory) { h.Events[2].To = "1.4 final" }},
			{"long from version", "events[1].from", func(h *graph.FirmwareHistory) { h.Events[1].From = strings.Repeat("1", 65) }},
			{"no status", "events[0].status", func(h *graph.FirmwareHistory) { h.Events[0].Status = "" }},
			{"bad status", "events[1].status", func(h *graph.FirmwareHistory) { h.Events[1].Status = "rebooting" }},
			{"reason too long", "events[2].reason", func(h *graph.FirmwareHistory) {
				h.Events[2].Reason = strings.Repeat("r", graph.MaxFirmwareReason+1)
			}},
		},
	}
}

func runKind[T any, P interface {
	*T
	graph.Record
}](t *testing.T, h harness, k kind[T, P]) {
	t.Run("lifecycle", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "acme")
		c := k.coll(s.Tenant("acme"))
		if list := mustList(t, c); len(list) != 0 {
			t.Fatalf("List of a new tenant has %d records", len(list))
		}

		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		created := map[string]T{}
		before := time.Now()
		for _, id := range []string{"c", "a", "b2", "b10"} {
			rec := k.valid(id)
			m := meta[T, P](&rec)
			m.CreatedAt, m.UpdatedAt = old, old // the store sets these
			got, err := c.Create(ctx, rec)
			if err != nil {
				t.Fatalf("Create(%q): %v", id, err)
			}
			after := time.Now()
			gm := meta[T, P](&got)
			if gm.ID != id || gm.Tenant != "acme" {
				t.Errorf("Create(%q) returned id %q tenant %q, want %q and %q", id, gm.ID, gm.Tenant, id, "acme")
			}
			wantNear(t, "created_at", gm.CreatedAt, before, after)
			wantNear(t, "updated_at", gm.UpdatedAt, before, after)
			if gm.UpdatedAt.Before(gm.CreatedAt) {
				t.Errorf("updated_at %v is before created_at %v", gm.UpdatedAt, gm.CreatedAt)
			}
			want := k.valid(id)
			wm := meta[T, P](&want)
			wm.Tenant, wm.CreatedAt, wm.UpdatedAt = "acme", gm.CreatedAt, gm.UpdatedAt
			wantSame(t, "Create("+id+") result", got, want)
			created[id] = got
		}
		for id, want := range created {
			got, err := c.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get(%q): %v", id, err)
			}
			wantSame(t, "Get("+id+")", got, want)
		}
		// Ordered by id: byte order, so "b10" sorts before "b2".
		wantSame(t, "List", mustList(t, c), []T{created["a"], created["b10"], created["b2"], created["c"]})

		pause()
		upd := created["b2"]
		k.change(&upd)
		um := meta[T, P](&upd)
		um.CreatedAt, um.UpdatedAt = old, old
		got, err := c.Update(ctx, upd)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		gm, cm := meta[T, P](&got), meta[T, P](ptr(created["b2"]))
		if !gm.CreatedAt.Equal(cm.CreatedAt) {
			t.Errorf("Update changed created_at from %v to %v", cm.CreatedAt, gm.CreatedAt)
		}
		if !gm.UpdatedAt.After(cm.UpdatedAt) {
			t.Errorf("Update: updated_at %v is not after %v", gm.UpdatedAt, cm.UpdatedAt)
		}
		want := created["b2"]
		k.change(&want)
		meta[T, P](&want).UpdatedAt = gm.UpdatedAt
		wantSame(t, "Update result", got, want)
		stored, err := c.Get(ctx, "b2")
		if err != nil {
			t.Fatalf("Get after Update: %v", err)
		}
		wantSame(t, "Get after Update", stored, want)

		if err := c.Delete(ctx, "a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err = c.Get(ctx, "a")
		wantErr(t, "Get after Delete", err, graph.ErrNotFound)
		wantErr(t, "Delete twice", c.Delete(ctx, "a"), graph.ErrNotFound)
		wantSame(t, "List after Delete", mustList(t, c), []T{created["b10"], want, created["c"]})
	})

	t.Run("conflict", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "acme")
		c := k.coll(s.Tenant("acme"))
		first, err := c.Create(ctx, k.valid("x"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		second := k.valid("x")
		k.change(&second)
		_, err = c.Create(ctx, second)
		wantErr(t, "Create of an existing id", err, graph.ErrConflict)
		got, err := c.Get(ctx, "x")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		wantSame(t, "record after a refused create", got, first)
	})

	t.Run("not_found", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "acme")
		c := k.coll(s.Tenant("acme"))
		for _, id := range []string{"missing", "", "Not An ID"} {
			_, err := c.Get(ctx, id)
			wantErr(t, "Get("+id+")", err, graph.ErrNotFound)
			wantErr(t, "Delete("+id+")", c.Delete(ctx, id), graph.ErrNotFound)
		}
		_, err := c.Update(ctx, k.valid("missing"))
		wantErr(t, "Update of a missing record", err, graph.ErrNotFound)
		_, err = c.Get(ctx, "missing")
		wantErr(t, "Get after a refused Update", err, graph.ErrNotFound)
	})

	t.Run("invalid", func(t *testing.T) {
		for _, tc := range k.invalid {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				ctx := t.Context()
				createTenants(t, s, "acme")
				c := k.coll(s.Tenant("acme"))
				bad := k.valid("x")
				tc.spoil(&bad)
				_, err := c.Create(ctx, bad)
				wantInvalid(t, "Create", err, tc.field)
				if list := mustList(t, c); len(list) != 0 {
					t.Fatalf("a refused record was stored: %d records", len(list))
				}

				stored, err := c.Create(ctx, k.valid("x"))
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				bad = k.valid("x") // fresh maps and slices: stored must stay as returned
				tc.spoil(&bad)
				_, err = c.Update(ctx, bad)
				wantInvalid(t, "Update", err, tc.field)
				got, err := c.Get(ctx, "x")
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				wantSame(t, "record after a refused update", got, stored)
			})
		}
	})

	t.Run("missing_tenant", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "gone")
		if err := s.DeleteTenant(ctx, "gone"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		for _, tenant := range []string{"never", "gone", "", "Not A Tenant"} {
			c := k.coll(s.Tenant(tenant))
			_, err := c.Create(ctx, k.valid("x"))
			wantErr(t, "Create in tenant "+tenant, err, graph.ErrTenantNotFound)
			_, err = c.Get(ctx, "x")
			wantErr(t, "Get in tenant "+tenant, err, graph.ErrTenantNotFound)
			_, err = c.List(ctx)
			wantErr(t, "List in tenant "+tenant, err, graph.ErrTenantNotFound)
			_, err = c.Update(ctx, k.valid("x"))
			wantErr(t, "Update in tenant "+tenant, err, graph.ErrTenantNotFound)
			wantErr(t, "Delete in tenant "+tenant, c.Delete(ctx, "x"), graph.ErrTenantNotFound)
		}
		// The refused writes left nothing behind.
		createTenants(t, s, "never", "gone")
		for _, tenant := range []string{"never", "gone"} {
			if list := mustList(t, k.coll(s.Tenant(tenant))); len(list) != 0 {
				t.Errorf("tenant %q has %d records from writes that were refused", tenant, len(list))
			}
		}
	})

	t.Run("tenant_field_is_ignored", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "a", "b")
		ca, cb := k.coll(s.Tenant("a")), k.coll(s.Tenant("b"))

		rec := k.valid("x")
		meta[T, P](&rec).Tenant = "a"
		got, err := cb.Create(ctx, rec)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if tenant := meta[T, P](&got).Tenant; tenant != "b" {
			t.Errorf("Create in scope b with tenant a returned tenant %q, want %q", tenant, "b")
		}
		_, err = ca.Get(ctx, "x")
		wantErr(t, "record written through scope b, read in a", err, graph.ErrNotFound)
		if got, err := cb.Get(ctx, "x"); err != nil || meta[T, P](&got).Tenant != "b" {
			t.Errorf("Get in scope b = tenant %q, %v; want %q", meta[T, P](&got).Tenant, err, "b")
		}
		other := k.valid("x")
		meta[T, P](&other).Tenant = "a"
		k.change(&other)
		if updated, err := cb.Update(ctx, other); err != nil || meta[T, P](&updated).Tenant != "b" {
			t.Errorf("Update in scope b with tenant a = tenant %q, %v; want %q", meta[T, P](&updated).Tenant, err, "b")
		}
		if got, err := cb.Get(ctx, "x"); err != nil || meta[T, P](&got).Tenant != "b" {
			t.Errorf("Get in scope b after the update = tenant %q, %v; want %q", meta[T, P](&got).Tenant, err, "b")
		}
		_, err = ca.Get(ctx, "x")
		wantErr(t, "record updated through scope b, read in a", err, graph.ErrNotFound)

		inA, err := ca.Create(ctx, k.valid("y"))
		if err != nil {
			t.Fatalf("Create in a: %v", err)
		}
		upd := inA
		k.change(&upd)
		_, err = cb.Update(ctx, upd) // upd.Tenant is "a"
		wantErr(t, "Update through scope b of a record of a", err, graph.ErrNotFound)
		wantErr(t, "Delete through scope b of a record of a", cb.Delete(ctx, "y"), graph.ErrNotFound)
		after, err := ca.Get(ctx, "y")
		if err != nil {
			t.Fatalf("Get in a: %v", err)
		}
		wantSame(t, "record of a after writes through scope b", after, inA)
		_, err = cb.Get(ctx, "y")
		wantErr(t, "Get in b after a refused update", err, graph.ErrNotFound)
	})

	t.Run("isolation", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "a", "b")
		ca, cb := k.coll(s.Tenant("a")), k.coll(s.Tenant("b"))
		inA, err := ca.Create(ctx, k.valid("shared"))
		if err != nil {
			t.Fatalf("Create in a: %v", err)
		}
		recB := k.valid("shared")
		k.change(&recB)
		inB, err := cb.Create(ctx, recB)
		if err != nil {
			t.Fatalf("Create of the same id in b: %v", err)
		}
		if _, err := ca.Create(ctx, k.valid("only-a")); err != nil {
			t.Fatalf("Create in a: %v", err)
		}
		_, err = cb.Get(ctx, "only-a")
		wantErr(t, "Get in b of a record of a", err, graph.ErrNotFound)
		listB := mustList(t, cb)
		wantSame(t, "List in b", listB, []T{inB})

		upd := inA
		meta[T, P](&upd).Tenant = ""
		k.change(&upd)
		if _, err := ca.Update(ctx, upd); err != nil {
			t.Fatalf("Update in a: %v", err)
		}
		if err := ca.Delete(ctx, "shared"); err != nil {
			t.Fatalf("Delete in a: %v", err)
		}
		got, err := cb.Get(ctx, "shared")
		if err != nil {
			t.Fatalf("Get in b after a's update and delete: %v", err)
		}
		wantSame(t, "b's record after a's update and delete", got, inB)
	})

	t.Run("copies", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "acme")
		c := k.coll(s.Tenant("acme"))
		in := k.valid("x")
		created, err := c.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want := canon(t, created)
		check := func(what string) {
			t.Helper()
			got, err := c.Get(ctx, "x")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if g := canon(t, got); g != want {
				t.Errorf("%s changed the stored record:\n got  %s\n want %s", what, g, want)
			}
		}
		k.scribble(&in)
		check("mutating the record passed to Create")
		k.scribble(&created)
		check("mutating the record Create returned")
		got, err := c.Get(ctx, "x")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		k.scribble(&got)
		check("mutating the record Get returned")
		list := mustList(t, c)
		k.scribble(&list[0])
		check("mutating a record List returned")

		upd := k.valid("x")
		updated, err := c.Update(ctx, upd)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want = canon(t, updated)
		k.scribble(&upd)
		check("mutating the record passed to Update")
		k.scribble(&updated)
		check("mutating the record Update returned")
	})

	t.Run("list_is_ordered", func(t *testing.T) {
		s := h.fresh(t)
		ctx := t.Context()
		createTenants(t, s, "acme")
		c := k.coll(s.Tenant("acme"))
		ids := []string{"z", "0", "m.1", "m-1", "m_1", "a9", "a10", "9"}
		for _, id := range ids {
			if _, err := c.Create(ctx, k.valid(id)); err != nil {
				t.Fatalf("Create(%q): %v", id, err)
			}
		}
		var got []string
		for _, rec := range mustList(t, c) {
			got = append(got, meta[T, P](&rec).ID)
		}
		want := slices.Clone(ids)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("List order = %q, want %q", got, want)
		}
	})
}

func ptr[T any](v T) *T { return &v }
