// Package junction is the router: it takes each message from a source — a
// device's data frame or a collector plugin's output — finds the tenant's
// enabled junctions whose source matches, and for each one queues the
// message to that junction, which runs the transform chain and hands the
// results to the targets.
//
// Every junction has a bounded queue and two goroutines in series: one runs
// the transform chain, the other hands its outputs to the targets through a
// short bounded hand-off, so the transforms of a message overlap the fan-out
// of the one before (on a second core) while messages keep their order
// within a junction. A slow transform never blocks the source (the gateway's
// read loop, a collector). Routing reads only the in-memory table,
// replaced whole when a tenant's junctions change; it never reads the graph
// store. A message that cannot go on is dropped observably — a counter by
// reason and a rate-limited warning naming the junction — never silently. It
// never routes a message to another tenant's devices or transforms.
package junction

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/gateway"
)

// Sender delivers to devices; *gateway.Gateway implements it.
type Sender interface {
	Send(tenant, device string, m gateway.Outbound) error
	SendMatching(tenant string, selector map[string]string, m gateway.Outbound) int
}

// Stage is one transform of a chain: zero, one or many outputs per input.
type Stage interface {
	Transform(ctx context.Context, m Message, emit func(Message)) error
}

// ErrUnavailable is what a Stage or Broker returns (wrapped) when the
// instance it stands for is not running: the message is dropped with reason
// transform_unavailable or broker_unavailable.
var ErrUnavailable = errors.New("not running")

// Stages finds the transform instances junctions name; the plugin host
// implements it. A junction whose transform is not found drops its messages
// (reason transform_unavailable) until the tenant's junctions are set again.
type Stages interface {
	Stage(tenant, id string) (Stage, bool)
}

// Broker takes the messages of a junction's broker target; the plugin host
// implements it (queued and batched). Offer never waits: an error drops the
// message (reason broker_queue_full).
type Broker interface {
	Offer(m Message) error
}

// Brokers finds the broker instances junctions name; the plugin host
// implements it. A target whose broker is not found drops its messages
// (reason broker_unavailable).
type Brokers interface {
	Broker(tenant, id string) (Broker, bool)
}

var (
	_ Sender              = (*gateway.Gateway)(nil)
	_ gateway.DataHandler = (*Router)(nil)
)

// Message is one message on its way through the router.
type Message struct {
	Tenant  string
	Source  string // who produced it: "device:<id>" or a collector instance id
	Subject string
	Time    time.Time
	Payload json.RawMessage
}

// Drop reasons (the reason label of switchyard_junction_dropped_total).
const (
	DropThrottled     = "throttled"
	DropJunctionFull  = "junction_queue_full"
	DropChanged       = "junction_changed"
	DropTransformErr  = "transform_error"
	DropNoTransformer = "transform_unavailable"
	DropNotConnected  = "not_connected"
	DropQueueFull     = "device_queue_full"
	DropNoDevice      = "no_matching_device"
	DropNoBroker      = "broker_unavailable"
	DropBrokerFull    = "broker_queue_full"
	DropShutdown      = "shutdown"
)

// actionable are the drop reasons an operator must act on: they are logged
// as warnings (at most every warnEvery per junction); the others — a device
// offline, a throttle doing its job — only at debug level.
var actionable = map[string]bool{
	DropJunctionFull: true, DropTransformErr: true, DropNoTransformer: true, DropQueueFull: true, DropNoBroker: true,
	DropBrokerFull: true,
}

// DefaultQueueSize is a junction's queue when Options.QueueSize is 0.
const DefaultQueueSize = 1024

// handoff is how many transformed messages may wait for a junction's
// delivery stage: enough to keep both stages busy, small next to the queue,
// which is where a junction that cannot keep up drops.
const handoff = 64

// warnEvery bounds the drop warnings of one junction.
const warnEvery = 10 * time.Second

// Options configure a Router.
type Options struct {
	QueueSize int     // per junction; DefaultQueueSize when 0
	Stages    Stages  // nil: no transform is available
	Brokers   Brokers // nil: no broker is available
	Logger    *slog.Logger
	Registry  prometheus.Registerer
}

// Router routes messages along junctions.
type Router struct {
	send    Sender
	stages  Stages
	brokers Brokers
	log     *slog.Logger
	queue   int

	mu    sync.Mutex // serialises writers of table
	table atomic.Pointer[map[string][]*route]

	boot string // random per process, so ids never repeat across restarts
	seq  atomic.Uint64

	in, out, dropped *prometheus.CounterVec
}

// New returns a router with an empty table. Attach its sender before
// routing: the gateway both feeds the router and is its device target.
func New(o Options) *Router {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &Router{
		stages:  o.Stages,
		brokers: o.Brokers,
		log:     o.Logger,
		queue:   o.QueueSize,
		boot:    hex.EncodeToString(b[:]),
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_junction_messages_in_total",
			Help: "Messages a junction took in (matched its source and passed its throttle).",
		}, []string{"tenant", "junction"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_junction_messages_out_total",
			Help: "Messages a junction handed to a target (one per device reached).",
		}, []string{"tenant", "junction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_junction_dropped_total",
			Help: "Messages a junction dropped, by reason.",
		}, []string{"tenant", "junction", "reason"}),
	}
	if r.queue <= 0 {
		r.queue = DefaultQueueSize
	}
	o.Registry.MustRegister(r.in, r.out, r.dropped)
	empty := map[string][]*route{}
	r.table.Store(&empty)
	return r
}

// Attach sets where device targets are delivered; call it once, before the
// first message.
func (r *Router) Attach(s Sender) { r.send = s }

// Set replaces the junctions of one tenant (disabled ones are kept out). A
// junction whose definition did not change keeps its queue and stages; the
// stages of changed and removed junctions finish what they hold and stop.
func (r *Router) Set(tenant string, junctions []graph.Junction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := map[string]*route{}
	for _, rt := range (*r.table.Load())[tenant] {
		old[rt.j.ID] = rt
	}
	var routes []*route
	for _, j := range junctions {
		if !j.Enabled {
			continue
		}
		if rt, ok := old[j.ID]; ok && sameDefinition(rt.j, j) {
			routes = append(routes, rt)
			delete(old, j.ID)
			continue
		}
		routes = append(routes, r.start(j))
	}
	next := maps.Clone(*r.table.Load())
	if len(routes) == 0 {
		delete(next, tenant)
	} else {
		next[tenant] = routes
	}
	r.table.Store(&next)
	for _, rt := range old {
		rt.close()
	}
}

// Close stops every junction's stages after they have handled what they hold,
// or, when ctx ends first, drops the rest (counted, reason shutdown).
func (r *Router) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []*route
	for _, routes := range *r.table.Load() {
		for _, rt := range routes {
			rt.close()
			all = append(all, rt)
		}
	}
	for _, rt := range all {
		select {
		case <-rt.done:
		case <-ctx.Done():
			for _, rt := range all {
				rt.abort.Store(true)
			}
			<-rt.done
		}
	}
	empty := map[string][]*route{}
	r.table.Store(&empty)
}

func sameDefinition(a, b graph.Junction) bool {
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// Reload replaces the junctions of tenant with those in store. It runs when
// junctions are written, never on the routing path.
func (r *Router) Reload(ctx context.Context, store graph.Store, tenant string) error {
	list, err := store.Tenant(tenant).Junctions().List(ctx)
	if err != nil {
		return fmt.Errorf("junction: load junctions of tenant %q: %w", tenant, err)
	}
	r.Set(tenant, list)
	return nil
}

// DeviceData routes a data frame from a device as subject device.<id>.<stream>.
func (r *Router) DeviceData(id gateway.Identity, stream string, payload json.RawMessage, at time.Time) {
	r.Route(Message{
		Tenant:  id.Tenant,
		Source:  "device:" + id.Device,
		Subject: gateway.DataSubject(id.Device, stream),
		Time:    at,
		Payload: payload,
	})
}

// Route hands m to every matching junction of its tenant. It never blocks.
func (r *Router) Route(m Message) {
	for _, rt := range (*r.table.Load())[m.Tenant] {
		if rt.matches(m) {
			rt.offer(m)
		}
	}
}

// route is one running junction: its queue, stages and throttle.
type route struct {
	r      *Router
	j      graph.Junction
	stages []Stage // nil entry: not available
	bucket *bucket // nil: no throttle

	mu     sync.RWMutex // offer holds it to read closed; close takes it
	closed bool
	queue  chan Message // offered messages, to the transform stage
	// outputs carries the transform stage's outputs to the delivery stage;
	// it closes when the transform stage ends.
	outputs chan Message
	done    chan struct{} // closed when the delivery stage ends

	in, out  prometheus.Counter
	lastWarn atomic.Int64
	abort    atomic.Bool // shutting down past the deadline: drop what is left
}

func (r *Router) start(j graph.Junction) *route {
	rt := &route{
		r:       r,
		j:       j,
		queue:   make(chan Message, r.queue),
		outputs: make(chan Message, handoff),
		done:    make(chan struct{}),
		in:      r.in.WithLabelValues(j.Tenant, j.ID),
		out:     r.out.WithLabelValues(j.Tenant, j.ID),
	}
	if j.Throttle.Rate > 0 {
		rt.bucket = newBucket(j.Throttle.Rate, j.Throttle.Burst)
	}
	for _, id := range j.Transforms {
		var s Stage
		if r.stages != nil {
			s, _ = r.stages.Stage(j.Tenant, id)
		}
		rt.stages = append(rt.stages, s)
	}
	go rt.transform()
	go rt.deliverAll()
	return rt
}

func (rt *route) matches(m Message) bool {
	return (rt.j.Collector == "" || rt.j.Collector == m.Source) && graph.MatchSubject(rt.j.Source, m.Subject)
}

func (rt *route) offer(m Message) {
	if rt.bucket != nil && !rt.bucket.take(time.Now()) {
		rt.drop(m, DropThrottled, nil)
		return
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if rt.closed {
		rt.drop(m, DropChanged, nil)
		return
	}
	select {
	case rt.queue <- m:
		rt.in.Inc()
	default:
		rt.drop(m, DropJunctionFull, nil)
	}
}

func (rt *route) close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if !rt.closed {
		rt.closed = true
		close(rt.queue)
	}
}

// transform runs the chain over each queued message and passes the outputs
// on to the delivery stage.
func (rt *route) transform() {
	defer close(rt.outputs)
	var batch, next []Message
	for m := range rt.queue {
		if rt.abort.Load() {
			rt.drop(m, DropShutdown, nil)
			continue
		}
		batch = append(batch[:0], m)
		for i, s := range rt.stages {
			if s == nil {
				rt.drop(m, DropNoTransformer, fmt.Errorf("transform %q is not running", rt.j.Transforms[i]))
				batch = batch[:0]
				break
			}
			next = next[:0]
			var failed error
			for _, in := range batch {
				if err := s.Transform(context.Background(), in, func(o Message) { next = append(next, o) }); err != nil {
					failed = fmt.Errorf("transform %q: %w", rt.j.Transforms[i], err)
					break
				}
			}
			if failed != nil {
				reason := DropTransformErr
				if errors.Is(failed, ErrUnavailable) {
					reason = DropNoTransformer
				}
				rt.drop(m, reason, failed)
				batch = batch[:0]
				break
			}
			batch, next = next, batch
		}
		for _, o := range batch {
			rt.outputs <- o
		}
	}
}

// deliverAll hands the transform stage's outputs to the targets, in order.
func (rt *route) deliverAll() {
	defer close(rt.done)
	for o := range rt.outputs {
		if rt.abort.Load() {
			rt.drop(o, DropShutdown, nil)
			continue
		}
		rt.deliver(o)
	}
}

func (rt *route) deliver(m Message) {
	out := gateway.Outbound{ID: rt.r.nextID(), Subject: m.Subject, Time: m.Time, Payload: m.Payload}
	for _, t := range rt.j.Targets {
		switch {
		case t.Device != "":
			switch err := rt.r.send.Send(m.Tenant, t.Device, out); {
			case err == nil:
				rt.out.Inc()
			case errors.Is(err, gateway.ErrQueueFull):
				rt.drop(m, DropQueueFull, nil)
			default:
				rt.drop(m, DropNotConnected, nil)
			}
		case t.Selector != nil:
			if n := rt.r.send.SendMatching(m.Tenant, t.Selector, out); n > 0 {
				rt.out.Add(float64(n))
			} else {
				rt.drop(m, DropNoDevice, nil)
			}
		default:
			rt.toBroker(m, t.Broker)
		}
	}
}

func (rt *route) toBroker(m Message, id string) {
	var b Broker
	ok := false
	if rt.r.brokers != nil {
		b, ok = rt.r.brokers.Broker(m.Tenant, id)
	}
	if !ok {
		rt.drop(m, DropNoBroker, nil)
		return
	}
	switch err := b.Offer(m); {
	case errors.Is(err, ErrUnavailable):
		rt.drop(m, DropNoBroker, err)
	case err != nil:
		rt.drop(m, DropBrokerFull, nil)
	default:
		rt.out.Inc()
	}
}

// drop counts a dropped message and logs it: a warning for actionable
// reasons, at most every warnEvery per junction, else at debug level.
func (rt *route) drop(m Message, reason string, err error) {
	rt.r.dropped.WithLabelValues(rt.j.Tenant, rt.j.ID, reason).Inc()
	attrs := []any{"tenant", rt.j.Tenant, "junction", rt.j.ID, "subject", m.Subject, "reason", reason}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	now := time.Now().UnixNano()
	if last := rt.lastWarn.Load(); actionable[reason] && now-last > int64(warnEvery) && rt.lastWarn.CompareAndSwap(last, now) {
		rt.r.log.Warn("junction dropped a message", attrs...)
		return
	}
	rt.r.log.Debug("junction dropped a message", attrs...)
}

// nextID is a message id unique across restarts: <boot>-<sequence>.
func (r *Router) nextID() string {
	return r.boot + "-" + strconv.FormatUint(r.seq.Add(1), 10)
}

// bucket is a token bucket: rate tokens a second, at most burst held.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	if burst < 1 {
		burst = 1
	}
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
