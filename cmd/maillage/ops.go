package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	mhttp "github.com/maillage/maillage/adapters/http"
	mprom "github.com/maillage/maillage/adapters/prometheus"
	"github.com/maillage/maillage/domain"
)

// storeReady checks that the event store answers: a read of a case that
// does not exist costs one round trip and reads nothing.
func storeReady(store domain.EventStore) mhttp.ReadinessCheck {
	return func(ctx context.Context) error {
		_, err := store.ReadCase(ctx, uuid.Nil, 0)
		return err
	}
}

// withMetrics serves the registry on GET /metrics, unauthenticated as
// Prometheus scrapes it, and everything else with api. Scrapes are neither
// logged nor counted as API requests. The metrics carry no personal data;
// a reverse proxy in front of a public address should still not forward
// /metrics.
func withMetrics(api http.Handler, reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", mprom.Handler(reg, log))
	mux.Handle("/", api)
	return mux
}
