package dgraph_test

import (
	"testing"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
	"github.com/switchyard/switchyard/graph/storetest"
)

// BenchmarkStore runs the benchmarks every backend shares (see
// storetest.Bench) on a fresh installation of the shared cluster: a
// single-node Dgraph on loopback, as graph/embedded runs them on bbolt.
func BenchmarkStore(b *testing.B) {
	c := dgraphtest.Shared(b)
	storetest.Bench(b, func(b *testing.B) graph.Store { return c.Open(b) })
}
