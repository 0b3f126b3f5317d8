package prometheus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadModels is what the projection runner (projections.Runner) tells of
// its progress.
type ReadModels interface {
	// Lag is how far behind the store the read models are.
	Lag() time.Duration
	// CaughtUp reports whether the runner has applied what the store held
	// when it started.
	CaughtUp() bool
	// Err is the error the runner stopped on, nil while it runs.
	Err() error
}

// RegisterReadModels exposes the read models' lag, read at each scrape:
// maillage_projections_lag_seconds, maillage_projections_caught_up (0 or 1)
// and maillage_projections_stopped (1 once the runner stopped on an event it
// could not apply).
func RegisterReadModels(reg prometheus.Registerer, r ReadModels) error {
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "projections", Name: "lag_seconds",
			Help: "How far behind the event store the read models are: while catching up, the age of the last applied event; " +
				"once caught up, how long after its recording the last event was applied.",
		}, func() float64 { return r.Lag().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "projections", Name: "caught_up",
			Help: "1 once the read models have applied what the store held when they started, 0 before.",
		}, func() float64 { return boolGauge(r.CaughtUp()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "projections", Name: "stopped",
			Help: "1 when the read models stopped on an event they could not apply (see the log), 0 while they run.",
		}, func() float64 { return boolGauge(r.Err() != nil) }),
	}
	for _, g := range gauges {
		if err := reg.Register(g); err != nil {
			return err
		}
	}
	return nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
