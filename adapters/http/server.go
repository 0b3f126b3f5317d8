// Package http is Maillage's HTTP API v1 (chi): bearer-token
// authentication, strict JSON decoding, commands on cases with
// Idempotency-Key and If-Match, timelines as the caller may see them, and
// RFC 9457 problem+json errors. It is documented in docs/api.md.
package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/internal/reads"
)

// MaxBodyBytes bounds request bodies: a command is a few kilobytes at most.
const MaxBodyBytes = 64 << 10

// Handler serves the API.
type Handler struct {
	cases     *cases.Service
	directory *directory.Directory
	log       *slog.Logger
	router    chi.Router
	ids       *requestIDs     // see ops.go
	observer  RequestObserver // nil: none
	ready     []namedCheck    // /readyz checks
	reads     readModels      // see readmodels.go
	audit     *auditConfig    // see audit.go
	rs        *reads.Service  // every read of a case: decided and recorded there
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithReads answers every read of a case with rs (shared with the web
// view); without it the handler makes one over the case service from its
// read-model, access-log and signed-head options.
func WithReads(rs *reads.Service) Option { return func(h *Handler) { h.rs = rs } }

// NewHandler returns the API over the case service and the directory.
func NewHandler(svc *cases.Service, dir *directory.Directory, opts ...Option) *Handler {
	h := &Handler{cases: svc, directory: dir, log: slog.New(slog.DiscardHandler), ids: newRequestIDs()}
	for _, o := range opts {
		o(h)
	}
	if h.rs == nil {
		h.rs = reads.New(svc, h.readsOptions()...)
	}
	r := chi.NewRouter()
	r.Use(h.logRequests, middleware.Recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Type: problemType("no_such_route"), Title: "Introuvable", Status: http.StatusNotFound,
			Detail: "aucune ressource à cette adresse ; voir docs/api.md", Rule: "no_such_route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Type: problemType("method_not_allowed"), Title: "Méthode non permise", Status: http.StatusMethodNotAllowed,
			Detail: "cette méthode n'est pas permise sur cette ressource ; voir docs/api.md", Rule: "method_not_allowed"})
	})
	r.Get("/healthz", healthz)
	r.Get("/readyz", h.readyz)
	r.Route("/v1", func(r chi.Router) {
		r.Use(h.authenticate)
		r.Get("/me", h.me)
		r.Get("/institutions", h.institutions)
		r.Get("/cases", h.knownCases)
		r.Post("/cases", h.openCase)
		r.Get("/cases/{caseID}", h.summary)
		r.Post("/cases/{caseID}/events", h.recordEvent)
		r.Get("/cases/{caseID}/timeline", h.timeline)
		r.Get("/cases/{caseID}/access", h.caseAccess)
		r.Get("/cases/{caseID}/head", h.signedHead)
		r.Get("/cases/{caseID}/export", h.exportCase)
		r.Post("/cases/{caseID}/erase", h.eraseCase)
		r.Get("/audit/access", h.auditAccess)
		r.Get("/audit/public-key", h.publicKey)
		r.Get("/cases/{caseID}/plan", h.plan)
		r.Get("/cases/{caseID}/chronology", h.chronology)
		r.Get("/cases/{caseID}/visibility", h.visibility)
		r.Get("/cases/{caseID}/deadlines", h.caseDeadlines)
		r.Get("/deadlines", h.institutionDeadlines)
		r.Get("/directory", h.directoryAnswer)
		r.Get("/observatory", h.observatory)
	})
	h.router = r
	return h
}

// readsOptions are the reads service's options from the handler's.
func (h *Handler) readsOptions() []reads.Option {
	var opts []reads.Option
	if h.reads.models != nil {
		opts = append(opts, reads.WithReadModels(h.reads.models))
	}
	if h.audit != nil && h.audit.log != nil {
		opts = append(opts, reads.WithAccessLog(h.audit.log))
	}
	if h.audit != nil && h.audit.heads != nil {
		opts = append(opts, reads.WithSignedHeads(h.audit.heads))
	}
	return opts
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

type principalKey struct{}

// principal returns the authenticated caller.
func principal(ctx context.Context) directory.Principal {
	p, _ := ctx.Value(principalKey{}).(directory.Principal)
	return p
}

func (h *Handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maillage"`)
			writeProblem(w, r, Problem{Type: problemType("unauthenticated"), Title: "Authentification requise", Status: http.StatusUnauthorized,
				Detail: "ajoutez l'en-tête Authorization: Bearer <jeton>", Rule: "unauthenticated", Field: "Authorization"})
			return
		}
		p, err := h.directory.Authenticate(strings.TrimSpace(token))
		if errors.Is(err, directory.ErrUnknownToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maillage", error="invalid_token"`)
			writeProblem(w, r, Problem{Type: problemType("invalid_token"), Title: "Jeton inconnu", Status: http.StatusUnauthorized,
				Detail: "ce jeton n'est pas reconnu : vérifiez-le ou demandez-en un nouveau à l'administrateur", Rule: "invalid_token", Field: "Authorization"})
			return
		}
		if err != nil {
			writeError(w, r, h.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}
