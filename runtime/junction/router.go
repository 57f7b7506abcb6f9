// Package junction is the router: it takes each message from a source (today
// a device's data frame; with the plugin host, collectors too), finds the
// tenant's enabled junctions whose source pattern matches the subject, and
// hands the message to their targets.
//
// The routing table is held in memory, per tenant, and replaced whole when a
// tenant's junctions change; routing never reads the graph store and never
// blocks (device targets are queued by the gateway). A message that cannot
// be delivered is dropped observably: a counter by reason and a debug line.
// It never routes a message to another tenant's devices.
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

var (
	_ Sender              = (*gateway.Gateway)(nil)
	_ gateway.DataHandler = (*Router)(nil)
)

// Message is one message on its way through the router.
type Message struct {
	Tenant  string
	Source  string // who produced it: "device:<id>" or a plugin instance id
	Subject string
	Time    time.Time
	Payload json.RawMessage
}

// Drop reasons (the reason label of switchyard_junction_dropped_total).
const (
	DropNotConnected  = "not_connected"
	DropQueueFull     = "queue_full"
	DropNoDevice      = "no_matching_device"
	DropNoTransformer = "transform_unavailable"
	DropNoBroker      = "broker_unavailable"
)

// Router routes messages along junctions.
type Router struct {
	send Sender
	log  *slog.Logger

	mu    sync.Mutex // serialises writers of table
	table atomic.Pointer[map[string][]graph.Junction]

	boot      string // random per process, so ids never repeat across restarts
	seq       atomic.Uint64
	delivered *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

// New returns a router with an empty table. Attach its sender before
// routing: the gateway both feeds the router and is its device target.
func New(log *slog.Logger, reg prometheus.Registerer) *Router {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &Router{
		log:  log,
		boot: hex.EncodeToString(b[:]),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_junction_delivered_total",
			Help: "Messages handed to a target, by tenant and junction.",
		}, []string{"tenant", "junction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_junction_dropped_total",
			Help: "Messages a junction could not hand to a target, by reason.",
		}, []string{"tenant", "junction", "reason"}),
	}
	reg.MustRegister(r.delivered, r.dropped)
	empty := map[string][]graph.Junction{}
	r.table.Store(&empty)
	return r
}

// Attach sets where device targets are delivered; call it once, before the
// first message.
func (r *Router) Attach(s Sender) { r.send = s }

// Set replaces the junctions of one tenant (disabled ones are kept out).
func (r *Router) Set(tenant string, junctions []graph.Junction) {
	enabled := make([]graph.Junction, 0, len(junctions))
	for _, j := range junctions {
		if j.Enabled {
			enabled = append(enabled, j)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := maps.Clone(*r.table.Load())
	if len(enabled) == 0 {
		delete(next, tenant)
	} else {
		next[tenant] = enabled
	}
	r.table.Store(&next)
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
		Subject: "device." + id.Device + "." + stream,
		Time:    at,
		Payload: payload,
	})
}

// Route hands m to every matching junction of its tenant.
func (r *Router) Route(m Message) {
	for _, j := range (*r.table.Load())[m.Tenant] {
		if graph.MatchSubject(j.Source, m.Subject) {
			r.deliver(j, m)
		}
	}
}

func (r *Router) deliver(j graph.Junction, m Message) {
	if len(j.Transforms) > 0 {
		r.drop(j, m, DropNoTransformer)
		return
	}
	out := gateway.Outbound{ID: r.nextID(), Subject: m.Subject, Time: m.Time, Payload: m.Payload}
	for _, t := range j.Targets {
		switch {
		case t.Device != "":
			switch err := r.send.Send(m.Tenant, t.Device, out); {
			case err == nil:
				r.delivered.WithLabelValues(j.Tenant, j.ID).Inc()
			case errors.Is(err, gateway.ErrQueueFull):
				r.drop(j, m, DropQueueFull)
			default:
				r.drop(j, m, DropNotConnected)
			}
		case t.Selector != nil:
			if n := r.send.SendMatching(m.Tenant, t.Selector, out); n > 0 {
				r.delivered.WithLabelValues(j.Tenant, j.ID).Add(float64(n))
			} else {
				r.drop(j, m, DropNoDevice)
			}
		default:
			r.drop(j, m, DropNoBroker)
		}
	}
}

func (r *Router) drop(j graph.Junction, m Message, reason string) {
	r.dropped.WithLabelValues(j.Tenant, j.ID, reason).Inc()
	r.log.Debug("message dropped", "tenant", j.Tenant, "junction", j.ID, "subject", m.Subject, "reason", reason)
}

// nextID is a message id unique across restarts: <boot>-<sequence>.
func (r *Router) nextID() string {
	return r.boot + "-" + strconv.FormatUint(r.seq.Add(1), 10)
}
