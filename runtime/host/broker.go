package host

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/runtime/host/builtin"
	"github.com/switchyard/switchyard/runtime/host/process"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Bounds of a broker instance's queue and batches.
const (
	brokerQueue   = 4096
	brokerBatch   = 100
	brokerLinger  = 20 * time.Millisecond
	brokerTimeout = 30 * time.Second
)

// ErrBrokerFull is what Offer returns when a broker's queue is full: the
// broker is slower than what its junctions send it.
var ErrBrokerFull = errors.New("broker queue full")

// runningBroker feeds one broker instance: junctions offer messages without
// waiting, and one worker hands them to the plugin in batches of up to
// brokerBatch, as soon as a batch is full or brokerLinger after its first
// message. A batch the plugin fails to deliver (after its own retries) is
// counted by the instance's error counter and logged; it is not retried
// again here.
type runningBroker struct {
	in    publisher
	attrs []any
	log   *slog.Logger
	queue chan junction.Message
	done  chan struct{}
}

// publisher is a broker instance: built in or in a process.
type publisher interface {
	Publish(ctx context.Context, batch []plugin.Message) error
}

var (
	_ publisher = (*builtin.Instance)(nil)
	_ publisher = (*process.Plugin)(nil)
)

func startBroker(in publisher, log *slog.Logger, attrs ...any) *runningBroker {
	b := &runningBroker{in: in, attrs: attrs, log: log, queue: make(chan junction.Message, brokerQueue), done: make(chan struct{})}
	go b.work()
	return b
}

// Offer queues m for the broker, or returns ErrBrokerFull.
func (b *runningBroker) Offer(m junction.Message) error {
	select {
	case b.queue <- m:
		return nil
	default:
		return ErrBrokerFull
	}
}

func (b *runningBroker) work() {
	defer close(b.done)
	batch := make([]plugin.Message, 0, brokerBatch)
	for first := range b.queue {
		batch = append(batch[:0], toPlugin(first))
		linger := time.NewTimer(brokerLinger)
	fill:
		for len(batch) < brokerBatch {
			select {
			case m, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, toPlugin(m))
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
		if err := b.in.Publish(ctx, batch); err != nil {
			b.log.Warn("broker did not deliver a batch", append(b.attrs, "messages", len(batch), "err", err)...)
		}
		cancel()
	}
}

// close stops taking messages and waits until the queued ones are handed
// to the plugin, or ctx ends.
func (b *runningBroker) close(ctx context.Context) {
	close(b.queue)
	select {
	case <-b.done:
	case <-ctx.Done():
		b.log.Warn("broker closed before its queue was delivered", b.attrs...)
	}
}

func toPlugin(m junction.Message) plugin.Message {
	return plugin.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}

func fromPlugin(m plugin.Message) junction.Message {
	return junction.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}
