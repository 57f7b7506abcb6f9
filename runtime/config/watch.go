package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed each time the file at path is written, created,
// renamed into place or removed and recreated — the ways editors and
// configuration tools save — or reached through a symbolic link that now
// leads elsewhere (a Kubernetes ConfigMap volume swaps its ..data link), once
// the writes have settled for settle, until ctx ends. It watches the file's
// folder, so a file replaced by a rename is followed. It returns once the
// watch is set up; an error means there is none.
func Watch(ctx context.Context, path string, settle time.Duration, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir, name := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch %s: %w", path, err)
	}
	seen := identify(path)
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				switch {
				case ev.Has(fsnotify.Chmod):
				case filepath.Base(ev.Name) == name:
					seen = identify(path)
					timer.Reset(settle)
				default:
					// Another name in the folder: a link on the way to
					// the file may have moved.
					if now := identify(path); now != seen {
						seen = now
						timer.Reset(settle)
					}
				}
			case <-w.Errors:
				// An overflowed queue lost events: check the file anyway.
				timer.Reset(settle)
			case <-timer.C:
				changed()
			}
		}
	}()
	return nil
}

// identity is what the file at a path is: the real path its links lead
// to, and that file's size and modification time.
type identity struct {
	real    string
	size    int64
	modTime time.Time
}

func identify(path string) identity {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return identity{}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return identity{real: real}
	}
	return identity{real: real, size: fi.Size(), modTime: fi.ModTime()}
}
