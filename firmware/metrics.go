package firmware

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	offers      *prometheus.CounterVec
	results     *prometheus.CounterVec
	halts       *prometheus.CounterVec
	flushErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		offers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_firmware_offers_total",
			Help: "Firmware offers sent to devices (repeated offers after a reconnect included).",
		}, []string{"tenant"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_firmware_results_total",
			Help: "Firmware updates that ended, by result (installed or failed).",
		}, []string{"tenant", "result"}),
		halts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_firmware_rollout_halts_total",
			Help: "Rollouts halted because a stage failed too often.",
		}, []string{"tenant"}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_firmware_write_errors_total",
			Help: "Firmware records (histories, rollout counts) whose write behind failed and is retried.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.offers, m.results, m.halts, m.flushErrors} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
