package dgraph

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/dgo/v230/protos/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard/switchyard/graph"
)

// Defaults for Options.
const (
	DefaultInstall        = "switchyard"
	DefaultUser           = "groot"
	DefaultConnectTimeout = 10 * time.Second
)

// ErrClosed is returned by every call after Close. It wraps
// graph.ErrUnavailable.
var ErrClosed = fmt.Errorf("store is closed: %w", graph.ErrUnavailable)

// Options say where the cluster is and who Switchyard is in it.
type Options struct {
	// Addresses are the gRPC endpoints (host:port) of one or more alphas.
	Addresses []string
	// HTTP is the base URL of an alpha's HTTP endpoint (http://host:8080),
	// where namespaces are created and dropped.
	HTTP string
	// User and Password are the galaxy guardian's credentials (User
	// defaults to groot).
	User, Password string
	// TLS, when set, secures both the gRPC and the HTTP connections.
	TLS *tls.Config
	// EncryptionKey (32 bytes) seals the namespace credentials kept in the
	// galaxy namespace. Changing it makes the stored credentials unreadable:
	// Open refuses a key that does not open what an earlier one sealed.
	EncryptionKey []byte
	// Install names this installation inside the cluster, so that several
	// (staging, production) can share one; default DefaultInstall.
	Install string
	// ConnectTimeout bounds Open's first contact; default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives warnings about cleanup that failed and will be
	// retried (default slog.Default()).
	Logger *slog.Logger
}

// Store is a graph.Store on a Dgraph cluster. It is safe for concurrent use.
type Store struct {
	opts    Options
	conns   []*grpc.ClientConn
	clients []api.DgraphClient
	galaxy  *session
	admin   *admin
	sealer  *sealer
	log     *slog.Logger
	closed  atomic.Bool

	mu       sync.Mutex
	sessions map[string]*tenantSession // by tenant id
}

// tenantSession is a session logged into one tenant's namespace.
type tenantSession struct {
	*session
	tenant string
}

var _ graph.Store = (*Store)(nil)

func (o *Options) check() error {
	var errs []error
	if len(o.Addresses) == 0 {
		errs = append(errs, errors.New("no gRPC address of an alpha (store.dgraph.addresses)"))
	}
	if u, err := url.Parse(o.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("the alpha's HTTP address %q must be an http:// or https:// URL (store.dgraph.http)", o.HTTP))
	}
	if o.Password == "" {
		errs = append(errs, errors.New("no guardian password (store.dgraph.password)"))
	}
	if len(o.EncryptionKey) != KeySize {
		errs = append(errs, fmt.Errorf("the encryption key (SWITCHYARD_ENCRYPTION_KEY) has %d bytes, want %d", len(o.EncryptionKey), KeySize))
	}
	if err := graph.ValidID("install", o.Install); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Open connects to the cluster, logs in as the galaxy guardian, brings the
// schema up to date and checks the encryption key. It fails with a message
// naming the address when the cluster cannot be reached in
// ConnectTimeout, and naming the user when the credentials are refused.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if opts.Install == "" {
		opts.Install = DefaultInstall
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("dgraph: %w", err)
	}
	seal, err := newSealer(opts.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("dgraph: %w", err)
	}
	s := &Store{opts: opts, sealer: seal, log: opts.Logger, sessions: map[string]*tenantSession{}}
	if err := s.dial(); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.closeConns()
		return nil, err
	}
	return s, nil
}

func (s *Store) dial() error {
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if s.opts.TLS != nil {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(s.opts.TLS))
	}
	// Reconnect within seconds when the cluster comes back (gRPC's own
	// default backs off up to two minutes).
	params := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: 2 * time.Second,
	})
	for _, addr := range s.opts.Addresses {
		conn, err := grpc.Dial(addr, creds, params)
		if err != nil {
			s.closeConns()
			return fmt.Errorf("dgraph: dial %s: %w", addr, err)
		}
		s.conns = append(s.conns, conn)
		s.clients = append(s.clients, api.NewDgraphClient(conn))
	}
	return nil
}

func (s *Store) start(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	galaxy, err := newSession(cctx, s.clients, s.opts.User, s.opts.Password, 0)
	switch {
	case err != nil && unavailable(cctx, err), err != nil && cctx.Err() != nil:
		how := "plain gRPC (no TLS)"
		if s.opts.TLS != nil {
			how = "TLS: check store.dgraph.tls, the cluster may want a client certificate"
		}
		return fmt.Errorf("dgraph: cannot reach the cluster at %s within %s (%s): %w: %v",
			strings.Join(s.opts.Addresses, ", "), s.opts.ConnectTimeout, how, graph.ErrUnavailable, err)
	case err != nil:
		return fmt.Errorf("dgraph: the cluster at %s refused the guardian %q: %v (check store.dgraph.user and store.dgraph.password)",
			strings.Join(s.opts.Addresses, ", "), s.opts.User, err)
	}
	s.galaxy = galaxy
	client := &http.Client{Timeout: time.Minute}
	if s.opts.TLS != nil {
		client.Transport = &http.Transport{TLSClientConfig: s.opts.TLS}
	}
	s.admin = &admin{url: strings.TrimSuffix(s.opts.HTTP, "/") + "/admin", client: client, guardian: galaxy}
	if err := s.checkHTTP(cctx, client); err != nil {
		return err
	}
	if err := s.migrateGalaxy(ctx); err != nil {
		return err
	}
	if err := s.checkKey(ctx); err != nil {
		return err
	}
	if err := s.migrateTenants(ctx); err != nil {
		return err
	}
	s.sweep(ctx, time.Now().Add(-pendingGrace))
	return nil
}

// checkHTTP makes sure the HTTP address is the same cluster's alpha.
func (s *Store) checkHTTP(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.opts.HTTP, "/")+"/health", nil)
	if err != nil {
		return fmt.Errorf("dgraph: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("dgraph: cannot reach the alpha's HTTP endpoint %s: %w: %v", s.opts.HTTP, graph.ErrUnavailable, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dgraph: the alpha's HTTP endpoint %s answered /health with %s", s.opts.HTTP, resp.Status)
	}
	return nil
}

// key is the galaxy key of one of this installation's nodes.
func (s *Store) key(parts ...string) string {
	return s.opts.Install + "/" + strings.Join(parts, "/")
}

// node is what a query returns of one node; a query selects the predicates
// it needs.
type node struct {
	UID           string    `json:"uid"`
	Key           string    `json:"sy.key"`
	Doc           string    `json:"sy.doc"`
	CreatedAt     time.Time `json:"sy.created_at"`
	SchemaVersion int       `json:"sy.schema_version"`
	KeyCheck      string    `json:"sy.key_check"`
	Namespace     uint64    `json:"tenant.namespace"`
	Secret        string    `json:"tenant.secret"`
	TenantSchema  int       `json:"tenant.schema_version"`
	Value         string    `json:"setting.value"`
	GarbageNS     uint64    `json:"garbage.namespace"`
	LastSeen      time.Time `json:"device.last_seen"`
	Firmware      string    `json:"device.firmware"`
}

// find is the query of one node by its key $k.
func find(fields string) string {
	return `query q($k: string) { n(func: eq(sy.key, $k)) { uid ` + fields + ` } }`
}

// byKey is find for an upsert: v is the node's uid.
func byKey(fields string) string {
	return `query q($k: string) { n(func: eq(sy.key, $k)) { v as uid ` + fields + ` } }`
}

// byKind is the query of every node of a kind.
func byKind(fields string) string {
	return `query q($k: string) { n(func: eq(sy.kind, $k)) { uid ` + fields + ` } }`
}

// nodes decodes the n block of a response.
func nodes(resp *api.Response) ([]node, error) {
	var out struct{ N []node }
	if err := json.Unmarshal(resp.Json, &out); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	return out.N, nil
}

// query runs a read of the n block with $k = k.
func (s *Store) query(ctx context.Context, sess *session, q, k string) ([]node, error) {
	resp, err := sess.do(ctx, &api.Request{Query: q, Vars: map[string]string{"$k": k}, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return nodes(resp)
}

// upsert runs the query q with $k = k and the mutations (their Cond decide
// whether each applies), committed at once, and returns the nodes the query
// found before the mutations.
func (s *Store) upsert(ctx context.Context, sess *session, q, k string, mus ...*api.Mutation) ([]node, *api.Response, error) {
	resp, err := sess.do(ctx, &api.Request{Query: q, Vars: map[string]string{"$k": k}, Mutations: mus})
	if err != nil {
		return nil, nil, err
	}
	ns, err := nodes(resp)
	return ns, resp, err
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("dgraph: encode %T: %v", v, err)) // only plain records and maps are encoded
	}
	return b
}

// forget is the deletion of every predicate of a node: Dgraph deletes a
// node's edges, not the node, and only those it is told (or its type lists).
// uid is a uid or "uid(v)".
func forget(uid string, predicates []string) []byte {
	m := map[string]any{"uid": uid}
	for _, p := range predicates {
		m[p] = nil
	}
	return mustJSON(m)
}

// The predicates of each kind of node.
var (
	tenantPredicates  = []string{"sy.key", "sy.kind", "sy.doc", "sy.created_at", "tenant.namespace", "tenant.secret", "tenant.schema_version"}
	garbagePredicates = []string{"sy.kind", "sy.created_at", "garbage.namespace"}
	recordPredicates  = []string{"sy.key", "sy.kind", "sy.doc", "sy.created_at", "device.last_seen", "device.firmware"}
)

func (s *Store) live() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Ping reads the galaxy's schema version node: it needs the cluster to
// answer and the guardian's session to be valid.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.live(); err != nil {
		return fmt.Errorf("dgraph: ping: %w", err)
	}
	_, err := s.query(ctx, s.galaxy, find("sy.schema_version"), s.key("meta"))
	return wrap(ctx, "ping", err)
}

// Close closes the connections. Calls made after it return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.closeConns()
}

func (s *Store) closeConns() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// newPassword returns a password for a namespace's guardian.
func newPassword() string {
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}
