package config

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed each time the file at path is written, created,
// renamed into place or removed and recreated — the ways editors and
// configuration tools save — once the writes have settled for settle, until
// ctx ends. It watches the file's folder, so a file replaced by a rename is
// followed. It returns once the watch is set up; an error means there is
// none.
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
				if filepath.Base(ev.Name) == name && !ev.Has(fsnotify.Chmod) {
					timer.Reset(settle)
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
