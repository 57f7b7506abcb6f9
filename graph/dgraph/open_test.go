package dgraph_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
)

// TestOpenErrors checks that every way Open can fail says what to fix: the
// setting, the address or the user at fault.
func TestOpenErrors(t *testing.T) {
	c := dgraphtest.Shared(t)
	nowhere := freeAddr(t)
	for _, tc := range []struct {
		name   string
		edit   func(*dgraph.Options)
		want   []string // substrings of the error
		is     error    // when set, the error must wrap it
		within time.Duration
	}{
		{
			name: "wrong guardian password",
			edit: func(o *dgraph.Options) { o.Password = "not-the-password" },
			want: []string{`"groot"`, "store.dgraph.password"},
		},
		{
			name: "wrong guardian user",
			edit: func(o *dgraph.Options) { o.User = "nobody" },
			want: []string{`"nobody"`, "store.dgraph.user"},
		},
		{
			name:   "nothing listens at the gRPC address",
			edit:   func(o *dgraph.Options) { o.Addresses = []string{nowhere}; o.ConnectTimeout = 2 * time.Second },
			want:   []string{nowhere},
			is:     graph.ErrUnavailable,
			within: 10 * time.Second,
		},
		{
			name:   "nothing listens at the HTTP address",
			edit:   func(o *dgraph.Options) { o.HTTP = "http://" + nowhere; o.ConnectTimeout = 2 * time.Second },
			want:   []string{"http://" + nowhere, "HTTP"},
			is:     graph.ErrUnavailable,
			within: 10 * time.Second,
		},
		{
			name: "no encryption key",
			edit: func(o *dgraph.Options) { o.EncryptionKey = nil },
			want: []string{"SWITCHYARD_ENCRYPTION_KEY", "0 bytes"},
		},
		{
			name: "short encryption key",
			edit: func(o *dgraph.Options) { o.EncryptionKey = o.EncryptionKey[:16] },
			want: []string{"SWITCHYARD_ENCRYPTION_KEY", "16 bytes", "want 32"},
		},
		{
			name: "no gRPC address",
			edit: func(o *dgraph.Options) { o.Addresses = nil },
			want: []string{"store.dgraph.addresses"},
		},
		{
			name: "HTTP address without a scheme",
			edit: func(o *dgraph.Options) { o.HTTP = strings.TrimPrefix(o.HTTP, "http://") },
			want: []string{"store.dgraph.http", strings.TrimPrefix(c.HTTP, "http://")},
		},
		{
			name: "HTTP address of another scheme",
			edit: func(o *dgraph.Options) { o.HTTP = "ftp://127.0.0.1:21" },
			want: []string{"store.dgraph.http", "ftp://127.0.0.1:21"},
		},
		{
			name: "no guardian password",
			edit: func(o *dgraph.Options) { o.Password = "" },
			want: []string{"store.dgraph.password"},
		},
		{
			name: "bad installation name",
			edit: func(o *dgraph.Options) { o.Install = "Prod Install" },
			want: []string{"install", `"Prod Install"`},
		},
		{
			name: "every problem at once",
			edit: func(o *dgraph.Options) {
				o.Addresses, o.HTTP, o.Password, o.EncryptionKey, o.Install = nil, "", "", nil, "-x"
			},
			want: []string{"store.dgraph.addresses", "store.dgraph.http", "store.dgraph.password", "SWITCHYARD_ENCRYPTION_KEY", `"-x"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := c.Options(dgraphtest.Install())
			tc.edit(&opts)
			start := time.Now()
			s, err := dgraph.Open(t.Context(), opts)
			took := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			if tc.within > 0 && took > tc.within {
				t.Errorf("Open took %s to fail, want at most %s", took.Round(time.Millisecond), tc.within)
			}
		})
	}
}

// TestOpenWithAnotherKey checks that an installation refuses an encryption
// key other than the one that sealed its tenants' credentials, and that the
// refusal changes nothing.
func TestOpenWithAnotherKey(t *testing.T) {
	c := dgraphtest.Shared(t)
	opts := c.Options(dgraphtest.Install())
	s := open(t, opts)
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Tenant("acme").Devices().Create(ctx, device("d1", "Boiler"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	other := opts
	other.EncryptionKey = dgraphtest.Key("another")
	if s, err := dgraph.Open(ctx, other); err == nil {
		s.Close()
		t.Fatal("Open with another encryption key succeeded")
	} else if !strings.Contains(err.Error(), "SWITCHYARD_ENCRYPTION_KEY") || !strings.Contains(err.Error(), opts.Install) {
		t.Errorf("error %q names neither SWITCHYARD_ENCRYPTION_KEY nor the installation", err)
	}

	s = open(t, opts)
	got, err := s.Tenant("acme").Devices().Get(ctx, "d1")
	if err != nil {
		t.Fatalf("the first key no longer opens the tenant: %v", err)
	}
	if got.Name != want.Name || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("device after the refused open = %+v, want %+v", got, want)
	}
	if _, err := s.Tenant("acme").Devices().Create(ctx, device("d2", "Pump")); err != nil {
		t.Errorf("create after the refused open: %v", err)
	}
}

// TestSchemaVersion checks that reopening an installation is idempotent and
// that a schema version recorded by a newer build (in the galaxy, or on one
// tenant's record) makes Open refuse, until it is back to what this build
// knows.
func TestSchemaVersion(t *testing.T) {
	c := dgraphtest.Shared(t)
	opts := c.Options(dgraphtest.Install())
	s := open(t, opts)
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tenant("acme").Devices().Create(ctx, device("d1", "Boiler")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	reopen := func(t *testing.T) {
		t.Helper()
		s := open(t, opts)
		if tn, err := s.GetTenant(ctx, "acme"); err != nil || tn.Name != "Acme" {
			t.Errorf("tenant after reopen: %+v, %v", tn, err)
		}
		if d, err := s.Tenant("acme").Devices().Get(ctx, "d1"); err != nil || d.Name != "Boiler" {
			t.Errorf("device after reopen: %+v, %v", d, err)
		}
		s.Close()
	}
	t.Run("reopen", func(t *testing.T) {
		reopen(t)
		reopen(t)
	})

	groot := mustLogin(t, c, dgraphtest.Guardian, 0)
	for _, tc := range []struct {
		name, key, predicate, want string
	}{
		{"galaxy", opts.Install + "/meta", "sy.schema_version", fmt.Sprintf("installation %q was written by a newer Switchyard", opts.Install)},
		{"tenant", opts.Install + "/tenant/acme", "tenant.schema_version", `tenant "acme" was written by a newer Switchyard`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := `query q($k: string) { n(func: eq(sy.key, $k)) { v: ` + tc.predicate + ` } }`
			before := groot.query(q, map[string]string{"$k": tc.key})
			if len(before) != 1 || before[0]["v"] == nil {
				t.Fatalf("%s of %q = %v, want one recorded version", tc.predicate, tc.key, before)
			}
			groot.set(tc.key, tc.predicate, 99)
			s, err := dgraph.Open(ctx, opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open with %s 99 succeeded", tc.predicate)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "99") {
				t.Errorf("error %q does not say %q (version 99)", err, tc.want)
			}
			if after := groot.query(q, map[string]string{"$k": tc.key}); len(after) != 1 || after[0]["v"] != float64(99) {
				t.Errorf("the refused Open changed %s to %v", tc.predicate, after)
			}
			groot.set(tc.key, tc.predicate, before[0]["v"])
			reopen(t)
		})
	}
}
