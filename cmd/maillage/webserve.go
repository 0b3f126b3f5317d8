package main

import (
	"net/http"
	"strings"

	"github.com/maillage/maillage/adapters/web"
)

// withWeb serves the web application (adapters/web) under / beside the API:
// /v1, /healthz, /readyz and /metrics stay the API's.
func (m *Main) withWeb(api http.Handler) (http.Handler, error) {
	app, err := web.New(m.reads, m.directory, web.WithLogger(m.log.With("component", "web")), web.WithWatcher(m.readModel))
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/healthz" || p == "/readyz" || p == "/metrics":
			api.ServeHTTP(w, r)
		default:
			app.ServeHTTP(w, r)
		}
	}), nil
}
