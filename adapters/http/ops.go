package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// RequestObserver is told of every answered request (adapters/prometheus
// counts them). route is the router's pattern, never the path (which holds
// case ids); it is empty for a request that matched no route.
type RequestObserver interface {
	ObserveRequest(method, route string, status int, d time.Duration)
}

// WithRequestObserver makes the handler report every answered request to o.
func WithRequestObserver(o RequestObserver) Option { return func(h *Handler) { h.observer = o } }

// ReadinessCheck is one condition /readyz checks: nil when ready. It must
// return promptly once ctx ends.
type ReadinessCheck func(ctx context.Context) error

// NotReady is an error a readiness check returns to say why, in French:
// /readyz shows Reason after the check's name. /readyz is not
// authenticated: a reason names no case and holds nothing of one.
type NotReady struct{ Reason string }

func (e *NotReady) Error() string { return e.Reason }

type namedCheck struct {
	name  string
	check ReadinessCheck
}

// ReadinessTimeout bounds all the checks of one /readyz request.
const ReadinessTimeout = 2 * time.Second

// WithReadiness adds a check to /readyz under a name (e.g. "store",
// "projections"). /readyz answers 200 when every check passes, 503 naming
// the failing ones otherwise.
func WithReadiness(name string, check ReadinessCheck) Option {
	return func(h *Handler) { h.ready = append(h.ready, namedCheck{name, check}) }
}

// healthz answers while the process serves: liveness, nothing else.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// readyz runs the readiness checks concurrently within ReadinessTimeout.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadinessTimeout)
	defer cancel()
	results := make([]error, len(h.ready))
	var wg sync.WaitGroup
	for i, c := range h.ready {
		wg.Go(func() { results[i] = c.check(ctx) })
	}
	wg.Wait()
	checks := make(map[string]string, len(h.ready))
	var failing []string
	for i, c := range h.ready {
		if results[i] != nil {
			requestLog(r.Context(), h.log).Warn("not ready", "check", c.name, "err", results[i])
			checks[c.name] = "failing"
			name := c.name
			var nr *NotReady
			if errors.As(results[i], &nr) {
				name += " (" + nr.Reason + ")"
			}
			failing = append(failing, name)
			continue
		}
		checks[c.name] = "ok"
	}
	if len(failing) > 0 {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Type: problemType("not_ready"), Title: "Service pas encore prêt", Status: http.StatusServiceUnavailable,
			Detail: "vérifications en échec : " + strings.Join(failing, ", "), Rule: "not_ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

// requestIDs makes the ids of this process's requests: a random prefix
// and a counter. A client's X-Request-Id is not trusted: it would put the
// client's text in the logs.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	b := make([]byte, 6)
	rand.Read(b)
	return &requestIDs{prefix: hex.EncodeToString(b)}
}

func (g *requestIDs) next() string {
	return g.prefix + "-" + strconv.FormatUint(g.n.Add(1), 10)
}

type loggerKey struct{}

// requestLog returns the logger of the request (with its request_id), or
// fallback outside a request.
func requestLog(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// RequestLogger returns the logger of the request ctx belongs to: every
// line it writes carries the request's request_id. Outside a request it is
// fallback.
func RequestLogger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	return requestLog(ctx, fallback)
}

// logRequests gives each request an id (answered in X-Request-Id, the
// handle a professional quotes to support), puts a logger carrying it in the
// request's context, logs one line per request (method, route pattern,
// status, duration) and reports it to the observer. It never logs the body,
// the query or the path (they carry case ids and content), nor the token.
// Probes (/healthz, /readyz) are logged at debug level.
func (h *Handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := h.ids.next()
		log := h.log.With("request_id", id)
		ctx := context.WithValue(r.Context(), middleware.RequestIDKey, id)
		ctx = context.WithValue(ctx, loggerKey{}, log)
		w.Header().Set("X-Request-Id", id)
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		route := chi.RouteContext(r.Context()).RoutePattern()
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		d := time.Since(start)
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "request", "method", r.Method, "route", route, "status", status, "duration", d)
		if h.observer != nil {
			h.observer.ObserveRequest(r.Method, route, status, d)
		}
	})
}
