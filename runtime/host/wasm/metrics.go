package wasm

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// result is the outcome of one guest call (the result label).
type result int

const (
	resultOK      result = iota
	resultError          // the guest returned non-zero (or a replacement failed to start)
	resultTimeout        // stopped at its deadline or by the caller's cancellation
	resultTrap           // trapped or exited; the module instance is replaced
	resultLimit          // hit a limit (emits, output bytes, memory); replaced
	numResults
)

var resultLabels = [numResults]string{"ok", "error", "timeout", "trap", "limit"}

// discards reports whether a module instance must be replaced after r.
func (r result) discards() bool {
	return r == resultTimeout || r == resultTrap || r == resultLimit
}

type metrics struct {
	reg      prometheus.Registerer
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	replaced *prometheus.CounterVec
	fetches  *prometheus.CounterVec

	mu    sync.Mutex
	users map[[2]string]int // instances per (tenant, instance) label pair
}

// instanceMetrics are the children of one instance, resolved once so a
// call does no label hashing.
type instanceMetrics struct {
	calls    [numResults]prometheus.Counter
	duration prometheus.Observer
	replaced prometheus.Counter
	fetches  [numFetchResults]prometheus.Counter // nil unless the module imports http_fetch
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_plugin_calls_total",
			Help: "Calls into WASM plugin instances, by result (ok, error, timeout, trap, limit).",
		}, []string{"tenant", "instance", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_plugin_call_duration_seconds",
			Help:    "Duration of calls into WASM plugin instances.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 9), // 10 µs … 655 ms
		}, []string{"tenant", "instance"}),
		replaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_plugin_instances_replaced_total",
			Help: "WASM module instances discarded after a trap, timeout or limit and replaced on next use.",
		}, []string{"tenant", "instance"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_plugin_http_fetches_total",
			Help: "http_fetch calls of WASM plugin instances, by result (ok, not_allowed, limit, bad_argument, failed).",
		}, []string{"tenant", "instance", "result"}),
		users: map[[2]string]int{},
	}
	if reg != nil {
		all := m.collectors()
		for i, c := range all {
			if err := reg.Register(c); err != nil {
				for _, done := range all[:i] {
					reg.Unregister(done)
				}
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.duration, m.replaced, m.fetches}
}

func (m *metrics) unregister() {
	if m.reg != nil {
		for _, c := range m.collectors() {
			m.reg.Unregister(c)
		}
	}
}

// acquire returns the children of an instance; release drops its series
// when the last Instance with the same labels is closed (during a reload
// the old and the new Instance of an id overlap). The http_fetch series
// exist only for modules that import it (fetch).
func (m *metrics) acquire(tenant, instance string, fetch bool) instanceMetrics {
	m.mu.Lock()
	m.users[[2]string{tenant, instance}]++
	m.mu.Unlock()
	var im instanceMetrics
	for r, l := range resultLabels {
		im.calls[r] = m.calls.WithLabelValues(tenant, instance, l)
	}
	im.duration = m.duration.WithLabelValues(tenant, instance)
	im.replaced = m.replaced.WithLabelValues(tenant, instance)
	if fetch {
		for r, l := range fetchResultLabels {
			im.fetches[r] = m.fetches.WithLabelValues(tenant, instance, l)
		}
	}
	return im
}

func (m *metrics) release(tenant, instance string) {
	key := [2]string{tenant, instance}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[key]--; m.users[key] > 0 {
		return
	}
	delete(m.users, key)
	labels := prometheus.Labels{"tenant": tenant, "instance": instance}
	m.calls.DeletePartialMatch(labels)
	m.duration.Delete(labels)
	m.replaced.Delete(labels)
	m.fetches.DeletePartialMatch(labels)
}
