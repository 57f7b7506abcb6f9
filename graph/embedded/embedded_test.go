package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/graph/storetest"
)

// holdEnv makes the test binary a helper process that opens the database
// named by the variable, prints "ready" and holds it until stdin closes.
const holdEnv = "SWITCHYARD_EMBEDDED_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(holdLock(path))
	}
	os.Exit(m.Run())
}

func holdLock(path string) int {
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // returns when the parent closes stdin
	if err := s.Close(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// openAt opens the store at path and closes it when the test ends.
func openAt(t *testing.T, path string, opts embedded.Options) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func tokenHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func device(id string) graph.Device {
	return graph.Device{Meta: graph.Meta{ID: id}, Name: "display " + id, TokenHash: tokenHash(id)}
}

func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) graph.Store {
			s, err := embedded.Open(filepath.Join(t.TempDir(), "data", "switchyard.db"), embedded.Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
		func(t *testing.T, old graph.Store) graph.Store {
			path := old.(*embedded.Store).Path()
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s, err := embedded.Open(path, embedded.Options{})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			return s
		})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "switchyard.db")
	s := openAt(t, path, embedded.Options{})
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", name, info.Mode(), want)
		}
	}
}

func TestOpenRefusesLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchyard.db")
	openAt(t, path, embedded.Options{})
	start := time.Now()
	_, err := embedded.Open(path, embedded.Options{LockTimeout: 150 * time.Millisecond})
	if !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "database is locked by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should say the database is locked and name the file", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("Open waited %v with a 150ms lock timeout", waited)
	}
}

func TestOpenRefusesFileHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchyard.db")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, outW := io.Pipe()
	cmd.Stdout = outW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		_ = outW.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = out.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper process said %q, %v; want ready", line, err)
	}

	_, err = embedded.Open(path, embedded.Options{LockTimeout: 150 * time.Millisecond})
	if !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("Open of a file another process holds: %v, want ErrLocked", err)
	}

	// Once the other process is gone, the file opens.
	_ = stdin.Close()
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("helper process: %v", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper process did not exit")
	}
	openAt(t, path, embedded.Options{LockTimeout: time.Second})
}

func TestOpenRefusesForeignFiles(t *testing.T) {
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantIs  error  // nil: only wantMsg is checked
		wantMsg string // a substring of the error
	}{
		{"text file", writeFile([]byte("hello, this is not a database\n")), embedded.ErrNotDatabase, "not a switchyard database"},
		{"random bytes", writeFile(random), embedded.ErrNotDatabase, "invalid database"},
		{"zeros", writeFile(make([]byte, 16<<10)), embedded.ErrNotDatabase, "invalid database"},
		{"another program's bbolt file", func(t *testing.T, path string) {
			boltFile(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("w1"), []byte("blue"))
			})
		}, embedded.ErrNotDatabase, `without a "system" bucket`},
		{"newer schema", func(t *testing.T, path string) {
			s := openAt(t, path, embedded.Options{})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			boltFile(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("system")).Put([]byte("schema_version"), []byte("99"))
			})
		}, nil, fmt.Sprintf("schema version 99 is newer than this build supports (%d)", embedded.SchemaVersion)},
		{"garbled schema version", func(t *testing.T, path string) {
			s := openAt(t, path, embedded.Options{})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			boltFile(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("system")).Put([]byte("schema_version"), []byte("one"))
			})
		}, embedded.ErrNotDatabase, `schema version "one"`},
		{"truncated copy", func(t *testing.T, path string) {
			s := openAt(t, path, embedded.Options{NoSync: true})
			if _, err := s.CreateTenant(t.Context(), graph.Tenant{ID: "acme"}); err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				if _, err := s.Tenant("acme").Devices().Create(t.Context(), device(fmt.Sprintf("d%03d", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The file grows ahead of its data: cut into the data itself.
			var need int64
			boltFile(t, path, func(tx *bolt.Tx) error { need = tx.Size(); return nil })
			if err := os.Truncate(path, need/2); err != nil {
				t.Fatal(err)
			}
		}, embedded.ErrNotDatabase, "the file is truncated"},
		{"a folder", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil, "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "switchyard.db")
			tc.prepare(t, path)
			before := snapshot(t, path)
			s, err := embedded.Open(path, embedded.Options{LockTimeout: time.Second})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should contain %q and name the file", err, tc.wantMsg)
			}
			if after := snapshot(t, path); !bytes.Equal(before, after) {
				t.Error("a refused Open changed the file")
			}
		})
	}
	t.Run("empty path", func(t *testing.T) {
		if _, err := embedded.Open("", embedded.Options{}); err == nil || !strings.Contains(err.Error(), "path is required") {
			t.Errorf("Open(\"\") = %v, want an error saying the path is required", err)
		}
	})
}

func writeFile(data []byte) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// boltFile runs fn in a write transaction on the raw bbolt file at path.
func boltFile(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// v1Tenant is a tenant bucket as schema version 1 laid it out: the tenant
// record and the devices, junctions, plugins and seen buckets, no keys.
func v1Tenant(t *testing.T, tenants *bolt.Bucket, id string, devices ...graph.Device) error {
	t.Helper()
	b, err := tenants.CreateBucket([]byte(id))
	if err != nil {
		return err
	}
	rec, _ := json.Marshal(graph.Tenant{ID: id, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()})
	if err := b.Put([]byte("tenant"), rec); err != nil {
		return err
	}
	for _, name := range []string{"devices", "junctions", "plugins", "seen"} {
		if _, err := b.CreateBucket([]byte(name)); err != nil {
			return err
		}
	}
	for _, d := range devices {
		d.Tenant = id
		raw, _ := json.Marshal(d)
		if err := b.Bucket([]byte("devices")).Put([]byte(d.ID), raw); err != nil {
			return err
		}
	}
	return nil
}

// v2Tenant is a tenant bucket as schema version 2 laid it out: version 1's
// and a keys bucket holding keys, no firmware buckets.
func v2Tenant(t *testing.T, tenants *bolt.Bucket, id string, keys []graph.APIKey, devices ...graph.Device) error {
	t.Helper()
	if err := v1Tenant(t, tenants, id, devices...); err != nil {
		return err
	}
	b, err := tenants.Bucket([]byte(id)).CreateBucket([]byte("keys"))
	if err != nil {
		return err
	}
	for _, k := range keys {
		k.Tenant = id
		raw, _ := json.Marshal(k)
		if err := b.Put([]byte(k.ID), raw); err != nil {
			return err
		}
	}
	return nil
}

// v1File writes a database as schema version 1 wrote it, with the tenants
// fill makes.
func v1File(t *testing.T, path string, fill func(tenants *bolt.Bucket) error) {
	t.Helper()
	oldFile(t, path, 1, fill)
}

// oldFile writes a database whose system buckets are laid out as every
// version so far lays them out, recording schema version, with the tenants
// fill makes.
func oldFile(t *testing.T, path string, version int, fill func(tenants *bolt.Bucket) error) {
	t.Helper()
	boltFile(t, path, func(tx *bolt.Tx) error {
		sys, err := tx.CreateBucket([]byte("system"))
		if err != nil {
			return err
		}
		if _, err := sys.CreateBucket([]byte("settings")); err != nil {
			return err
		}
		if err := sys.Put([]byte("schema_version"), []byte(strconv.Itoa(version))); err != nil {
			return err
		}
		tenants, err := tx.CreateBucket([]byte("tenants"))
		if err != nil {
			return err
		}
		return fill(tenants)
	})
}

// schemaVersion reads the version a closed file records.
func schemaVersion(t *testing.T, path string) string {
	t.Helper()
	var v string
	boltFile(t, path, func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte("system")).Get([]byte("schema_version")))
		return nil
	})
	return v
}

func TestOpenMigratesVersion1(t *testing.T) {
	tests := []struct {
		name    string
		devices map[string]int // tenant → devices the file holds
		fill    func(t *testing.T, tenants *bolt.Bucket) error
	}{
		{"no tenants", map[string]int{}, func(*testing.T, *bolt.Bucket) error { return nil }},
		{"tenants with records", map[string]int{"acme": 2, "globex": 1}, func(t *testing.T, tenants *bolt.Bucket) error {
			if err := v1Tenant(t, tenants, "acme", device("d1"), device("d2")); err != nil {
				return err
			}
			return v1Tenant(t, tenants, "globex", device("d1"))
		}},
		{"a tenant that already has a keys bucket", map[string]int{"acme": 1}, func(t *testing.T, tenants *bolt.Bucket) error {
			if err := v1Tenant(t, tenants, "acme", device("d1")); err != nil {
				return err
			}
			_, err := tenants.Bucket([]byte("acme")).CreateBucket([]byte("keys"))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "switchyard.db")
			v1File(t, path, func(tenants *bolt.Bucket) error { return tc.fill(t, tenants) })
			s, err := embedded.Open(path, embedded.Options{})
			if err != nil {
				t.Fatalf("Open of a version 1 file: %v", err)
			}
			for id := range tc.devices {
				keys := s.Tenant(id).Keys()
				if list, err := keys.List(ctx); err != nil || len(list) != 0 {
					t.Fatalf("keys of %q after the migration = %v, %v; want none", id, list, err)
				}
				if _, err := keys.Create(ctx, graph.APIKey{Meta: graph.Meta{ID: "k1"}, KeyHash: tokenHash(id)}); err != nil {
					t.Fatalf("create a key in %q after the migration: %v", id, err)
				}
				// And the buckets of version 3, two steps on.
				if list, err := s.Tenant(id).Releases().List(ctx); err != nil || len(list) != 0 {
					t.Fatalf("releases of %q after the migration = %v, %v; want none", id, list, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if v := schemaVersion(t, path); v != strconv.Itoa(embedded.SchemaVersion) {
				t.Fatalf("recorded schema version %q, want %d", v, embedded.SchemaVersion)
			}

			// The migrated file opens as is, with every record kept.
			s = openAt(t, path, embedded.Options{})
			if tenants, err := s.ListTenants(ctx); err != nil || len(tenants) != len(tc.devices) {
				t.Errorf("tenants after the migration: %v, %v; want %d", tenants, err, len(tc.devices))
			}
			for id, n := range tc.devices {
				if devices, err := s.Tenant(id).Devices().List(ctx); err != nil || len(devices) != n {
					t.Errorf("devices of %q after the migration: %d, %v; want %d", id, len(devices), err, n)
				}
				if k, err := s.Tenant(id).Keys().Get(ctx, "k1"); err != nil || !bytes.Equal(k.KeyHash, tokenHash(id)) {
					t.Errorf("key of %q after reopening: %+v, %v", id, k, err)
				}
			}
		})
	}
}

func release(id string) graph.FirmwareRelease {
	return graph.FirmwareRelease{Meta: graph.Meta{ID: id}, Model: "esp32", Version: "1.4.0", Size: 1024,
		SHA256: fmt.Sprintf("%x", tokenHash(id)), Manifest: "{}", Signature: "c2ln", KeyID: "k"}
}

func rollout(id string) graph.Rollout {
	return graph.Rollout{Meta: graph.Meta{ID: id}, Model: "esp32", Version: "1.4.0", Percent: 10, State: graph.RolloutActive,
		MaxFailureRate: 0.1, MinResults: 5, ResultTimeout: "30m",
		Stages: []graph.RolloutStage{{Percent: 10, StartedAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}}}
}

func history(id string) graph.FirmwareHistory {
	return graph.FirmwareHistory{Meta: graph.Meta{ID: id}, Events: []graph.FirmwareEvent{
		{Time: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), Rollout: "r1", To: "1.4.0", Status: graph.FirmwareOffered},
	}}
}

func TestOpenMigratesVersion2(t *testing.T) {
	type counts struct{ devices, keys, releases int }
	tests := []struct {
		name    string
		tenants map[string]counts // what the file holds
		fill    func(t *testing.T, tenants *bolt.Bucket) error
	}{
		{"no tenants", map[string]counts{}, func(*testing.T, *bolt.Bucket) error { return nil }},
		{"tenants with records", map[string]counts{"acme": {2, 2, 0}, "globex": {1, 0, 0}}, func(t *testing.T, tenants *bolt.Bucket) error {
			keys := []graph.APIKey{
				{Meta: graph.Meta{ID: "ci"}, KeyHash: tokenHash("ci")},
				{Meta: graph.Meta{ID: "ops"}, Name: "operators", KeyHash: tokenHash("ops")},
			}
			if err := v2Tenant(t, tenants, "acme", keys, device("d1"), device("d2")); err != nil {
				return err
			}
			return v2Tenant(t, tenants, "globex", nil, device("d1"))
		}},
		{"a tenant that already has a releases bucket", map[string]counts{"acme": {1, 0, 1}}, func(t *testing.T, tenants *bolt.Bucket) error {
			if err := v2Tenant(t, tenants, "acme", nil, device("d1")); err != nil {
				return err
			}
			b, err := tenants.Bucket([]byte("acme")).CreateBucket([]byte("releases"))
			if err != nil {
				return err
			}
			old := release("old")
			old.Tenant = "acme"
			raw, _ := json.Marshal(old)
			return b.Put([]byte("old"), raw)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "switchyard.db")
			oldFile(t, path, 2, func(tenants *bolt.Bucket) error { return tc.fill(t, tenants) })
			s, err := embedded.Open(path, embedded.Options{})
			if err != nil {
				t.Fatalf("Open of a version 2 file: %v", err)
			}
			created := map[string][]any{}
			for id, n := range tc.tenants {
				sc := s.Tenant(id)
				if list, err := sc.Releases().List(ctx); err != nil || len(list) != n.releases {
					t.Fatalf("releases of %q after the migration = %v, %v; want %d", id, list, err, n.releases)
				}
				if list, err := sc.Rollouts().List(ctx); err != nil || len(list) != 0 {
					t.Fatalf("rollouts of %q after the migration = %v, %v; want none", id, list, err)
				}
				if list, err := sc.FirmwareHistories().List(ctx); err != nil || len(list) != 0 {
					t.Fatalf("firmware histories of %q after the migration = %v, %v; want none", id, list, err)
				}
				r, err := sc.Releases().Create(ctx, release("r1"))
				if err != nil {
					t.Fatalf("create a release in %q after the migration: %v", id, err)
				}
				ro, err := sc.Rollouts().Create(ctx, rollout("ro1"))
				if err != nil {
					t.Fatalf("create a rollout in %q after the migration: %v", id, err)
				}
				h, err := sc.FirmwareHistories().Create(ctx, history("d1"))
				if err != nil {
					t.Fatalf("create a firmware history in %q after the migration: %v", id, err)
				}
				created[id] = []any{r, ro, h}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if v := schemaVersion(t, path); v != strconv.Itoa(embedded.SchemaVersion) {
				t.Fatalf("recorded schema version %q, want %d", v, embedded.SchemaVersion)
			}

			// The migrated file opens as is, with every record kept.
			s = openAt(t, path, embedded.Options{})
			if tenants, err := s.ListTenants(ctx); err != nil || len(tenants) != len(tc.tenants) {
				t.Errorf("tenants after the migration: %v, %v; want %d", tenants, err, len(tc.tenants))
			}
			for id, n := range tc.tenants {
				sc := s.Tenant(id)
				if devices, err := sc.Devices().List(ctx); err != nil || len(devices) != n.devices {
					t.Errorf("devices of %q after the migration: %d, %v; want %d", id, len(devices), err, n.devices)
				}
				keys, err := sc.Keys().List(ctx)
				if err != nil || len(keys) != n.keys {
					t.Errorf("keys of %q after the migration: %d, %v; want %d", id, len(keys), err, n.keys)
				}
				for _, k := range keys {
					if !bytes.Equal(k.KeyHash, tokenHash(k.ID)) {
						t.Errorf("key %q of %q after the migration: %+v", k.ID, id, k)
					}
				}
				if releases, err := sc.Releases().List(ctx); err != nil || len(releases) != n.releases+1 {
					t.Errorf("releases of %q after reopening: %d, %v; want %d", id, len(releases), err, n.releases+1)
				}
				r, rerr := sc.Releases().Get(ctx, "r1")
				ro, roerr := sc.Rollouts().Get(ctx, "ro1")
				h, herr := sc.FirmwareHistories().Get(ctx, "d1")
				if err := errors.Join(rerr, roerr, herr); err != nil {
					t.Fatalf("firmware records of %q after reopening: %v", id, err)
				}
				if got := []any{r, ro, h}; !reflect.DeepEqual(got, created[id]) {
					t.Errorf("firmware records of %q after reopening:\n got  %+v\n want %+v", id, got, created[id])
				}
			}
		})
	}
}

// snapshot returns the bytes of a regular file, or nil for anything else.
func snapshot(t *testing.T, path string) []byte {
	t.Helper()
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBackupWhileWritingRestores(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "live.db"), embedded.Options{})
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	acme := s.Tenant("acme")
	var before []graph.Device
	for i := range 50 {
		d, err := acme.Devices().Create(ctx, device(fmt.Sprintf("d%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, d)
	}
	j, err := acme.Junctions().Create(ctx, graph.Junction{Meta: graph.Meta{ID: "j1"}, Source: "device.>", Targets: []graph.Target{{Device: "d000"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSetting(ctx, "operator_key_hash", []byte("h")); err != nil {
		t.Fatal(err)
	}

	// A writer keeps creating devices w0000, w0001, … while the backup runs.
	stop := make(chan struct{})
	wrote := make(chan int, 1)
	go func() {
		n := 0
		defer func() { wrote <- n }()
		for ; n < 2000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := acme.Devices().Create(ctx, device(fmt.Sprintf("w%04d", n))); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the writer get going
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	close(stop)
	written := <-wrote
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Backup reported %d bytes, wrote %d", n, buf.Len())
	}

	restoredPath := filepath.Join(dir, "restored.db")
	if err := os.WriteFile(restoredPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := openAt(t, restoredPath, embedded.Options{})
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping on the restored copy: %v", err)
	}
	got, err := r.Tenant("acme").Devices().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(before) || !reflect.DeepEqual(got[:len(before)], before) {
		t.Fatalf("restored copy lost devices written before the backup: got %d", len(got))
	}
	// A consistent snapshot of a sequential writer holds a prefix of its writes.
	extra := got[len(before):]
	if len(extra) > written {
		t.Errorf("restored copy has %d writer devices, the writer made %d", len(extra), written)
	}
	for i, d := range extra {
		if want := fmt.Sprintf("w%04d", i); d.ID != want {
			t.Fatalf("restored writer device %d is %q, want %q: the copy is not a consistent snapshot", i, d.ID, want)
		}
	}
	t.Logf("backup of %d bytes holds %d of the %d devices written during it", n, len(extra), written)
	if gotJ, err := r.Tenant("acme").Junctions().Get(ctx, "j1"); err != nil || !reflect.DeepEqual(gotJ, j) {
		t.Errorf("restored junction = %+v, %v; want %+v", gotJ, err, j)
	}
	if v, err := r.GetSetting(ctx, "operator_key_hash"); err != nil || string(v) != "h" {
		t.Errorf("restored setting = %q, %v", v, err)
	}
	if _, err := r.Tenant("acme").Devices().Create(ctx, device("after-restore")); err != nil {
		t.Errorf("the restored copy refuses writes: %v", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "s.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = s.Backup(&bytes.Buffer{})
	if !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("Backup after Close: %v, want ErrClosed", err)
	}
	_, err = s.Tenant("acme").Devices().Create(t.Context(), device("d1"))
	if !errors.Is(err, embedded.ErrClosed) || !errors.Is(err, graph.ErrUnavailable) {
		t.Errorf("Create after Close: %v, want ErrClosed wrapping ErrUnavailable", err)
	}
}

func TestErrorMessages(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "s.db"), embedded.Options{})
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "t1"}); err != nil {
		t.Fatal(err)
	}
	t1 := s.Tenant("t1")
	if _, err := t1.Devices().Create(ctx, device("d1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		is   error
		want string
	}{
		{"duplicate device", func() error { _, err := t1.Devices().Create(ctx, device("d1")); return err },
			graph.ErrConflict, `embedded: create device "d1" in tenant "t1": already exists`},
		{"missing device", func() error { _, err := t1.Devices().Get(ctx, "nope"); return err },
			graph.ErrNotFound, `embedded: get device "nope" in tenant "t1": not found`},
		{"missing tenant", func() error {
			_, err := s.Tenant("t9").Junctions().Create(ctx, graph.Junction{Meta: graph.Meta{ID: "j1"}, Source: "a", Targets: []graph.Target{{Broker: "b"}}})
			return err
		}, graph.ErrNotFound, `embedded: create junction "j1" in tenant "t9": tenant not found`},
		{"missing plugin instance", func() error { return t1.Plugins().Delete(ctx, "p9") },
			graph.ErrNotFound, `embedded: delete plugin instance "p9" in tenant "t1": not found`},
		{"missing API key", func() error { _, err := t1.Keys().Get(ctx, "k9"); return err },
			graph.ErrNotFound, `embedded: get API key "k9" in tenant "t1": not found`},
		{"duplicate tenant", func() error { _, err := s.CreateTenant(ctx, graph.Tenant{ID: "t1"}); return err },
			graph.ErrConflict, `embedded: create tenant "t1": already exists`},
		{"missing setting", func() error { _, err := s.GetSetting(ctx, "nope"); return err },
			graph.ErrNotFound, `embedded: get setting "nope": not found`},
		{"invalid device", func() error {
			_, err := t1.Devices().Create(ctx, graph.Device{Meta: graph.Meta{ID: "d2"}})
			return err
		}, nil, `embedded: create device "d2" in tenant "t1": token_hash: must be a SHA-256 digest (32 bytes)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
	t.Run("invalid setting key", func(t *testing.T) {
		err := s.PutSetting(ctx, "Not A Key", []byte("v"))
		var ie *graph.InvalidError
		if !errors.As(err, &ie) || ie.Field != "key" {
			t.Errorf("PutSetting with a bad key: %v, want an InvalidError for key", err)
		}
	})
}

func TestCanceledContextChangesNothing(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "s.db"), embedded.Options{})
	if _, err := s.CreateTenant(t.Context(), graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Tenant("acme").Devices().Create(ctx, device("d1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context: %v", err)
	}
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "other"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTenant with a canceled context: %v", err)
	}
	if err := s.PutSetting(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Errorf("PutSetting with a canceled context: %v", err)
	}
	list, err := s.Tenant("acme").Devices().List(t.Context())
	if err != nil || len(list) != 0 {
		t.Errorf("devices after a canceled create: %v, %v", list, err)
	}
	tenants, err := s.ListTenants(t.Context())
	if err != nil || len(tenants) != 1 {
		t.Errorf("tenants after a canceled create: %v, %v", tenants, err)
	}
}

func TestRecordSeenRefusesMissingTime(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "s.db"), embedded.Options{})
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Tenant("acme").Devices().Create(ctx, device("d1"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.RecordSeen(ctx, []graph.Seen{
		{Tenant: "acme", Device: "d1", At: time.Now(), Firmware: "2.0"},
		{Tenant: "acme", Device: "d1"},
	})
	var ie *graph.InvalidError
	if !errors.As(err, &ie) || ie.Field != "batch[1].at" {
		t.Fatalf("RecordSeen with a zero time: %v, want an InvalidError for batch[1].at", err)
	}
	got, err := s.Tenant("acme").Devices().Get(ctx, "d1")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("a refused batch changed the device: %+v, %v", got, err)
	}
}

// fileWithDevice is a closed database file holding tenant acme with one
// device, id.
func fileWithDevice(t *testing.T, id string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTenant(t.Context(), graph.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tenant("acme").Devices().Create(t.Context(), device(id)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCorruptRecordIsReportedNotFatal(t *testing.T) {
	ctx := t.Context()
	path := fileWithDevice(t, "good")
	boltFile(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("tenants")).Bucket([]byte("acme")).Bucket([]byte("devices")).Put([]byte("bad"), []byte("{not json"))
	})
	s := openAt(t, path, embedded.Options{})
	devices := s.Tenant("acme").Devices()
	if _, err := devices.Get(ctx, "bad"); err == nil || !strings.Contains(err.Error(), `get device "bad" in tenant "acme": decode stored device`) {
		t.Errorf("Get of a corrupt record: %v", err)
	}
	if _, err := devices.List(ctx); err == nil || !strings.Contains(err.Error(), `"bad": decode stored device`) {
		t.Errorf("List with a corrupt record: %v", err)
	}
	// RecordSeen writes only the compact seen entry, so a corrupt record
	// neither fails the batch nor is changed by it.
	if err := s.RecordSeen(ctx, []graph.Seen{{Tenant: "acme", Device: "bad", At: time.Now()}}); err != nil {
		t.Errorf("RecordSeen next to a corrupt record: %v", err)
	}
	if _, err := devices.Get(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "decode stored device") {
		t.Errorf("Get of the corrupt record after RecordSeen: %v", err)
	}
	if _, err := devices.Get(ctx, "good"); err != nil {
		t.Errorf("Get of a sound record next to a corrupt one: %v", err)
	}
	// The operator's way out: delete the corrupt record.
	if err := devices.Delete(ctx, "bad"); err != nil {
		t.Fatalf("Delete of a corrupt record: %v", err)
	}
	if list, err := devices.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("List after deleting the corrupt record: %d, %v", len(list), err)
	}
}

// FuzzOpen opens damaged copies of a real database: arbitrary bytes written
// over its meta pages (a torn write, another program's header) and the file
// cut short anywhere (a partial copy, a full disk). Open must refuse them
// with an error naming the file, or open them and answer every read; it
// must never crash. The data pages themselves stay genuine: bbolt trusts
// them once a meta page checksums, so bit rot inside them is out of reach.
func FuzzOpen(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	s, err := embedded.Open(path, embedded.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		id := fmt.Sprintf("t%d", i)
		if _, err := s.CreateTenant(ctx, graph.Tenant{ID: id}); err != nil {
			f.Fatal(err)
		}
		for j := range 40 {
			if _, err := s.Tenant(id).Devices().Create(ctx, device(fmt.Sprintf("d%02d", j))); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	const metaBytes = 2 * 4096 // two meta pages of the OS page size bbolt used
	f.Add(uint32(len(valid)), uint16(0), []byte{})
	f.Add(uint32(len(valid)/2), uint16(0), []byte{})
	f.Add(uint32(3*4096+100), uint16(0), []byte{})
	f.Add(uint32(len(valid)), uint16(20), []byte{0xff, 0xff})           // meta 0 garbled
	f.Add(uint32(len(valid)), uint16(4096+20), []byte{0xff, 0xff})      // meta 1 garbled
	f.Add(uint32(len(valid)), uint16(0), bytes.Repeat([]byte{7}, 8192)) // both
	f.Add(uint32(100), uint16(0), []byte("not a database"))

	f.Fuzz(func(t *testing.T, size uint32, at uint16, patch []byte) {
		data := bytes.Clone(valid)
		start := int(at) % metaBytes
		copy(data[start:min(metaBytes, start+len(patch))], patch)
		data = data[:int(size)%(len(data)+1)]
		path := filepath.Join(t.TempDir(), "fuzz.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := embedded.Open(path, embedded.Options{LockTimeout: time.Second, NoSync: true})
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		defer func() { _ = s.Close() }()
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping on an opened store: %v", err)
		}
		tenants, err := s.ListTenants(ctx)
		if err != nil {
			t.Fatalf("ListTenants on an opened store: %v", err)
		}
		for _, tn := range tenants {
			if _, err := s.Tenant(tn.ID).Devices().List(ctx); err != nil {
				t.Fatalf("List devices of %q: %v", tn.ID, err)
			}
		}
		if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "fuzz"}); err != nil {
			t.Fatalf("CreateTenant on an opened store: %v", err)
		}
	})
}

// A device stored before Create wrote a seen entry for every device has
// none until its first sighting: RecordSeen must still record it (checking
// the devices bucket), and must still skip an id no device has.
func TestRecordSeenForADeviceWithoutSeenEntry(t *testing.T) {
	ctx := t.Context()
	path := fileWithDevice(t, "old")
	boltFile(t, path, func(tx *bolt.Tx) error {
		seen := tx.Bucket([]byte("tenants")).Bucket([]byte("acme")).Bucket([]byte("seen"))
		if seen.Get([]byte("old")) == nil {
			t.Error("Create wrote no seen entry for a never-seen device")
		}
		return seen.Delete([]byte("old"))
	})
	s := openAt(t, path, embedded.Options{})
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	err := s.RecordSeen(ctx, []graph.Seen{
		{Tenant: "acme", Device: "old", At: at, Firmware: "1.2.3"},
		{Tenant: "acme", Device: "ghost", At: at},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Tenant("acme").Devices().Get(ctx, "old")
	if err != nil || !d.LastSeen.Equal(at) || d.Firmware != "1.2.3" {
		t.Errorf("device without a seen entry after RecordSeen: %+v, %v", d, err)
	}
	if _, err := s.Tenant("acme").Devices().Get(ctx, "ghost"); !errors.Is(err, graph.ErrNotFound) {
		t.Errorf("RecordSeen of an unknown id created something: %v", err)
	}
	list, err := s.Tenant("acme").Devices().List(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("devices after RecordSeen: %d, %v", len(list), err)
	}
}
