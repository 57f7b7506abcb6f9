package modules

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// Kind says how a module is run.
type Kind string

const (
	// KindWASM is a WebAssembly module run by the WASM host.
	KindWASM Kind = "wasm"
	// KindProcess is an executable run as a process plugin.
	KindProcess Kind = "process"
	// KindImage is a firmware image, kept for package firmware (the relay
	// gives it a Store of its own, apart from the plugin modules).
	KindImage Kind = "image"
)

// kinds lists every kind.
var kinds = []Kind{KindWASM, KindProcess, KindImage}

// ext is the file extension a module of kind k is stored under.
func (k Kind) ext() string {
	switch k {
	case KindWASM:
		return ".wasm"
	case KindImage:
		return ".img"
	}
	return ".bin"
}

// Info describes a stored module.
type Info struct {
	Tenant   string    `json:"tenant"`
	SHA256   string    `json:"sha256"`
	Kind     Kind      `json:"kind"`
	Size     int64     `json:"size"`
	StoredAt time.Time `json:"stored_at"`
}

// Errors every call returns (wrapped with the tenant and sum involved) for the
// caller's mistakes, so the admin API can map them with errors.Is.
var (
	// ErrNotFound: the tenant has no module with that sum.
	ErrNotFound = errors.New("module not found")
	// ErrTooLarge: the upload is longer than the limit it was given.
	ErrTooLarge = errors.New("module too large")
	// ErrEmpty: the upload has no bytes.
	ErrEmpty = errors.New("module is empty")
	// ErrMismatch: the upload's sha256 is not the one the caller announced.
	ErrMismatch = errors.New("sha256 mismatch")
	// ErrNotWASM: a wasm upload does not start with the WebAssembly header.
	ErrNotWASM = errors.New("not a WebAssembly module")
	// ErrConflict: the tenant already stores the same bytes as the other kind.
	ErrConflict = errors.New("module stored as another kind")
	// ErrInvalid: a tenant, sum, kind or limit that cannot be used. The
	// error also wraps a *graph.InvalidError naming the field.
	ErrInvalid = errors.New("invalid")
)

// tempPrefix starts the name of every upload in progress. Tenant folders hold
// nothing else whose name starts with a dot.
const tempPrefix = ".upload-"

// wasmHeader is the magic number "\0asm" and version 1 that begin every
// WebAssembly binary module.
var wasmHeader = [8]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Store is a directory of modules. Its methods are safe for concurrent use.
type Store struct {
	dir string
	// mu orders the steps that change which modules exist (moving an upload
	// into place, deleting) so a duplicate upload sees the first one's file.
	mu sync.Mutex
}

// Open opens the store in dir, creating it (0700) if needed, and removes the
// temporary files an interrupted upload left behind.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("modules: open %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("modules: open: %w", err)
	}
	tenants, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("modules: open: %w", err)
	}
	for _, t := range tenants {
		if !t.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(abs, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("modules: open: %w", err)
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), tempPrefix) {
				if err := os.Remove(filepath.Join(abs, t.Name(), f.Name())); err != nil {
					return nil, fmt.Errorf("modules: open: remove leftover upload: %w", err)
				}
			}
		}
	}
	return &Store{dir: abs}, nil
}

// Put stores the module read from r for tenant. It refuses a body longer
// than limit bytes (ErrTooLarge), an empty one (ErrEmpty), one whose sha256 is
// not want when want is not empty (ErrMismatch) and, for KindWASM, one
// without the WebAssembly header (ErrNotWASM); a refused upload leaves
// nothing behind. Storing bytes the tenant already has as the same kind
// returns the stored module's Info; as the other kind, ErrConflict.
func (s *Store) Put(tenant string, kind Kind, r io.Reader, limit int64, want string) (Info, error) {
	want, err := checkPut(tenant, kind, limit, want)
	if err != nil {
		return Info{}, err
	}
	return s.put(tenant, kind, r, limit, want)
}

// PutFile stores the module in the local file at path, with Put's checks. It
// is how an operator registers a binary already on the relay's disk.
func (s *Store) PutFile(tenant string, kind Kind, path string, limit int64, want string) (Info, error) {
	want, err := checkPut(tenant, kind, limit, want)
	if err != nil {
		return Info{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: %w", tenant, err)
	}
	defer f.Close()
	return s.put(tenant, kind, f, limit, want)
}

// checkPut validates Put's arguments and returns want normalised.
func checkPut(tenant string, kind Kind, limit int64, want string) (string, error) {
	if err := checkTenant(tenant); err != nil {
		return "", err
	}
	if !slices.Contains(kinds, kind) {
		return "", invalid(graph.Invalid("kind", "%q must be %q, %q or %q", kind, KindWASM, KindProcess, KindImage))
	}
	if limit <= 0 {
		return "", invalid(graph.Invalid("limit", "must be positive, not %d", limit))
	}
	if want == "" {
		return "", nil
	}
	return checkSHA(want)
}

func (s *Store) put(tenant string, kind Kind, r io.Reader, limit int64, want string) (Info, error) {
	dir := filepath.Join(s.dir, tenant)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: %w", tenant, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: %w", tenant, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	h := sha256.New()
	var head prefix
	n, err := io.Copy(io.MultiWriter(tmp, h, &head), io.LimitReader(r, limit+1))
	if err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: upload: %w", tenant, err)
	}
	switch {
	case n > limit:
		return Info{}, fmt.Errorf("modules: tenant %q: %w: more than the limit of %d bytes", tenant, ErrTooLarge, limit)
	case n == 0:
		return Info{}, fmt.Errorf("modules: tenant %q: %w", tenant, ErrEmpty)
	}
	if kind == KindWASM {
		if err := checkWASM(head.bytes()); err != nil {
			return Info{}, fmt.Errorf("modules: tenant %q: %w", tenant, err)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return Info{}, fmt.Errorf("modules: tenant %q: %w: the upload's sha256 is %s, not %s", tenant, ErrMismatch, sum, want)
	}
	if kind == KindProcess {
		if err := tmp.Chmod(0o700); err != nil {
			return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, old, err := s.find(tenant, sum); {
	case err == nil && old.Kind == kind:
		return old, nil
	case err == nil:
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w: stored as %s, uploaded as %s", tenant, sum, ErrConflict, old.Kind, kind)
	case !errors.Is(err, ErrNotFound):
		return Info{}, err
	}
	path := filepath.Join(dir, sum+kind.ext())
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sum, err)
	}
	return newInfo(tenant, sum, kind, fi), nil
}

// Path returns where the tenant's module with sha256 sha is on disk, for the
// plugin host to load or execute, and its Info.
func (s *Store) Path(tenant, sha string) (string, Info, error) {
	sha, err := checkRef(tenant, sha)
	if err != nil {
		return "", Info{}, err
	}
	return s.find(tenant, sha)
}

// Get returns the Info of the tenant's module with sha256 sha.
func (s *Store) Get(tenant, sha string) (Info, error) {
	_, info, err := s.Path(tenant, sha)
	return info, err
}

// List returns the tenant's modules, oldest first (ties by sum). A tenant
// that never stored a module has none.
func (s *Store) List(tenant string) ([]Info, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, tenant))
	if errors.Is(err, fs.ErrNotExist) {
		return []Info{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("modules: tenant %q: list: %w", tenant, err)
	}
	list := []Info{}
	for _, e := range entries {
		sum, kind, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("modules: tenant %q: list: %w", tenant, err)
		}
		list = append(list, newInfo(tenant, sum, kind, fi))
	}
	slices.SortFunc(list, func(a, b Info) int {
		return cmp.Or(a.StoredAt.Compare(b.StoredAt), strings.Compare(a.SHA256, b.SHA256))
	})
	return list, nil
}

// Delete removes the tenant's module with sha256 sha. A plugin process that
// already has the file open keeps running.
func (s *Store) Delete(tenant, sha string) error {
	sha, err := checkRef(tenant, sha)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path, _, err := s.find(tenant, sha)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("modules: tenant %q: sha256 %s: delete: %w", tenant, sha, err)
	}
	return nil
}

// RemoveTenant removes every module of tenant (a tenant deleted).
func (s *Store) RemoveTenant(tenant string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(s.dir, tenant)); err != nil {
		return fmt.Errorf("modules: tenant %q: remove: %w", tenant, err)
	}
	return nil
}

// find looks up a module by validated tenant and sum.
func (s *Store) find(tenant, sha string) (string, Info, error) {
	for _, kind := range kinds {
		path := filepath.Join(s.dir, tenant, sha+kind.ext())
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sha, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		return path, newInfo(tenant, sha, kind, fi), nil
	}
	return "", Info{}, fmt.Errorf("modules: tenant %q: sha256 %s: %w", tenant, sha, ErrNotFound)
}

func newInfo(tenant, sha string, kind Kind, fi fs.FileInfo) Info {
	return Info{Tenant: tenant, SHA256: sha, Kind: kind, Size: fi.Size(), StoredAt: fi.ModTime().UTC()}
}

// parseName reports the sum and kind of a stored module's file name.
func parseName(name string) (string, Kind, bool) {
	for _, kind := range kinds {
		sum, ok := strings.CutSuffix(name, kind.ext())
		if ok && isSHA(sum) {
			return sum, kind, true
		}
	}
	return "", "", false
}

func checkRef(tenant, sha string) (string, error) {
	if err := checkTenant(tenant); err != nil {
		return "", err
	}
	return checkSHA(sha)
}

func checkTenant(tenant string) error {
	if err := graph.ValidID("tenant", tenant); err != nil {
		return invalid(err)
	}
	return nil
}

// checkSHA returns sha in lower case if it is 64 hex digits.
func checkSHA(sha string) (string, error) {
	lower := strings.ToLower(sha)
	if !isSHA(lower) {
		return "", invalid(graph.Invalid("sha256", "%q must be 64 hexadecimal digits", sha))
	}
	return lower, nil
}

func isSHA(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func invalid(err error) error {
	return fmt.Errorf("modules: %w: %w", ErrInvalid, err)
}

// checkWASM checks the first bytes of a WebAssembly binary module.
func checkWASM(head []byte) error {
	switch {
	case len(head) < len(wasmHeader):
		return fmt.Errorf("%w: only %d of the 8 header bytes", ErrNotWASM, len(head))
	case string(head[:4]) != string(wasmHeader[:4]):
		return fmt.Errorf("%w: no \\0asm magic number (starts % x)", ErrNotWASM, head[:4])
	case string(head[4:8]) != string(wasmHeader[4:]):
		return fmt.Errorf("%w: version % x, only version 1 is supported", ErrNotWASM, head[4:8])
	}
	return nil
}

// prefix is a writer that keeps the first 8 bytes written to it.
type prefix struct {
	buf [len(wasmHeader)]byte
	n   int
}

func (p *prefix) Write(b []byte) (int, error) {
	p.n += copy(p.buf[p.n:], b)
	return len(b), nil
}

func (p *prefix) bytes() []byte { return p.buf[:p.n] }

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
