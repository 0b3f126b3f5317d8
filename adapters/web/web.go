// Package web is Maillage's web application for synthesis meetings and
// families: server-rendered French pages over the read facade
// (internal/reads), with sessions, CSRF tokens, a strict
// Content-Security-Policy and live updates by server-sent events. Every read
// and every command goes through reads.Service, which decides with the
// domain policy and records the access: this package only presents what it
// answers. It is documented in docs/web.md.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/internal/reads"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Watcher tells that a case changed (projections.Runner.Watch): a signal
// after one or more events of the case were applied, from any replica.
type Watcher interface {
	Watch(ctx context.Context, id domain.CaseID) <-chan struct{}
}

// Handler serves the web application.
type Handler struct {
	reads     *reads.Service
	directory *directory.Directory
	watcher   Watcher // nil: pages do not update live
	log       *slog.Logger
	sessions  *sessions
	pages     map[string]*template.Template
	mux       *http.ServeMux
	now       func() time.Time
	heartbeat time.Duration
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithWatcher makes open case pages update when their case changes.
func WithWatcher(w Watcher) Option { return func(h *Handler) { h.watcher = w } }

// WithSessionTimeout sets how long a session lives without a request
// (default 30 minutes; sessions end after 12 hours in any case).
func WithSessionTimeout(d time.Duration) Option { return func(h *Handler) { h.sessions.idle = d } }

// WithClock sets the clock of sessions and dates (tests).
func WithClock(now func() time.Time) Option {
	return func(h *Handler) { h.now = now; h.sessions.now = now }
}

// New returns the web application over the read facade and the directory.
func New(rs *reads.Service, dir *directory.Directory, opts ...Option) (*Handler, error) {
	h := &Handler{reads: rs, directory: dir, log: slog.New(slog.DiscardHandler), now: time.Now, heartbeat: 25 * time.Second}
	h.sessions = newSessions(h.now)
	for _, o := range opts {
		o(h)
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	h.pages = pages
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(http.FileServerFS(static))))
	m.HandleFunc("GET /{$}", h.home)
	m.HandleFunc("GET /connexion", h.signInPage)
	m.HandleFunc("POST /connexion", h.signIn)
	m.HandleFunc("POST /deconnexion", h.signedIn(h.signOut))
	m.HandleFunc("GET /dossiers", h.signedIn(h.caseList))
	m.HandleFunc("GET /dossiers/{id}", h.signedIn(h.casePage))
	m.HandleFunc("GET /dossiers/{id}/imprimer", h.signedIn(h.printPage))
	m.HandleFunc("GET /dossiers/{id}/consultations", h.signedIn(h.accessPage))
	m.HandleFunc("GET /dossiers/{id}/flux", h.signedIn(h.live))
	for _, f := range forms {
		m.HandleFunc("GET /dossiers/{id}/"+f.path, h.signedIn(h.formPage(f)))
		m.HandleFunc("POST /dossiers/{id}/"+f.path, h.submit(f))
	}
	m.HandleFunc("/", h.notFound)
	h.mux = m
	return h, nil
}

// ServeHTTP sets the security headers every answer carries, then serves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null on our own forms
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	h.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows only this server's own scripts, styles and
// connections: no inline script or style, no framing, forms posted here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessions.get(r, h.directory); ok {
		http.Redirect(w, r, "/dossiers", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	s, _ := h.sessions.get(r, h.directory)
	h.render(w, r, http.StatusNotFound, "error", page{Title: "Page introuvable", Session: s,
		Data: errorPage{Heading: "Page introuvable", Detail: "Aucune page à cette adresse."}})
}

// reader is who reads through the facade for a signed-in session.
func reader(s *session, purpose string) reads.Reader {
	return reads.Reader{Principal: s.principal.ID, Viewer: s.principal.Viewer(), Purpose: purpose}
}

// caseID reads the case id of the path; false (and a 404 page) when it is
// not one.
func (h *Handler) caseID(w http.ResponseWriter, r *http.Request, s *session) (domain.CaseID, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		h.caseNotFound(w, r, s)
		return domain.CaseID{}, false
	}
	return id, true
}

// caseNotFound is the one answer for a case that does not exist and one the
// viewer may not know of.
func (h *Handler) caseNotFound(w http.ResponseWriter, r *http.Request, s *session) {
	h.render(w, r, http.StatusNotFound, "error", page{Title: "Dossier introuvable", Session: s,
		Data: errorPage{Heading: "Dossier introuvable", Detail: "Ce dossier n'existe pas, ou votre accès ne vous permet pas de le connaître."}})
}

// readFailed answers a read the facade refused or could not serve.
func (h *Handler) readFailed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var de *domain.Error
	switch {
	case errors.Is(err, domain.ErrNotFound):
		h.caseNotFound(w, r, s)
	case errors.As(err, &de):
		h.render(w, r, http.StatusForbidden, "error", page{Title: "Accès refusé", Session: s,
			Data: errorPage{Heading: "Accès refusé", Detail: de.Message}})
	default:
		h.log.Error("web: read failed", "err", err)
		h.render(w, r, http.StatusServiceUnavailable, "error", page{Title: "Service indisponible", Session: s,
			Data: errorPage{Heading: "Service momentanément indisponible", Detail: "La lecture n'a pas pu être faite. Réessayez dans un instant."}})
	}
}

// refused reports whether err is a refusal of the facade for this viewer (a
// section it may not read): the section is then left out of the page.
func refused(err error) bool {
	var de *domain.Error
	return errors.As(err, &de) && de.Code == domain.EForbidden
}
