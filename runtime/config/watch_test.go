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

// A Kubernetes ConfigMap volume updates a file by swapping a symbolic
// link: plugins.yaml → ..data/plugins.yaml, and ..data is renamed to point at
// a new timestamped folder. The swap is a change; files written beside it
// that leave the link alone are not.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, text string) {
		t.Helper()
		os.Mkdir(filepath.Join(dir, name), 0o700)
		if err := os.WriteFile(filepath.Join(dir, name, "plugins.yaml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01_01_a", "a: 1\n")
	if err := os.Symlink("..2026_01_01_a", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/plugins.yaml", filepath.Join(dir, "plugins.yaml")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if err := Watch(t.Context(), filepath.Join(dir, "plugins.yaml"), 20*time.Millisecond, func() { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o600)
	time.Sleep(100 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatal("a file beside the link counted as a change")
	}
	// What the kubelet's atomic writer does.
	version("..2026_01_02_b", "a: 2\n")
	if err := os.Symlink("..2026_01_02_b", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "..2026_01_01_a"))
	for deadline := time.Now().Add(5 * time.Second); calls.Load() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ConfigMap's swap was not noticed")
		}
	}
	time.Sleep(100 * time.Millisecond)
	if got := calls.Load(); got != 1 {
		t.Errorf("one swap made %d calls", got)
	}
}
