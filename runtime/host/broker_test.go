package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/host/builtin"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// gate is a broker that records batch sizes and blocks while its gate is shut.
type gate struct {
	mu    sync.Mutex
	sizes []int
	open  chan struct{}
}

var gates sync.Map // config name → *gate

type gateConfig struct {
	Name string `json:"name"`
}

type gateBroker struct {
	gateConfig
}

func (g *gateBroker) Publish(ctx context.Context, batch []plugin.Message) error {
	v, _ := gates.Load(g.Name)
	gt := v.(*gate)
	<-gt.open
	gt.mu.Lock()
	defer gt.mu.Unlock()
	gt.sizes = append(gt.sizes, len(batch))
	return nil
}

func init() {
	plugin.Register(plugin.Info{ID: "brokers.test-gate", New: func() any { return new(gateBroker) }})
}

func newGate(t *testing.T, name string, open bool) (*gate, *runningBroker) {
	gt := &gate{open: make(chan struct{})}
	if open {
		close(gt.open)
	}
	gates.Store(name, gt)
	in, err := builtin.New(t.Context(), "brokers.test-gate", "acme", name, []byte(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return gt, startBroker(in, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func (g *gate) total() (n, batches int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.sizes {
		n += s
	}
	return n, len(g.sizes)
}

func TestBrokerBatchesAndDrainsOnClose(t *testing.T) {
	gt, b := newGate(t, "batches", true)
	for range 250 {
		if err := b.Offer(junction.Message{Subject: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.close(ctx)
	n, batches := gt.total()
	if n != 250 || batches < 3 {
		t.Fatalf("delivered %d messages in %d batches; want all 250, in batches of at most %d", n, batches, brokerBatch)
	}
	for _, s := range gt.sizes {
		if s > brokerBatch {
			t.Errorf("a batch of %d", s)
		}
	}
}

func TestBrokerQueueIsBounded(t *testing.T) {
	gt, b := newGate(t, "full", false) // the plugin does not return: the queue fills
	var full int
	for range brokerQueue + brokerBatch + 10 {
		if err := b.Offer(junction.Message{Subject: "s"}); errors.Is(err, ErrBrokerFull) {
			full++
		}
	}
	if full == 0 {
		t.Fatal("a broker that never returns took every message: its queue is not bounded")
	}
	close(gt.open)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.close(ctx)
	if n, _ := gt.total(); n+full != brokerQueue+brokerBatch+10 {
		t.Fatalf("delivered %d and refused %d of %d", n, full, brokerQueue+brokerBatch+10)
	}
}
