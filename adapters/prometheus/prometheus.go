// Package prometheus exposes Maillage's metrics with the Prometheus client:
// a registry with the Go runtime and process collectors (NewRegistry), the
// /metrics handler (Handler), the HTTP API's request metrics (HTTPMetrics,
// fed by adapters/http through its request observer) and an event store
// decorator that measures appends, reads and store errors (InstrumentStore).
//
// Other packages that expose metrics (the relay and feeds, the projection
// runner) take the same registry through their own WithRegisterer option:
// nothing here, nor anywhere, uses the global default registry.
//
// No label carries a case id, a child reference, a name or any other
// personal data: labels are route patterns, methods, statuses, outcomes and
// operation names, all from small fixed sets.
package prometheus

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Maillage metric.
const Namespace = "maillage"

// NewRegistry returns a registry holding the Go runtime, process and build
// information collectors. Register Maillage's components on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// Handler serves the registry's metrics in the Prometheus exposition
// formats. Scrape failures are logged and counted
// (promhttp_metric_handler_errors_total) on the registry itself.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: 4,
	})
}

// slogPrinter adapts slog to promhttp's Println logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.log != nil {
		p.log.Error("metrics scrape", "err", slog.AnyValue(v))
	}
}
