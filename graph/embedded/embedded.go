package embedded

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchyard/switchyard/graph"
)

// SchemaVersion is the layout version this build writes. A file written by
// a newer build is refused; Open migrates an older file (see migrate.go).
const SchemaVersion = 3

// Defaults for Options.
const (
	// DefaultLockTimeout is how long Open waits for another process to
	// release the file: long enough for a restart to overlap a slow
	// shutdown, short enough to fail visibly.
	DefaultLockTimeout = 5 * time.Second
	// DefaultBatchDelay is how long a write waits for others to share its
	// commit (bbolt's own default is 10ms). BenchmarkCreate here, fsync
	// ~1.7ms: one writer ~310-370 creates/s at 1ms against ~73/s at 10ms,
	// eight writers ~1,800-2,400/s against ~610/s. Writes that arrive during
	// a commit join the next batch anyway, so a short delay loses little.
	DefaultBatchDelay = time.Millisecond
)

// initialMmapSize is the address space bbolt maps at open (not memory: only
// pages read are resident). bbolt otherwise maps the file's size rounded up
// and remaps as it grows (doubling up to 1 GiB), and a remap waits for every
// read transaction and unmaps every resident page; etcd maps 10 GiB for the
// same reason. A larger file is mapped whole, as before. A 32-bit process
// cannot spare the address space and keeps bbolt's default.
const initialMmapSize = (1 << 30) * (strconv.IntSize / 64)

// allocSize is how much the file grows past what a commit needs. With a
// mapping larger than the file, bbolt grows it by AllocSize (16 MiB by
// default) instead of to the mapping's size; 1 MiB keeps a small
// installation's file small.
const allocSize = 1 << 20

var (
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("database is locked by another process")
	// ErrNotDatabase is returned by Open when the file is neither empty nor
	// a Switchyard database (another program's file, or a corrupt one).
	ErrNotDatabase = errors.New("not a switchyard database")
	// ErrClosed is returned by every call after Close. It wraps
	// graph.ErrUnavailable.
	ErrClosed = fmt.Errorf("store is closed: %w", graph.ErrUnavailable)
)

// Bucket and key names. The tenant record and the kind buckets share a
// tenant's bucket; ids never contain '/', so no key can collide with them.
var (
	systemBucket    = []byte("system")
	settingsBucket  = []byte("settings")
	schemaKey       = []byte("schema_version")
	tenantsBucket   = []byte("tenants")
	tenantKey       = []byte("tenant")
	devicesBucket   = []byte("devices")
	junctionsBucket = []byte("junctions")
	pluginsBucket   = []byte("plugins")
	keysBucket      = []byte("keys")
	seenBucket      = []byte("seen") // observed fields of devices, see seen.go
	releasesBucket  = []byte("releases")
	rolloutsBucket  = []byte("rollouts")
	historyBucket   = []byte("firmware_history") // by device id
	// firmwareBuckets are the kind buckets schema version 3 added.
	firmwareBuckets = [][]byte{releasesBucket, rolloutsBucket, historyBucket}
	kindBuckets     = append([][]byte{devicesBucket, junctionsBucket, pluginsBucket, keysBucket, seenBucket}, firmwareBuckets...)
)

// Options tune Open. The zero value is what a production install wants.
type Options struct {
	// LockTimeout bounds the wait for a file lock held by another process;
	// zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// BatchDelay is how long a single-record write waits for concurrent
	// writes to share its commit; zero means DefaultBatchDelay.
	BatchDelay time.Duration
	// NoSync skips fsync on commit. For tests and benchmarks only: a crash
	// or power loss can lose recent writes.
	NoSync bool
}

// Store is a graph.Store in one bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

var _ graph.Store = (*Store)(nil)

// Open opens the database at path, creating it (and its folder, mode 0700)
// when it does not exist; the file is created with mode 0600.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("embedded: open: path is required")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("embedded: open %q: create folder: %w", path, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	err := checkExisting(path, timeout)
	var db *bolt.DB
	if err == nil {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: opts.NoSync, InitialMmapSize: initialMmapSize})
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("embedded: open %q: %w (waited %s)", path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("embedded: open %q: %w: %w", path, ErrNotDatabase, err)
	case err != nil:
		return nil, fmt.Errorf("embedded: open %q: %w", path, err)
	}
	db.AllocSize = allocSize
	db.MaxBatchDelay = opts.BatchDelay
	if db.MaxBatchDelay <= 0 {
		db.MaxBatchDelay = DefaultBatchDelay
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded: open %q: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// checkExisting refuses a file that is not a regular file, or a database
// file shorter than the pages its meta page counts (a partial copy, a full
// disk). bbolt opened read-write loads its freelist from the mapped file at
// once, and a page past the end of the file kills the process with SIGBUS
// instead of returning an error; read-only, it reads only the meta pages.
func checkExisting(path string, timeout time.Duration) error {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case info.IsDir():
		return errors.New("is a directory, not a database file")
	case !info.Mode().IsRegular():
		return fmt.Errorf("is not a regular file (%s)", info.Mode().Type())
	case info.Size() == 0:
		return nil // bbolt lays out an empty file
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return db.View(func(tx *bolt.Tx) error {
		if need := tx.Size(); need > info.Size() {
			return fmt.Errorf("%w: the file is truncated: it has %d bytes, its database needs %d", ErrNotDatabase, info.Size(), need)
		}
		return nil
	})
}

// initSchema lays out a new file, or checks that an existing one is ours
// and not newer than this build, and migrates it when it is older.
func initSchema(tx *bolt.Tx) error {
	sys := tx.Bucket(systemBucket)
	if sys == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return fmt.Errorf("%w: the file is a bbolt database without a %q bucket", ErrNotDatabase, systemBucket)
		}
		sys, err := tx.CreateBucket(systemBucket)
		if err != nil {
			return err
		}
		if _, err := sys.CreateBucket(settingsBucket); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(tenantsBucket); err != nil {
			return err
		}
		return sys.Put(schemaKey, []byte(strconv.Itoa(SchemaVersion)))
	}
	raw := sys.Get(schemaKey)
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return fmt.Errorf("%w: schema version %q is not a positive number", ErrNotDatabase, raw)
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this build supports (%d): run a newer switchyard or restore a backup", v, SchemaVersion)
	}
	if sys.Bucket(settingsBucket) == nil || tx.Bucket(tenantsBucket) == nil {
		return fmt.Errorf("%w: a system bucket is missing", ErrNotDatabase)
	}
	return migrate(tx, v)
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes the file and releases its lock. Calling it again does
// nothing.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close %q: %w", s.path, err)
	}
	return nil
}

// Ping reports whether the store is open and its layout readable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: ping: %w", err)
	}
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(systemBucket) == nil || tx.Bucket(tenantsBucket) == nil {
			return fmt.Errorf("%w: a system bucket is missing", ErrNotDatabase)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: ping: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the whole database to w while the
// store stays in use (writers are not blocked), and returns the bytes
// written. The copy is a bbolt file that Open accepts as is.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("embedded: backup %q: %w", s.path, err)
	}
	return n, nil
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return closedErr(s.db.View(fn))
}

// batch runs fn in a write transaction that concurrent calls may share. fn
// may run more than once, so it must set every result it reports afresh.
func (s *Store) batch(fn func(*bolt.Tx) error) error {
	return closedErr(s.db.Batch(fn))
}

func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// now is the timestamp the store writes: UTC, without a monotonic reading,
// so that it survives a JSON round trip unchanged.
func now() time.Time { return time.Now().UTC() }

// later returns now, or just after prev when the clock has not moved past
// it, so that UpdatedAt only ever increases.
func later(now, prev time.Time) time.Time {
	if now.After(prev) {
		return now
	}
	return prev.Add(time.Nanosecond)
}

// validID reports whether id could name a stored tenant, record or setting;
// an id that could not is simply not found.
func validID(id string) bool { return graph.ValidID("id", id) == nil }

// tenantBucket returns the bucket of tenant id, or ErrTenantNotFound.
func tenantBucket(tx *bolt.Tx, id string) (*bolt.Bucket, error) {
	if validID(id) {
		if b := tx.Bucket(tenantsBucket).Bucket([]byte(id)); b != nil {
			return b, nil
		}
	}
	return nil, graph.ErrTenantNotFound
}

// timestamps is the part of a stored record an update keeps.
type timestamps struct {
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func readTimestamps(data []byte) (timestamps, error) {
	var ts timestamps
	if err := json.Unmarshal(data, &ts); err != nil {
		return ts, fmt.Errorf("decode stored record: %w", err)
	}
	return ts, nil
}

// CreateTenant stores a new tenant with empty collections.
func (s *Store) CreateTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	fail := func(err error) (graph.Tenant, error) {
		return graph.Tenant{}, fmt.Errorf("embedded: create tenant %q: %w", t.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := t.Validate(); err != nil {
		return fail(err)
	}
	ts := now()
	t.CreatedAt, t.UpdatedAt = ts, ts
	data, err := json.Marshal(t)
	if err != nil {
		return fail(err)
	}
	err = s.batch(func(tx *bolt.Tx) error {
		all := tx.Bucket(tenantsBucket)
		if all.Bucket([]byte(t.ID)) != nil {
			return graph.ErrConflict
		}
		b, err := all.CreateBucket([]byte(t.ID))
		if err != nil {
			return err
		}
		for _, name := range kindBuckets {
			if _, err := b.CreateBucket(name); err != nil {
				return err
			}
		}
		return b.Put(tenantKey, data)
	})
	if err != nil {
		return fail(err)
	}
	return decodeTenant(data)
}

// GetTenant returns the tenant with id.
func (s *Store) GetTenant(ctx context.Context, id string) (graph.Tenant, error) {
	var t graph.Tenant
	err := ctx.Err()
	if err == nil {
		err = s.view(func(tx *bolt.Tx) error {
			b, err := tenantBucket(tx, id)
			if err != nil {
				return err
			}
			t, err = decodeTenant(b.Get(tenantKey))
			return err
		})
	}
	if err != nil {
		return graph.Tenant{}, fmt.Errorf("embedded: get tenant %q: %w", id, err)
	}
	return t, nil
}

// ListTenants returns every tenant, ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]graph.Tenant, error) {
	out := []graph.Tenant{}
	err := ctx.Err()
	if err == nil {
		err = s.view(func(tx *bolt.Tx) error {
			all := tx.Bucket(tenantsBucket)
			return all.ForEachBucket(func(k []byte) error {
				t, err := decodeTenant(all.Bucket(k).Get(tenantKey))
				if err != nil {
					return fmt.Errorf("tenant %q: %w", k, err)
				}
				out = append(out, t)
				return nil
			})
		})
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: list tenants: %w", err)
	}
	return out, nil
}

// UpdateTenant replaces the tenant with t.ID, keeping its CreatedAt.
func (s *Store) UpdateTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	fail := func(err error) (graph.Tenant, error) {
		return graph.Tenant{}, fmt.Errorf("embedded: update tenant %q: %w", t.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := t.Validate(); err != nil {
		return fail(err)
	}
	ts := now()
	var data []byte
	err := s.batch(func(tx *bolt.Tx) error {
		b, err := tenantBucket(tx, t.ID)
		if err != nil {
			return err
		}
		prev, err := readTimestamps(b.Get(tenantKey))
		if err != nil {
			return err
		}
		t.CreatedAt, t.UpdatedAt = prev.CreatedAt, later(ts, prev.UpdatedAt)
		if data, err = json.Marshal(t); err != nil {
			return err
		}
		return b.Put(tenantKey, data)
	})
	if err != nil {
		return fail(err)
	}
	return decodeTenant(data)
}

// DeleteTenant removes the tenant and every record in it.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	err := ctx.Err()
	if err == nil {
		err = s.batch(func(tx *bolt.Tx) error {
			if _, err := tenantBucket(tx, id); err != nil {
				return err
			}
			return tx.Bucket(tenantsBucket).DeleteBucket([]byte(id))
		})
	}
	if err != nil {
		return fmt.Errorf("embedded: delete tenant %q: %w", id, err)
	}
	return nil
}

func decodeTenant(data []byte) (graph.Tenant, error) {
	var t graph.Tenant
	if data == nil {
		return t, fmt.Errorf("%w: tenant record is missing", ErrNotDatabase)
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return graph.Tenant{}, fmt.Errorf("decode stored tenant: %w", err)
	}
	return t, nil
}

// Tenant returns the scope of tenant id; its calls return ErrNotFound while
// the tenant does not exist.
func (s *Store) Tenant(id string) graph.Scope { return scope{s: s, tenant: id} }

type scope struct {
	s      *Store
	tenant string
}

var _ graph.Scope = scope{}

func (sc scope) Devices() graph.Collection[graph.Device] {
	return collection[graph.Device, *graph.Device]{s: sc.s, tenant: sc.tenant, kind: deviceKind, bucket: devicesBucket}
}

func (sc scope) Junctions() graph.Collection[graph.Junction] {
	return collection[graph.Junction, *graph.Junction]{s: sc.s, tenant: sc.tenant, kind: "junction", bucket: junctionsBucket}
}

func (sc scope) Plugins() graph.Collection[graph.PluginInstance] {
	return collection[graph.PluginInstance, *graph.PluginInstance]{s: sc.s, tenant: sc.tenant, kind: "plugin instance", bucket: pluginsBucket}
}

func (sc scope) Keys() graph.Collection[graph.APIKey] {
	return collection[graph.APIKey, *graph.APIKey]{s: sc.s, tenant: sc.tenant, kind: "API key", bucket: keysBucket}
}

func (sc scope) Releases() graph.Collection[graph.FirmwareRelease] {
	return collection[graph.FirmwareRelease, *graph.FirmwareRelease]{s: sc.s, tenant: sc.tenant, kind: "firmware release", bucket: releasesBucket}
}

func (sc scope) Rollouts() graph.Collection[graph.Rollout] {
	return collection[graph.Rollout, *graph.Rollout]{s: sc.s, tenant: sc.tenant, kind: "rollout", bucket: rolloutsBucket}
}

func (sc scope) FirmwareHistories() graph.Collection[graph.FirmwareHistory] {
	return collection[graph.FirmwareHistory, *graph.FirmwareHistory]{s: sc.s, tenant: sc.tenant, kind: "firmware history", bucket: historyBucket}
}

// RecordSeen sets LastSeen (and Firmware, when given) of every device in
// batch, in one transaction. Entries naming a tenant or device that does not
// exist are skipped. An entry without a time is refused before anything is
// written.
func (s *Store) RecordSeen(ctx context.Context, batch []graph.Seen) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: record seen: %w", err)
	}
	for i, e := range batch {
		if e.At.IsZero() {
			return fmt.Errorf("embedded: record seen: %w", graph.Invalid(fmt.Sprintf("batch[%d].at", i), "is required"))
		}
	}
	if len(batch) == 0 {
		return nil
	}
	// In key order, bbolt appends to pages instead of splitting pages all
	// over the bucket: fewer pages are copied, written and kept in memory.
	sorted := slices.SortedFunc(slices.Values(batch), func(a, b graph.Seen) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Device, b.Device))
	})
	err := closedErr(s.db.Update(func(tx *bolt.Tx) error {
		for _, e := range sorted {
			tb, err := tenantBucket(tx, e.Tenant)
			if err != nil || !validID(e.Device) {
				continue
			}
			devices, seen, err := deviceBuckets(tb, e.Tenant)
			if err != nil {
				return err
			}
			// The seen entry proves the device exists; only a device stored
			// before every device had one needs the devices bucket, whose
			// pages a flush of the whole fleet would otherwise read.
			key := []byte(e.Device)
			old := seen.Get(key)
			if old == nil && devices.Get(key) == nil {
				continue
			}
			if err := recordSeen(seen, e, old); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("embedded: record seen (%d entries): %w", len(batch), err)
	}
	return nil
}

// GetSetting returns a copy of the operator-level value stored under key.
func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := ctx.Err()
	if err == nil {
		err = s.view(func(tx *bolt.Tx) error {
			if !validID(key) {
				return graph.ErrNotFound
			}
			// A cursor tells a key with an empty value from a missing key.
			k, v := tx.Bucket(systemBucket).Bucket(settingsBucket).Cursor().Seek([]byte(key))
			if string(k) != key {
				return graph.ErrNotFound
			}
			out = append([]byte{}, v...)
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: get setting %q: %w", key, err)
	}
	return out, nil
}

// PutSetting stores value under key (an id: a-z, 0-9, '-', '_', '.').
func (s *Store) PutSetting(ctx context.Context, key string, value []byte) error {
	err := ctx.Err()
	if err == nil {
		err = graph.ValidID("key", key)
	}
	if err == nil {
		value = append([]byte{}, value...) // the caller may reuse its slice
		err = s.batch(func(tx *bolt.Tx) error {
			return tx.Bucket(systemBucket).Bucket(settingsBucket).Put([]byte(key), value)
		})
	}
	if err != nil {
		return fmt.Errorf("embedded: put setting %q: %w", key, err)
	}
	return nil
}
