package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values. Every label set is closed: never a device id or a value a
// device chooses.
const (
	refusedUnauthorized  = "unauthorized"
	refusedRevoked       = "device_revoked"
	refusedTooMany       = "too_many_connections"
	refusedNotFound      = "not_found"
	refusedBadRequest    = "bad_request"
	refusedShuttingDown  = "shutting_down"
	refusedUnavailable   = "unavailable"
	droppedOldest        = "drop_oldest"    // the oldest queued frame made room for a new one
	droppedNewest        = "drop_newest"    // a new frame refused because the queue was full
	droppedDisconnect    = "disconnect"     // a new frame refused; the session closed with 4029
	droppedSessionClosed = "session_closed" // frames still queued when their session ended
)

var (
	refusedReasons = []string{refusedUnauthorized, refusedRevoked, refusedTooMany, refusedNotFound,
		refusedBadRequest, refusedShuttingDown, refusedUnavailable}
	inTypes     = []string{"hello", "heartbeat", "data", "ack", "error", "firmware_status", "ping", "pong", frameTypeUnknown}
	outTypes    = []string{"welcome", "heartbeat", "message", "ack", "error", "firmware_offer", "pong", "close"}
	dropReasons = []string{droppedOldest, droppedNewest, droppedDisconnect, droppedSessionClosed}
	closeLabels = []string{"1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1011",
		"4000", "4002", "4003", "4004", "4008", "4029", "other"}
)

type metrics struct {
	connections prometheus.Gauge
	refused     *prometheus.CounterVec
	framesIn    *prometheus.CounterVec
	framesOut   *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	closes      *prometheus.CounterVec

	// Children resolved once: the hot path does no label hashing.
	in, out map[string]prometheus.Counter
	drop    map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_gateway_connections",
			Help: "Device WebSocket sessions open now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_handshakes_refused_total",
			Help: "Device handshakes refused before the WebSocket upgrade, by reason.",
		}, []string{"reason"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_frames_in_total",
			Help: "Frames received from devices, by frame type (unknown: malformed or unknown type).",
		}, []string{"type"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_frames_out_total",
			Help: "Frames written to devices, by frame type.",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_send_dropped_total",
			Help: "Message frames for devices that were dropped, by reason.",
		}, []string{"reason"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_closes_total",
			Help: "Device sessions ended, by WebSocket close code (1006: no close frame).",
		}, []string{"code"}),
		in:   map[string]prometheus.Counter{},
		out:  map[string]prometheus.Counter{},
		drop: map[string]prometheus.Counter{},
	}
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
	}
	for _, t := range inTypes {
		m.in[t] = m.framesIn.WithLabelValues(t)
	}
	for _, t := range outTypes {
		m.out[t] = m.framesOut.WithLabelValues(t)
	}
	for _, r := range dropReasons {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	for _, c := range closeLabels {
		m.closes.WithLabelValues(c)
	}
	if reg != nil {
		all := []prometheus.Collector{m.connections, m.refused, m.framesIn, m.framesOut, m.dropped, m.closes}
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
