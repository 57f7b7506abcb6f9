package modules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// wasmModule is the smallest valid WebAssembly module: header, no sections.
var wasmModule = []byte("\x00asm\x01\x00\x00\x00")

// processBinary stands in for an executable; the store never runs it.
var processBinary = []byte("#!/bin/sh\necho hello\n")

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func open(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "modules")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func put(t *testing.T, s *Store, tenant string, kind Kind, body []byte) Info {
	t.Helper()
	info, err := s.Put(tenant, kind, bytes.NewReader(body), 1<<20, "")
	if err != nil {
		t.Fatalf("Put(%q, %s): %v", tenant, kind, err)
	}
	return info
}

// leftovers lists every file under dir that is not a stored module.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, _, ok := parseName(d.Name()); !d.IsDir() && !ok {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		body []byte
		want string // announced sum
		file string
		mode os.FileMode
	}{
		{"wasm", KindWASM, wasmModule, "", sum(wasmModule) + ".wasm", 0o600},
		{"wasm with announced sum", KindWASM, wasmModule, sum(wasmModule), sum(wasmModule) + ".wasm", 0o600},
		{"upper-case announced sum", KindWASM, wasmModule, strings.ToUpper(sum(wasmModule)), sum(wasmModule) + ".wasm", 0o600},
		{"process", KindProcess, processBinary, "", sum(processBinary) + ".bin", 0o700},
		{"firmware image", KindImage, processBinary, "", sum(processBinary) + ".img", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := open(t)
			before := time.Now().Add(-time.Second)
			info, err := s.Put("acme", tt.kind, bytes.NewReader(tt.body), 1<<20, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if info.Tenant != "acme" || info.SHA256 != sum(tt.body) || info.Kind != tt.kind || info.Size != int64(len(tt.body)) {
				t.Errorf("Put = %+v", info)
			}
			if info.StoredAt.Before(before) || info.StoredAt.After(time.Now().Add(time.Second)) {
				t.Errorf("StoredAt = %v, want about now", info.StoredAt)
			}

			path, got, err := s.Path("acme", info.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got != info {
				t.Errorf("Path info = %+v, want %+v", got, info)
			}
			if want := filepath.Join(dir, "acme", tt.file); path != want {
				t.Errorf("Path = %q, want %q", path, want)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tt.body) {
				t.Errorf("stored bytes = %q, want %q", data, tt.body)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.mode {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tt.mode)
			}

			if got, err := s.Get("acme", strings.ToUpper(info.SHA256)); err != nil || got != info {
				t.Errorf("Get = %+v, %v; want %+v", got, err, info)
			}
			list, err := s.List("acme")
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0] != info {
				t.Errorf("List = %+v, want [%+v]", list, info)
			}
		})
	}
}

func TestProcessModuleIsExecutable(t *testing.T) {
	s, _ := open(t)
	info := put(t, s, "acme", KindProcess, processBinary)
	path, _, err := s.Path("acme", info.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("mode = %v, want executable by its owner", fi.Mode().Perm())
	}
}

func TestPutDuplicateIsIdempotent(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		body []byte
	}{
		{"wasm", KindWASM, wasmModule},
		{"process", KindProcess, processBinary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := open(t)
			first := put(t, s, "acme", tt.kind, tt.body)
			path, _, err := s.Path("acme", first.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			// Make the first upload visibly older than a second one would be.
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
			first.StoredAt = old.UTC()

			second, err := s.Put("acme", tt.kind, bytes.NewReader(tt.body), 1<<20, first.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if second != first {
				t.Errorf("second Put = %+v, want the first's %+v", second, first)
			}
			if list, _ := s.List("acme"); len(list) != 1 {
				t.Errorf("List = %+v, want one module", list)
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func TestPutRefused(t *testing.T) {
	garbage := []byte("\x7fELF\x02\x01\x01\x00 not wasm at all")
	big := append(append([]byte{}, wasmModule...), make([]byte, 100)...)
	tests := []struct {
		name     string
		kind     Kind
		body     []byte
		limit    int64
		want     string
		err      error
		messages []string // each must appear in the error
	}{
		{"sha mismatch", KindWASM, wasmModule, 1 << 20, sum([]byte("other")), ErrMismatch,
			[]string{sum(wasmModule), sum([]byte("other")), `"acme"`}},
		{"over the limit", KindWASM, big, 64, "", ErrTooLarge, []string{"64 bytes", `"acme"`}},
		{"one byte over the limit", KindProcess, processBinary, int64(len(processBinary)) - 1, "", ErrTooLarge,
			[]string{"limit of 20 bytes"}},
		{"empty wasm", KindWASM, nil, 1 << 20, "", ErrEmpty, []string{`"acme"`}},
		{"empty process", KindProcess, nil, 1 << 20, "", ErrEmpty, []string{"empty"}},
		{"not wasm", KindWASM, garbage, 1 << 20, "", ErrNotWASM, []string{"not a WebAssembly module: ", "7f 45 4c 46"}},
		{"short wasm", KindWASM, []byte("\x00asm"), 1 << 20, "", ErrNotWASM, []string{"only 4 of the 8 header bytes"}},
		{"wasm version 2", KindWASM, []byte("\x00asm\x02\x00\x00\x00"), 1 << 20, "", ErrNotWASM, []string{"version 02 00 00 00"}},
		{"wasm text format", KindWASM, []byte("(module)"), 1 << 20, "", ErrNotWASM, []string{"magic"}},
		{"invalid announced sum", KindWASM, wasmModule, 1 << 20, "abc", ErrInvalid, []string{`"abc"`}},
		{"unknown kind", Kind("elf"), processBinary, 1 << 20, "", ErrInvalid, []string{`"elf"`}},
		{"no limit", KindWASM, wasmModule, 0, "", ErrInvalid, []string{"limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := open(t)
			info, err := s.Put("acme", tt.kind, bytes.NewReader(tt.body), tt.limit, tt.want)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Put = %+v, %v; want %v", info, err, tt.err)
			}
			for _, m := range tt.messages {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
			if list, err := s.List("acme"); err != nil || len(list) != 0 {
				t.Errorf("List = %+v, %v; want none", list, err)
			}
			if _, err := s.Get("acme", sum(tt.body)); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after refused Put = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPutAtTheLimit(t *testing.T) {
	s, _ := open(t)
	info, err := s.Put("acme", KindWASM, bytes.NewReader(wasmModule), int64(len(wasmModule)), "")
	if err != nil {
		t.Fatalf("Put of exactly the limit: %v", err)
	}
	if info.Size != int64(len(wasmModule)) {
		t.Errorf("Size = %d", info.Size)
	}
}

func TestPutSameBytesAsOtherKind(t *testing.T) {
	s, _ := open(t)
	put(t, s, "acme", KindWASM, wasmModule)
	_, err := s.Put("acme", KindProcess, bytes.NewReader(wasmModule), 1<<20, "")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Put as process = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), sum(wasmModule)) {
		t.Errorf("error %q does not name the sum", err)
	}
	if info, err := s.Get("acme", sum(wasmModule)); err != nil || info.Kind != KindWASM {
		t.Errorf("Get = %+v, %v; want the wasm module", info, err)
	}
}

func TestTenantIsolation(t *testing.T) {
	s, _ := open(t)
	a := put(t, s, "tenant-a", KindWASM, wasmModule)

	if _, err := s.Get("tenant-b", a.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get from b = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Path("tenant-b", a.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Path from b = %v, want ErrNotFound", err)
	}
	if err := s.Delete("tenant-b", a.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete from b = %v, want ErrNotFound", err)
	}
	if list, err := s.List("tenant-b"); err != nil || len(list) != 0 {
		t.Errorf("List of b = %+v, %v; want none", list, err)
	}
	if got, err := s.Get("tenant-a", a.SHA256); err != nil || got != a {
		t.Errorf("Get from a after b's calls = %+v, %v", got, err)
	}

	// The same bytes stored by b are b's own module; deleting it leaves a's.
	b := put(t, s, "tenant-b", KindWASM, wasmModule)
	if b.Tenant != "tenant-b" || b.SHA256 != a.SHA256 {
		t.Errorf("b's Put = %+v", b)
	}
	if err := s.Delete("tenant-b", b.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("tenant-a", a.SHA256); err != nil {
		t.Errorf("a's module after b's delete: %v", err)
	}
}

func TestInvalidReferences(t *testing.T) {
	good := sum(wasmModule)
	tests := []struct {
		name   string
		tenant string
		sha    string
		field  string
	}{
		{"tenant parent", "../x", good, "tenant"},
		{"tenant dot-dot", "..", good, "tenant"},
		{"tenant with slash", "a/b", good, "tenant"},
		{"tenant with backslash", `a\b`, good, "tenant"},
		{"tenant absolute", "/etc", good, "tenant"},
		{"tenant empty", "", good, "tenant"},
		{"tenant upper case", "Acme", good, "tenant"},
		{"sha parent", "acme", "../x", "sha256"},
		{"sha with slash", "acme", "a/b", "sha256"},
		{"sha 63 hex", "acme", good[:63], "sha256"},
		{"sha 65 hex", "acme", good + "0", "sha256"},
		{"sha not hex", "acme", strings.Repeat("g", 64), "sha256"},
		{"sha with traversal of the right length", "acme", "../" + good[3:], "sha256"},
		{"sha empty", "acme", "", "sha256"},
	}
	check := func(t *testing.T, op string, err error, field string) {
		t.Helper()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s = %v, want ErrInvalid", op, err)
			return
		}
		var inv *graph.InvalidError
		if !errors.As(err, &inv) || inv.Field != field {
			t.Errorf("%s = %v, want a graph.InvalidError for %q", op, err, field)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "modules")
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(tt.tenant, tt.sha)
			check(t, "Get", err, tt.field)
			_, _, err = s.Path(tt.tenant, tt.sha)
			check(t, "Path", err, tt.field)
			check(t, "Delete", s.Delete(tt.tenant, tt.sha), tt.field)
			if tt.field == "tenant" {
				_, err = s.List(tt.tenant)
				check(t, "List", err, tt.field)
			}
			// Put validates the tenant and the announced sum.
			_, err = s.Put(tt.tenant, KindWASM, bytes.NewReader(wasmModule), 1<<20, tt.sha)
			if tt.sha != "" || tt.field == "tenant" {
				check(t, "Put", err, tt.field)
			}
			_, err = s.PutFile(tt.tenant, KindWASM, filepath.Join(root, "missing"), 1<<20, tt.sha)
			if tt.sha != "" || tt.field == "tenant" {
				check(t, "PutFile", err, tt.field)
			}
			entries, err := os.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != "modules" {
				t.Errorf("files next to the store: %v", entries)
			}
			if l := leftovers(t, root); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func TestOpenRemovesLeftoverUploads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info := put(t, s, "acme", KindWASM, wasmModule)
	// What a relay killed in the middle of an upload leaves behind.
	partial := filepath.Join(dir, "acme", tempPrefix+"123456")
	if err := os.WriteFile(partial, []byte("\x00as"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover upload still there: %v", err)
	}
	if got, err := s.Get("acme", info.SHA256); err != nil || got != info {
		t.Errorf("stored module after Open = %+v, %v; want %+v", got, err, info)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory = %v, %v; want mode 0700", fi.Mode(), err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, dir := open(t)
	const n = 16
	infos := make([]Info, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := wasmModule
			if i%2 == 1 { // every other upload is a different module
				body = append(append([]byte{}, wasmModule...), byte(i))
			}
			infos[i], errs[i] = s.Put("acme", KindWASM, bytes.NewReader(body), 1<<20, "")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if i%2 == 0 && infos[i] != infos[0] {
			t.Errorf("Put %d of the same bytes = %+v, want %+v", i, infos[i], infos[0])
		}
	}
	list, err := s.List("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1+n/2 {
		t.Errorf("List has %d modules, want %d", len(list), 1+n/2)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestDelete(t *testing.T) {
	s, _ := open(t)
	info := put(t, s, "acme", KindProcess, processBinary)
	path, _, err := s.Path("acme", info.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("acme", strings.ToUpper(info.SHA256)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("acme", info.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after Delete: %v", err)
	}
	err = s.Delete("acme", info.SHA256)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	for _, m := range []string{`"acme"`, info.SHA256} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not name %s", err, m)
		}
	}
	// The same bytes may be stored again, even as the other kind.
	if _, err := s.Put("acme", KindWASM, bytes.NewReader(processBinary), 1<<20, ""); !errors.Is(err, ErrNotWASM) {
		t.Errorf("Put as wasm = %v, want ErrNotWASM", err)
	}
	put(t, s, "acme", KindProcess, processBinary)
}

func TestRemoveTenant(t *testing.T) {
	s, _ := open(t)
	put(t, s, "acme", KindWASM, wasmModule)
	put(t, s, "acme", KindProcess, processBinary)
	kept := put(t, s, "globex", KindWASM, wasmModule)
	if err := s.RemoveTenant("acme"); err != nil {
		t.Fatal(err)
	}
	if list, err := s.List("acme"); err != nil || len(list) != 0 {
		t.Fatalf("acme's modules after RemoveTenant: %v %v", list, err)
	}
	if _, err := s.Get("globex", kept.SHA256); err != nil {
		t.Fatalf("globex's module after acme's removal: %v", err)
	}
	if err := s.RemoveTenant("acme"); err != nil {
		t.Fatalf("removing a tenant with no modules: %v", err)
	}
	if err := s.RemoveTenant("../globex"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RemoveTenant(../globex) = %v, want ErrInvalid", err)
	}
}

func TestPutFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(src, processBinary, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		kind  Kind
		path  string
		limit int64
		want  string
		err   error // nil: success
	}{
		{"process", KindProcess, src, 1 << 20, sum(processBinary), nil},
		{"wrong kind", KindWASM, src, 1 << 20, "", ErrNotWASM},
		{"over the limit", KindProcess, src, 4, "", ErrTooLarge},
		{"mismatch", KindProcess, src, 1 << 20, sum(wasmModule), ErrMismatch},
		{"missing file", KindProcess, src + ".missing", 1 << 20, "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := open(t)
			info, err := s.PutFile("acme", tt.kind, tt.path, tt.limit, tt.want)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("PutFile = %+v, %v; want %v", info, err, tt.err)
				}
				if l := leftovers(t, dir); len(l) != 0 {
					t.Errorf("left behind: %v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			path, _, err := s.Path("acme", info.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(data, processBinary) {
				t.Errorf("stored bytes = %q, %v", data, err)
			}
			if info.Kind != KindProcess || info.Size != int64(len(processBinary)) {
				t.Errorf("PutFile = %+v", info)
			}
		})
	}
}

func TestListOrder(t *testing.T) {
	s, _ := open(t)
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	bodies := [][]byte{
		append(append([]byte{}, wasmModule...), 1),
		append(append([]byte{}, wasmModule...), 2),
		append(append([]byte{}, wasmModule...), 3),
		processBinary,
	}
	// Stored-at times: two modules share the oldest time, so the sum decides.
	ages := []time.Duration{2 * time.Hour, 2 * time.Hour, 0, time.Hour}
	for i, b := range bodies {
		kind := KindWASM
		if i == 3 {
			kind = KindProcess
		}
		info := put(t, s, "acme", kind, b)
		path, _, err := s.Path("acme", info.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		at := base.Add(-ages[i])
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(bodies) {
		t.Fatalf("List = %+v", list)
	}
	first, second := sum(bodies[0]), sum(bodies[1])
	if second < first {
		first, second = second, first
	}
	want := []string{first, second, sum(bodies[3]), sum(bodies[2])}
	for i, info := range list {
		if info.SHA256 != want[i] {
			t.Errorf("List[%d] = %s, want %s", i, info.SHA256, want[i])
		}
	}
	if !list[0].StoredAt.Equal(base.Add(-2 * time.Hour)) {
		t.Errorf("StoredAt = %v", list[0].StoredAt)
	}
}

func TestListIgnoresForeignFiles(t *testing.T) {
	s, dir := open(t)
	info := put(t, s, "acme", KindWASM, wasmModule)
	for _, name := range []string{"README", "abc.wasm", tempPrefix + "1", strings.ToUpper(info.SHA256) + ".wasm"} {
		if err := os.WriteFile(filepath.Join(dir, "acme", name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != info {
		t.Errorf("List = %+v, want [%+v]", list, info)
	}
}

func TestPutReaderFails(t *testing.T) {
	s, dir := open(t)
	broken := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(wasmModule), iotest.ErrReader(broken))
	if _, err := s.Put("acme", KindWASM, r, 1<<20, ""); !errors.Is(err, broken) {
		t.Fatalf("Put = %v, want the reader's error", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}
