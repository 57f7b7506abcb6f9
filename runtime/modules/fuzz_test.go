package modules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPut feeds arbitrary bytes to Put as a wasm upload: it must store them
// or refuse them with a sentinel, and never leave an upload behind.
func FuzzPut(f *testing.F) {
	f.Add([]byte{})
	f.Add(wasmModule)
	f.Add([]byte("\x00asm"))
	f.Add([]byte("\x00asm\x02\x00\x00\x00"))
	f.Add(append(append([]byte{}, wasmModule...), make([]byte, 4096)...))
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))

	dir := filepath.Join(f.TempDir(), "modules")
	s, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := s.Put("fuzz", KindWASM, bytes.NewReader(body), 4096, "")
		switch {
		case err == nil:
			if info.SHA256 != sum(body) || info.Size != int64(len(body)) || info.Kind != KindWASM {
				t.Errorf("Put = %+v for %d bytes", info, len(body))
			}
			path, _, err := s.Path("fuzz", info.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, body) {
				t.Errorf("stored bytes differ: %v", err)
			}
		case errors.Is(err, ErrEmpty), errors.Is(err, ErrTooLarge), errors.Is(err, ErrNotWASM):
		default:
			t.Fatalf("Put: unexpected error %v", err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "fuzz"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				t.Fatalf("upload left behind: %s", e.Name())
			}
		}
	})
}
