package config

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Each way a file is saved — written in place, replaced by a rename (as
// editors and config tools do), removed and created again — is noticed
// once the writes settle, and files beside it are not.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	write := func(p, text string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "a: 1\n")
	var calls atomic.Int32
	if err := Watch(t.Context(), path, 20*time.Millisecond, func() { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); calls.Load() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d calls, want %d", what, calls.Load(), want)
			}
		}
		time.Sleep(100 * time.Millisecond) // settled: no second call
		if got := calls.Load(); got != want {
			t.Fatalf("%s: %d calls, want %d", what, got, want)
		}
	}
	for range 5 { // several writes in a row are one change
		write(path, "a: 2\n")
	}
	wait("written in place", 1)

	tmp := filepath.Join(dir, ".plugins.yaml.tmp")
	write(tmp, "a: 3\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	wait("renamed into place", 2)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	write(path, "a: 4\n")
	wait("removed and created", 3)

	write(filepath.Join(dir, "other.yaml"), "b: 1\n")
	time.Sleep(100 * time.Millisecond)
	if got := calls.Load(); got != 3 {
		t.Fatalf("a file beside it counted as a change: %d calls", got)
	}
}

func TestWatchMissingFolder(t *testing.T) {
	if err := Watch(t.Context(), filepath.Join(t.TempDir(), "nowhere", "plugins.yaml"), time.Millisecond, func() {}); err == nil {
		t.Fatal("watching a file in a folder that does not exist succeeded")
	}
}
