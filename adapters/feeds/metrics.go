package feeds

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/domain"
)

// metrics are the relay's Prometheus metrics. Labels carry institution ids
// at most: never a case id, a pseudonym or anything about a person.
type metrics struct {
	lagEvents  prometheus.Gauge
	lagSeconds prometheus.Gauge
	position   prometheus.Gauge
	published  *prometheus.CounterVec // institution, kind (event, reveal, retract)
	retracted  *prometheus.CounterVec // institution
	erased     prometheus.Counter
	errors     prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "relay_lag_events",
			Help: "Events recorded in the store and not yet relayed to the partner feeds (counted up to 10000).",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "relay_lag_seconds",
			Help: "Age of the oldest event recorded and not yet relayed (0 when the relay is caught up).",
		}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "relay_position",
			Help: "Store position up to which every event is relayed.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "published_total",
			Help: "Feed messages published, per partner institution and kind (event, reveal, retract).",
		}, []string{"institution", "kind"}),
		retracted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "retracted_total",
			Help: "Retract notices published, per partner institution.",
		}, []string{"institution"}),
		erased: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "erase_notices_total",
			Help: "Erase notices published: a case whose personal data was erased, removed from one partner feed.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "maillage", Subsystem: "feed", Name: "relay_errors_total",
			Help: "Failures that made the relay start again from its checkpoint.",
		}),
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lagEvents, m.lagSeconds, m.position, m.published, m.retracted, m.erased, m.errors} {
		if err := r.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, errors.New("feeds: metrics already registered: one relay per registerer")
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) publishedMsg(inst domain.InstitutionID, kind Kind) {
	m.published.WithLabelValues(string(inst), string(kind)).Inc()
	if kind == KindRetract {
		m.retracted.WithLabelValues(string(inst)).Inc()
	}
}
