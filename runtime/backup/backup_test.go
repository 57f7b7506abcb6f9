package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
)

// installation makes an embedded store with a device and the module and
// firmware folders, and returns its layout and the open store.
func installation(t *testing.T, dir string) (Layout, *embedded.Store) {
	t.Helper()
	l := Layout{
		Store: filepath.Join(dir, "data", "switchyard.db"),
		Dirs:  map[string]string{"modules": filepath.Join(dir, "data", "modules"), "firmware": filepath.Join(dir, "data", "firmware")},
	}
	s, err := embedded.Open(l.Store, embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("token"))
	if _, err := s.Tenant(graph.DefaultTenant).Devices().Create(context.Background(), graph.Device{Meta: graph.Meta{ID: "d1"}, TokenHash: sum[:]}); err != nil {
		// The default tenant is made by the relay at start; here by hand.
		if _, err := s.CreateTenant(context.Background(), graph.Tenant{ID: graph.DefaultTenant}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Tenant(graph.DefaultTenant).Devices().Create(context.Background(), graph.Device{Meta: graph.Meta{ID: "d1"}, TokenHash: sum[:]}); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"modules/default/aa.wasm":           "module",
		"firmware/images/default/bb.img":    "image",
		"firmware/firmware-signing-key.pem": "key",
		"modules/default/.upload-123":       "half an upload",
	} {
		p := filepath.Join(dir, "data", name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l, s
}

func archive(t *testing.T, s *embedded.Store, l Layout) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, s, l, "test"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	l, s := installation(t, t.TempDir())
	raw := archive(t, s, l)
	s.Close()

	to := t.TempDir()
	dst := Layout{Store: filepath.Join(to, "db", "sy.db"), Dirs: map[string]string{"modules": filepath.Join(to, "mods"), "firmware": filepath.Join(to, "fw")}}
	if err := Restore(bytes.NewReader(raw), dst, false); err != nil {
		t.Fatal(err)
	}
	r, err := embedded.Open(dst.Store, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d, err := r.Tenant(graph.DefaultTenant).Devices().Get(context.Background(), "d1"); err != nil || d.ID != "d1" {
		t.Errorf("restored device: %+v, %v", d, err)
	}
	for p, want := range map[string]string{"mods/default/aa.wasm": "module", "fw/images/default/bb.img": "image", "fw/firmware-signing-key.pem": "key"} {
		if b, err := os.ReadFile(filepath.Join(to, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(to, "mods/default/.upload-123")); err == nil {
		t.Error("a temporary upload file was backed up")
	}
	if err := Restore(bytes.NewReader(raw), dst, false); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Errorf("restore over an installation without force: %v", err)
	}
}

// tarOf builds an archive from name/content pairs, in order.
func tarOf(entries ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		tw.WriteHeader(&tar.Header{Name: entries[i], Mode: 0o600, Size: int64(len(entries[i+1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(entries[i+1]))
	}
	tw.Close()
	return buf.Bytes()
}

func TestRestoreRefuses(t *testing.T) {
	l, s := installation(t, t.TempDir())
	good := archive(t, s, l)
	s.Close()
	manifest := fmt.Sprintf(`{"format":%d,"dirs":["modules"]}`, Format)
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"not tar", []byte("hello, world"), "not a complete backup"},
		{"empty", nil, "holds no store"},
		{"another tar", tarOf("notes.txt", "x"), "not a Switchyard backup"},
		{"newer format", tarOf(manifestName, `{"format":2}`), "format 2"},
		{"cut off", good[:len(good)/2], "not a complete backup"},
		{"escapes", tarOf(manifestName, manifest, "modules/../../evil", "x"), "not a plain relative name"},
		{"absolute", tarOf(manifestName, manifest, "/etc/evil", "x"), "not a plain relative name"},
		{"unlisted folder", tarOf(manifestName, manifest, "secrets/x", "x"), "not part of a backup"},
		{"no store", tarOf(manifestName, manifest, "modules/a", "x"), "holds no store"},
		{"store is not a database", tarOf(manifestName, manifest, storeName, "not bbolt"), "does not open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := t.TempDir()
			dst := Layout{Store: filepath.Join(to, "sy.db"), Dirs: map[string]string{"modules": filepath.Join(to, "mods")}}
			err := Restore(bytes.NewReader(tt.raw), dst, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore: %v, want %q", err, tt.want)
			}
			left, _ := os.ReadDir(to)
			if len(left) != 0 {
				t.Errorf("a refused restore left %v", left)
			}
		})
	}
}

// TestBackupWhileWriting: an archive taken while writers add devices holds
// a store that opens and whose every device is whole.
func TestBackupWhileWriting(t *testing.T) {
	l, s := installation(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			sum := sha256.Sum256([]byte(fmt.Sprint(n)))
			if _, err := s.Tenant(graph.DefaultTenant).Devices().Create(ctx, graph.Device{Meta: graph.Meta{ID: fmt.Sprintf("w%05d", n)},
				TokenHash: sum[:], Labels: map[string]string{"n": fmt.Sprint(n)}}); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	var raws [][]byte
	for range 3 {
		raws = append(raws, archive(t, s, l))
	}
	close(stop)
	written := <-done
	for i, raw := range raws {
		to := t.TempDir()
		dst := Layout{Store: filepath.Join(to, "sy.db"), Dirs: map[string]string{}}
		if err := Restore(io.Reader(bytes.NewReader(raw)), dst, false); err != nil {
			t.Fatal(err)
		}
		r, err := embedded.Open(dst.Store, embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		list, err := r.Tenant(graph.DefaultTenant).Devices().List(ctx)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list {
			if d.ID != "d1" && (len(d.TokenHash) != 32 || d.Labels["n"] == "") {
				t.Fatalf("backup %d holds a partial device %+v", i, d)
			}
		}
		// Writers never wait for a backup: the snapshot is a point in time.
		t.Logf("backup %d: %d devices of %d written in all", i, len(list), written+1)
	}
}
