package dgraph_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/dgraph-io/dgo/v230"
	"github.com/dgraph-io/dgo/v230/protos/api"
	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
)

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// open opens a store with opts and closes it when the test ends.
func open(t *testing.T, opts dgraph.Options) *dgraph.Store {
	t.Helper()
	s, err := dgraph.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw is a dgo client of the test's own, logged into one namespace: it sees
// the cluster as anyone with that namespace's credentials would.
type raw struct {
	t  *testing.T
	dg *dgo.Dgraph
}

// login returns a raw client logged into namespace ns as groot, or the
// login's error.
func login(t *testing.T, c *dgraphtest.Cluster, password string, ns uint64) (*raw, error) {
	t.Helper()
	conn, err := grpc.Dial(c.GRPC, grpc.WithInsecure())
	if err != nil {
		t.Fatalf("dial %s: %v", c.GRPC, err)
	}
	t.Cleanup(func() { conn.Close() })
	dg := dgo.NewDgraphClient(api.NewDgraphClient(conn))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := dg.LoginIntoNamespace(ctx, dgraph.DefaultUser, password, ns); err != nil {
		return nil, err
	}
	return &raw{t: t, dg: dg}, nil
}

// mustLogin is login that fails the test on error.
func mustLogin(t *testing.T, c *dgraphtest.Cluster, password string, ns uint64) *raw {
	t.Helper()
	r, err := login(t, c, password, ns)
	if err != nil {
		t.Fatalf("log into namespace %d: %v", ns, err)
	}
	return r
}

// query runs q with vars and returns the nodes of its block n.
func (r *raw) query(q string, vars map[string]string) []map[string]any {
	r.t.Helper()
	resp, err := r.dg.NewReadOnlyTxn().QueryWithVars(r.t.Context(), q, vars)
	if err != nil {
		r.t.Fatalf("query %s: %v", q, err)
	}
	var out struct{ N []map[string]any }
	if err := json.Unmarshal(resp.Json, &out); err != nil {
		r.t.Fatalf("decode %s: %v", resp.Json, err)
	}
	return out.N
}

// set sets predicate p of the node whose sy.key is key to value, committed
// at once; it fails the test unless exactly one node has that key.
func (r *raw) set(key, p string, value any) {
	r.t.Helper()
	if n := r.query(`query q($k: string) { n(func: eq(sy.key, $k)) { uid } }`, map[string]string{"$k": key}); len(n) != 1 {
		r.t.Fatalf("%d nodes have sy.key %q, want 1", len(n), key)
	}
	set, _ := json.Marshal(map[string]any{"uid": "uid(v)", p: value})
	_, err := r.dg.NewTxn().Do(r.t.Context(), &api.Request{
		Query:     `query q($k: string) { n(func: eq(sy.key, $k)) { v as uid } }`,
		Vars:      map[string]string{"$k": key},
		Mutations: []*api.Mutation{{SetJson: set}},
		CommitNow: true,
	})
	if err != nil {
		r.t.Fatalf("set %s on %q: %v", p, key, err)
	}
}

// token returns a device token hash for tests.
func token(s string) []byte {
	h := make([]byte, 32)
	copy(h, s)
	return h
}

// device returns a valid device record.
func device(id, name string) graph.Device {
	return graph.Device{Meta: graph.Meta{ID: id}, Name: name, Model: "esp32", TokenHash: token(id)}
}
