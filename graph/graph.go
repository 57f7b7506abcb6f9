// Package graph defines the records Switchyard keeps — tenants, devices,
// junctions and plugin instances — and the Store interface every backend
// implements (graph/embedded on bbolt, graph/dgraph on Dgraph).
//
// The store is the source of truth, never the hot path: the runtime loads an
// in-memory view at start and writes through the store on every change. A
// device handshake or a relayed message never waits on the store.
//
// Every record belongs to exactly one tenant, and every call that reads or
// writes one is scoped to that tenant through Store.Tenant. A backend must
// never let a scope see another tenant's records.
package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// DefaultTenant is the tenant a single-user install works in. The runtime
// creates it at start when it does not exist.
const DefaultTenant = "default"

// Errors every backend returns (wrapped with context) so callers can map them
// to API codes with errors.Is.
var (
	// ErrNotFound: the tenant or record does not exist (in this scope).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a record with that id (or a unique field) already exists.
	ErrConflict = errors.New("already exists")
	// ErrTenantNotFound: a scoped call named a tenant that does not exist.
	// It matches ErrNotFound too, so callers that do not care can test for that.
	ErrTenantNotFound = fmt.Errorf("tenant %w", ErrNotFound)
	// ErrUnavailable: the backend cannot be reached; the caller may retry.
	ErrUnavailable = errors.New("store unavailable")
)

// InvalidError reports a record field that fails validation.
type InvalidError struct {
	Field   string // JSON name of the field, e.g. "id" or "targets[0].device"
	Message string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// Invalid returns an *InvalidError for field.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// ValidID checks an identifier of a tenant or record: 1–63 characters of
// lower-case letters, digits, '-', '_' and '.', starting with a letter or digit.
// Identifiers appear in URLs, subjects and metric labels, hence the narrow set.
func ValidID(field, id string) error {
	if id == "" {
		return Invalid(field, "is required")
	}
	if !idPattern.MatchString(id) {
		return Invalid(field, "%q must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit", id)
	}
	return nil
}

// Meta is what every record carries. The store sets Tenant, CreatedAt and
// UpdatedAt; the caller sets ID.
type Meta struct {
	Tenant    string    `json:"tenant"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RecordMeta gives a backend access to the common fields of any record.
func (m *Meta) RecordMeta() *Meta { return m }

// Record is implemented by pointers to every tenant-scoped record type.
type Record interface {
	RecordMeta() *Meta
	Validate() error
}

// APIKey is a tenant's credential for the /api/v1 routes of that tenant
// only; the operator key manages tenants. Only the key's SHA-256 is kept:
// the key itself is shown once, when it is created or rotated.
type APIKey struct {
	Meta
	Name    string `json:"name,omitempty"`
	KeyHash []byte `json:"key_hash"`
}

// Validate checks the key's fields and reports every problem found.
func (k *APIKey) Validate() error {
	errs := []error{ValidID("id", k.ID)}
	if len(k.KeyHash) != 32 {
		errs = append(errs, Invalid("key_hash", "must be a SHA-256 digest (32 bytes)"))
	}
	return errors.Join(errs...)
}

// Tenant is an isolated namespace of devices, junctions and plugin instances.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Validate checks the tenant's fields.
func (t *Tenant) Validate() error { return ValidID("id", t.ID) }

// Device is one device that may connect to the gateway.
type Device struct {
	Meta
	Name   string            `json:"name,omitempty"`
	Model  string            `json:"model,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// TokenHash is the SHA-256 of the device's bearer token. The token itself
	// is shown once, when the device is created or its token rotated.
	TokenHash []byte `json:"token_hash"`
	// Revoked devices are refused at the handshake and disconnected.
	Revoked bool `json:"revoked"`
	// Firmware is the version the device reported in its last hello.
	Firmware string `json:"firmware,omitempty"`
	// LastSeen is the last time the device was heard from (batched writes).
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Validate checks the device's fields and reports every problem found.
func (d *Device) Validate() error {
	errs := []error{ValidID("id", d.ID), validLabels("labels", d.Labels)}
	if len(d.TokenHash) != 32 {
		errs = append(errs, Invalid("token_hash", "must be a SHA-256 digest (32 bytes)"))
	}
	return errors.Join(errs...)
}

func validLabels(field string, labels map[string]string) error {
	for k, v := range labels {
		if err := ValidID(field+"."+k, k); err != nil {
			return Invalid(field, "key %q: must be 1-63 characters of a-z, 0-9, '-', '_' or '.'", k)
		}
		if len(v) > 256 {
			return Invalid(field+"."+k, "value is longer than 256 bytes")
		}
	}
	return nil
}

// Junction routes the messages whose subject matches Source through a chain
// of transforms to a set of targets.
type Junction struct {
	Meta
	Name    string `json:"name,omitempty"`
	Enabled bool   `json:"enabled"`
	// Source is a subject pattern: tokens separated by '.', where '*' matches
	// one token and a final '>' matches one or more (e.g. "device.*.temp").
	Source string `json:"source"`
	// Collector, when set, limits the source to the messages of that
	// collector instance; otherwise any source of the tenant whose subject
	// matches (devices publish on device.<id>.<stream>).
	Collector string `json:"collector,omitempty"`
	// Transforms are plugin instance ids, applied in order.
	Transforms []string `json:"transforms,omitempty"`
	Targets    []Target `json:"targets"`
	// Throttle bounds the rate the junction takes messages in; messages
	// over it are dropped (and counted), never queued without bound.
	Throttle Throttle `json:"throttle,omitzero"`
}

// Throttle is a token bucket: Rate messages per second on average, Burst at
// once. The zero value means no throttle.
type Throttle struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst,omitempty"`
}

// Target is one destination of a junction: exactly one of Device, Selector
// or Broker is set.
type Target struct {
	Device   string            `json:"device,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Broker   string            `json:"broker,omitempty"`
}

// Validate checks the junction's fields and reports every problem found
// (errors.Join of *InvalidError).
func (j *Junction) Validate() error {
	errs := []error{ValidID("id", j.ID)}
	if err := ValidSubjectPattern(j.Source); err != nil {
		errs = append(errs, Invalid("source", "%v", err))
	}
	if j.Collector != "" {
		errs = append(errs, ValidID("collector", j.Collector))
	}
	for i, t := range j.Transforms {
		errs = append(errs, ValidID(fmt.Sprintf("transforms[%d]", i), t))
	}
	if j.Throttle.Rate < 0 || math.IsNaN(j.Throttle.Rate) || math.IsInf(j.Throttle.Rate, 0) {
		errs = append(errs, Invalid("throttle.rate", "must be a positive number of messages per second (0: no throttle)"))
	}
	if j.Throttle.Burst < 0 || (j.Throttle.Burst > 0 && j.Throttle.Rate == 0) {
		errs = append(errs, Invalid("throttle.burst", "must be positive, and only with a rate"))
	}
	if len(j.Targets) == 0 {
		errs = append(errs, Invalid("targets", "at least one target is required"))
	}
	for i, t := range j.Targets {
		errs = append(errs, t.validate(fmt.Sprintf("targets[%d]", i)))
	}
	return errors.Join(errs...)
}

func (t Target) validate(field string) error {
	var errs []error
	set := 0
	if t.Device != "" {
		set++
		errs = append(errs, ValidID(field+".device", t.Device))
	}
	if t.Selector != nil {
		set++
		if len(t.Selector) == 0 {
			errs = append(errs, Invalid(field+".selector", "must name at least one label"))
		}
		errs = append(errs, validLabels(field+".selector", t.Selector))
	}
	if t.Broker != "" {
		set++
		errs = append(errs, ValidID(field+".broker", t.Broker))
	}
	if set != 1 {
		errs = append(errs, Invalid(field, "exactly one of device, selector or broker must be set"))
	}
	return errors.Join(errs...)
}

// PluginInstance is one configured instance of a plugin in a tenant: the
// fields of a plugins.yaml declaration, durations and sizes written as in
// that file ("2s", "16MiB"). What their values may be is checked where they
// are parsed (runtime/config); Validate checks what needs no parsing.
type PluginInstance struct {
	Meta
	// Use names the plugin as kind.name, e.g. "collectors.mqtt".
	Use string `json:"use"`
	// Runtime is "builtin", "process" or "wasm".
	Runtime string `json:"runtime"`
	// Module is the sha256 (lower-case hex) of the WASM module or process
	// binary.
	Module string `json:"module,omitempty"`
	// Config is the instance's configuration as a JSON object.
	Config json.RawMessage `json:"config,omitempty"`
	// Interval is how often a wasm collector is called, as a Go duration
	// ("2s").
	Interval string `json:"interval,omitempty"`
	// Limits bound each WASM instance; unset fields take the host's
	// defaults.
	Limits *PluginLimits `json:"limits,omitempty"`
	// HTTPFetch grants a WASM instance HTTP requests to the listed hosts.
	HTTPFetch *PluginHTTPFetch `json:"http_fetch,omitempty"`
	// Env names the variables of the relay's environment a process plugin
	// is given.
	Env []string `json:"env,omitempty"`
}

// PluginLimits bound a WASM plugin instance.
type PluginLimits struct {
	Memory      string `json:"memory,omitempty"`       // size of linear memory per module instance ("16MiB")
	CallTimeout string `json:"call_timeout,omitempty"` // Go duration: deadline of one call into the guest
	PoolSize    int    `json:"pool_size,omitempty"`    // module instances serving calls at once
}

// PluginHTTPFetch is a WASM instance's allowance of HTTP requests.
type PluginHTTPFetch struct {
	// Hosts are "host", "host:port", "*.suffix" or "*.suffix:port".
	Hosts       []string `json:"hosts,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`      // Go duration: one fetch, at most
	MaxResponse string   `json:"max_response,omitempty"` // size of a response body
	MaxRequest  string   `json:"max_request,omitempty"`  // size of a request's JSON
}

var (
	usePattern    = regexp.MustCompile(`^(collectors|transforms|brokers)\.[a-z0-9][a-z0-9_-]{0,62}$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks the instance's fields and reports every problem found.
func (p *PluginInstance) Validate() error {
	errs := []error{ValidID("id", p.ID)}
	if !usePattern.MatchString(p.Use) {
		errs = append(errs, Invalid("use", "%q must be kind.name with kind collectors, transforms or brokers", p.Use))
	}
	switch p.Runtime {
	case "builtin", "process", "wasm":
	default:
		errs = append(errs, Invalid("runtime", "%q must be builtin, process or wasm", p.Runtime))
	}
	if p.Module != "" && (p.Runtime == "wasm" || p.Runtime == "process") && !sha256Pattern.MatchString(p.Module) {
		errs = append(errs, Invalid("module", "%q must be the sha256 of the module: 64 lower-case hex digits", p.Module))
	}
	if len(p.Config) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(p.Config, &obj); err != nil || obj == nil {
			errs = append(errs, Invalid("config", "must be a JSON object"))
		}
	}
	return errors.Join(errs...)
}

// ValidSubjectPattern checks a subject pattern (see Junction.Source).
func ValidSubjectPattern(p string) error {
	if p == "" {
		return errors.New("is required")
	}
	tokens := splitSubject(p)
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token", p)
		case tok == ">" && i != len(tokens)-1:
			return fmt.Errorf("%q: '>' may only be the last token", p)
		}
	}
	return nil
}

// ValidSubject checks a concrete subject: tokens separated by '.', none empty
// and none a wildcard.
func ValidSubject(s string) error {
	if err := ValidSubjectPattern(s); err != nil {
		return err
	}
	for _, tok := range splitSubject(s) {
		if tok == "*" || tok == ">" {
			return fmt.Errorf("%q: wildcards are only allowed in patterns", s)
		}
	}
	return nil
}

// MatchSubject reports whether subject matches pattern (see Junction.Source).
func MatchSubject(pattern, subject string) bool {
	for {
		pt, prest, pmore := cutToken(pattern)
		st, srest, smore := cutToken(subject)
		switch {
		case pt == ">":
			return st != ""
		case pt != "*" && pt != st:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

func cutToken(s string) (tok, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func splitSubject(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Seen is a batched last-seen update for one device.
type Seen struct {
	Tenant   string
	Device   string
	At       time.Time
	Firmware string // empty: unchanged
}

// Collection is the create/get/list/update/delete set of one record type in
// one tenant. T is Device, Junction, PluginInstance, APIKey, FirmwareRelease,
// Rollout or FirmwareHistory.
type Collection[T any] interface {
	// Create stores a new record; ErrConflict if the id is taken.
	Create(ctx context.Context, rec T) (T, error)
	// Get returns the record with id; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (T, error)
	// List returns all records, ordered by id.
	List(ctx context.Context) ([]T, error)
	// Update replaces the record with rec.ID (CreatedAt is kept, and so are a
	// device's LastSeen and Firmware: only RecordSeen writes those);
	// ErrNotFound if there is none.
	Update(ctx context.Context, rec T) (T, error)
	// Delete removes the record with id; ErrNotFound if there is none.
	Delete(ctx context.Context, id string) error
}

// Scope is one tenant's view of the store. Calls on a scope whose tenant does
// not exist return ErrTenantNotFound.
type Scope interface {
	Devices() Collection[Device]
	Junctions() Collection[Junction]
	Plugins() Collection[PluginInstance]
	Keys() Collection[APIKey]
	// Releases are firmware releases; their ids are chosen by package
	// firmware from the model and version.
	Releases() Collection[FirmwareRelease]
	Rollouts() Collection[Rollout]
	// FirmwareHistories are kept by device id; deleting a device does not
	// delete its history (the caller does).
	FirmwareHistories() Collection[FirmwareHistory]
}

// Store is a graph backend.
type Store interface {
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants returns every tenant, ordered by id.
	ListTenants(ctx context.Context) ([]Tenant, error)
	UpdateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// DeleteTenant removes the tenant and every record in it.
	DeleteTenant(ctx context.Context, id string) error

	// Tenant returns the scope of one tenant; it does not check that the
	// tenant exists (its calls do).
	Tenant(id string) Scope

	// RecordSeen applies a batch of last-seen updates in one write. Updates
	// for devices that no longer exist are skipped; an entry without a time
	// refuses the batch. It does not change UpdatedAt (it is not an edit).
	RecordSeen(ctx context.Context, batch []Seen) error

	// GetSetting and PutSetting keep operator-level values outside every
	// tenant (e.g. the hash of the operator API key), under keys that are
	// valid ids. GetSetting returns ErrNotFound for a key never set.
	GetSetting(ctx context.Context, key string) ([]byte, error)
	PutSetting(ctx context.Context, key string, value []byte) error

	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	Close() error
}
