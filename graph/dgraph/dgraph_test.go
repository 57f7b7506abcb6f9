package dgraph_test

import (
	"context"
	"os"
	"testing"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
	"github.com/switchyard/switchyard/graph/storetest"
)

// Every test here runs against a real Dgraph zero + alpha on loopback.
func TestMain(m *testing.M) { os.Exit(dgraphtest.Main(m)) }

// installs remembers the installation of each store the suite opened, so
// that reopen finds the same data.
type installs map[graph.Store]dgraph.Options

func TestConformance(t *testing.T) {
	c := dgraphtest.Shared(t)
	opened := installs{}
	open := func(t *testing.T, opts dgraph.Options) graph.Store {
		s, err := dgraph.Open(context.Background(), opts)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		opened[s] = opts
		return s
	}
	storetest.Run(t,
		func(t *testing.T) graph.Store { return open(t, c.Options(dgraphtest.Install())) },
		func(t *testing.T, old graph.Store) graph.Store {
			opts := opened[old]
			if err := old.Close(); err != nil {
				t.Errorf("close before reopen: %v", err)
			}
			return open(t, opts)
		})
}
