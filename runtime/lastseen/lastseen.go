// Package lastseen batches device liveness into store writes, so a fleet
// heart-beating every few seconds costs one write per flush interval, not one
// per heartbeat. Only the newest sighting of each device is written. A batch
// is written when the interval ends or when it holds MaxPending devices,
// whichever comes first, so its memory is bounded whatever the size of the
// fleet or of a reconnect storm.
//
// It never blocks the caller on the store: Seen only touches memory.
package lastseen

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/graph"
)

// MaxPending is the number of devices whose sightings start a write before
// the interval ends.
const MaxPending = 1024

type key struct{ tenant, device string }

// sighting is what is pending for one device; the key holds its names, so an
// entry costs no second copy of them (a fleet of 19,000 keeps one each).
type sighting struct {
	at       int64 // unix nanoseconds
	firmware string
}

// Batcher collects sightings and writes them with Store.RecordSeen.
type Batcher struct {
	store   graph.Store
	every   time.Duration
	log     *slog.Logger
	flushes *prometheus.CounterVec

	mu      sync.Mutex
	pending map[key]sighting

	full chan struct{} // MaxPending reached: write now
	stop chan struct{}
	done chan struct{}
}

// New returns a batcher that flushes every interval until Close.
func New(store graph.Store, every time.Duration, log *slog.Logger, reg prometheus.Registerer) *Batcher {
	b := &Batcher{
		store:   store,
		every:   every,
		log:     log,
		pending: map[key]sighting{},
		full:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_lastseen_flushes_total",
			Help: "Batched last-seen writes to the store, by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(b.flushes)
	go b.loop()
	return b
}

// Seen records that a device was heard from. firmware is empty when unchanged.
func (b *Batcher) Seen(tenant, device string, at time.Time, firmware string) {
	k := key{tenant, device}
	b.mu.Lock()
	if firmware == "" {
		firmware = b.pending[k].firmware // keep a version reported earlier in this interval
	}
	b.pending[k] = sighting{at: at.UnixNano(), firmware: firmware}
	full := len(b.pending) >= MaxPending
	b.mu.Unlock()
	if full {
		select {
		case b.full <- struct{}{}:
		default: // a write is already due
		}
	}
}

func (b *Batcher) loop() {
	defer close(b.done)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.Flush(context.Background())
		case <-b.full:
			b.Flush(context.Background())
		case <-b.stop:
			return
		}
	}
}

// Flush writes what is pending now. On a store error the batch is put back
// (newer sightings win) and retried at the next flush.
func (b *Batcher) Flush(ctx context.Context) {
	b.mu.Lock()
	if len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	batch := make([]graph.Seen, 0, len(b.pending))
	for k, s := range b.pending {
		batch = append(batch, graph.Seen{Tenant: k.tenant, Device: k.device, At: time.Unix(0, s.at), Firmware: s.firmware})
	}
	// A fresh map, not clear(): a cleared map keeps its buckets, sized for the
	// busiest interval, for the life of the process.
	b.pending = make(map[key]sighting)
	b.mu.Unlock()

	if err := b.store.RecordSeen(ctx, batch); err != nil {
		b.flushes.WithLabelValues("error").Inc()
		b.log.Warn("last-seen flush failed; will retry", "devices", len(batch), "err", err)
		b.mu.Lock()
		for _, s := range batch {
			k := key{s.Tenant, s.Device}
			if _, newer := b.pending[k]; !newer {
				b.pending[k] = sighting{at: s.At.UnixNano(), firmware: s.Firmware}
			}
		}
		b.mu.Unlock()
		return
	}
	b.flushes.WithLabelValues("ok").Inc()
}

// Close stops the timer and writes what is pending.
func (b *Batcher) Close(ctx context.Context) {
	close(b.stop)
	<-b.done
	b.Flush(ctx)
}
