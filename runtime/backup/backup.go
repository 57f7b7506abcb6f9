// Package backup copies a whole Switchyard installation on the embedded
// store into one tar archive while it runs, and restores such an archive
// into an installation that is not running: the store (a consistent bbolt
// snapshot), the uploaded plugin modules, and the firmware images and
// signing key.
//
// The store's snapshot is taken first, then the folders are copied. Modules
// and images are content-addressed and written before the records that
// name them, so every module or image the snapshot's records name is in
// the archive (a later one may be too, unused). Restore checks every name
// it extracts, opens the restored store before it puts anything in place,
// and never overwrites an installation unless told to.
//
// A Dgraph installation is backed up with Dgraph's own export
// (deploy/README.md); this package is for the embedded store only.
package backup

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/config"
)

// Names in the archive.
const (
	manifestName = "switchyard-backup.json"
	storeName    = "switchyard.db"
	// Format is the version of the archive's layout.
	Format = 1
)

// Layout says where an installation keeps what a backup holds.
type Layout struct {
	// Store is the embedded store's file.
	Store string
	// Dirs are folders copied whole, by their name in the archive
	// ("modules", "firmware").
	Dirs map[string]string
	// Files are single files, by their name in the archive (the signing
	// key when it is kept outside the firmware folder).
	Files map[string]string
}

// LayoutOf is the layout of the installation a configuration describes.
func LayoutOf(c *config.Config) Layout {
	l := Layout{
		Store: c.Store.Embedded.Path,
		Dirs:  map[string]string{"modules": c.ModulesDirOrDefault(), "firmware": c.FirmwareDirOrDefault()},
		Files: map[string]string{},
	}
	key := c.SigningKeyOrDefault()
	if rel, err := filepath.Rel(c.FirmwareDirOrDefault(), key); err != nil || strings.HasPrefix(rel, "..") {
		l.Files["firmware-signing-key.pem"] = key
	}
	return l
}

// manifest is the archive's first entry.
type manifest struct {
	Format    int       `json:"format"`
	Version   string    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	Dirs      []string  `json:"dirs"`
	Files     []string  `json:"files"`
}

// Write writes a backup of a running installation to w: the manifest, the
// store's snapshot, then every regular file of the folders (temporary
// upload files excepted). version names the relay that wrote it.
func Write(w io.Writer, s *embedded.Store, l Layout, version string) error {
	tw := tar.NewWriter(w)
	m := manifest{Format: Format, Version: version, CreatedAt: time.Now().UTC(), Dirs: sortedKeys(l.Dirs), Files: sortedKeys(l.Files)}
	raw, _ := json.Marshal(m)
	if err := writeEntry(tw, manifestName, 0o600, int64(len(raw)), strings.NewReader(string(raw))); err != nil {
		return err
	}
	// The snapshot goes through a temporary file: a tar entry states its
	// size before its bytes.
	snap, err := os.CreateTemp(filepath.Dir(l.Store), ".backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(snap.Name())
	defer snap.Close()
	n, err := s.Backup(snap)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := snap.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := writeEntry(tw, storeName, 0o600, n, snap); err != nil {
		return err
	}
	for _, name := range m.Dirs {
		if err := writeDir(tw, name, l.Dirs[name]); err != nil {
			return err
		}
	}
	for _, name := range m.Files {
		if err := writeFile(tw, name, l.Files[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func writeEntry(tw *tar.Writer, name string, mode int64, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return nil
}

// writeDir adds a folder's regular files under name/; a folder that does
// not exist adds nothing.
func writeDir(tw *tar.Writer, name, dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // removed while walking, or never made
		case err != nil:
			return err
		case d.IsDir() || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), "."):
			return nil // folders are implied; temporary files and links are not kept
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return writeFile(tw, path.Join(name, filepath.ToSlash(rel)), p)
	})
	if err != nil {
		return fmt.Errorf("backup: folder %s: %w", name, err)
	}
	return nil
}

func writeFile(tw *tar.Writer, name, p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted since it was listed: not needed by the snapshot
	}
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return writeEntry(tw, name, int64(fi.Mode().Perm()), fi.Size(), f)
}

// Restore extracts an archive into the installation l describes, which
// must not be running. Without force it refuses when the store file
// exists. Everything is extracted to a staging folder beside the store and
// the store is opened there (a truncated or foreign archive fails here,
// and nothing is touched); then each part replaces its destination.
func Restore(r io.Reader, l Layout, force bool) error {
	if _, err := os.Stat(l.Store); err == nil && !force {
		return fmt.Errorf("restore: %s exists: restore into an empty installation, or pass -force to replace it (stop the relay first)", l.Store)
	}
	if err := os.MkdirAll(filepath.Dir(l.Store), 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(l.Store), ".restore-*")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	m, err := extract(r, stage)
	if err != nil {
		return err
	}
	s, err := embedded.Open(filepath.Join(stage, storeName), embedded.Options{})
	if err != nil {
		return fmt.Errorf("restore: the archive's store does not open: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	moves := map[string]string{filepath.Join(stage, storeName): l.Store}
	for _, name := range m.Dirs {
		if dst, ok := l.Dirs[name]; ok {
			moves[filepath.Join(stage, name)] = dst
		}
	}
	for _, name := range m.Files {
		if dst, ok := l.Files[name]; ok {
			moves[filepath.Join(stage, name)] = dst
		}
	}
	for src, dst := range moves {
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue // an empty folder in the backup
		}
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("restore: replace %s: %w", dst, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("restore: put %s in place: %w", dst, err)
		}
	}
	return nil
}

// extract reads the archive into stage, accepting only the names a backup
// writes.
func extract(r io.Reader, stage string) (manifest, error) {
	var m manifest
	tr := tar.NewReader(r)
	first, sawStore := true, false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("restore: not a complete backup archive: %w", err)
		}
		if first {
			first = false
			if h.Name != manifestName {
				return m, fmt.Errorf("restore: not a Switchyard backup (its first entry is %q, not %s)", h.Name, manifestName)
			}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
				return m, fmt.Errorf("restore: %s: %w", manifestName, err)
			}
			if m.Format != Format {
				return m, fmt.Errorf("restore: backup format %d; this relay reads format %d", m.Format, Format)
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return m, fmt.Errorf("restore: entry %q is not a regular file", h.Name)
		}
		clean := path.Clean(h.Name)
		top, _, _ := strings.Cut(clean, "/")
		switch {
		case clean != h.Name || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../"):
			return m, fmt.Errorf("restore: entry %q is not a plain relative name", h.Name)
		case clean == storeName:
			sawStore = true
		case slices.Contains(m.Dirs, top) && clean != top, slices.Contains(m.Files, clean):
		default:
			return m, fmt.Errorf("restore: entry %q is not part of a backup", h.Name)
		}
		dst := filepath.Join(stage, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return m, fmt.Errorf("restore: %w", err)
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode).Perm())
		if err != nil {
			return m, fmt.Errorf("restore: %s: %w", h.Name, err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return m, fmt.Errorf("restore: %s: not a complete backup archive: %w", h.Name, err)
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return m, fmt.Errorf("restore: %s: %w", h.Name, err)
		}
	}
	if !sawStore {
		return m, errors.New("restore: the archive holds no store")
	}
	return m, nil
}
