package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/maillage/maillage/adapters/directory"
)

// Cookie names. The session cookie holds only a random id; the token stays
// on the server, so that a revoked token ends the session at its next
// request.
const (
	sessionCookie = "maillage_session"
	preCookie     = "maillage_pre" // the sign-in form's CSRF secret, before any session
	maxLifetime   = 12 * time.Hour
)

// session is one signed-in browser.
type session struct {
	id        string
	token     string
	csrf      string
	principal directory.Principal
	created   time.Time
	seen      time.Time
}

// sessions are kept in memory: a restart or another replica asks to sign in
// again (docs/web.md); the forms keep what was typed across it.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	idle time.Duration
	now  func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: 30 * time.Minute, now: now}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start opens a session for a token the directory knows.
func (ss *sessions) start(token string, p directory.Principal) *session {
	now := ss.now()
	s := &session{id: randomID(), token: token, csrf: randomID(), principal: p, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, old := range ss.byID {
		if ss.expired(old, now) {
			delete(ss.byID, id)
		}
	}
	ss.byID[s.id] = s
	return s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > ss.idle || now.Sub(s.created) > maxLifetime
}

// get returns the request's live session, its principal read again from the
// directory (a revoked token ends it).
func (ss *sessions) get(r *http.Request, dir *directory.Directory) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	now := ss.now()
	ss.mu.Lock()
	s, ok := ss.byID[c.Value]
	if ok && ss.expired(s, now) {
		delete(ss.byID, c.Value)
		ok = false
	}
	if ok {
		s.seen = now
	}
	ss.mu.Unlock()
	if !ok {
		return nil, false
	}
	if _, err := dir.Authenticate(s.token); err != nil {
		ss.end(s.id)
		return nil, false
	}
	return s, true
}

// alive reports whether a session still holds (for the live stream, which
// does not touch its idle time).
func (ss *sessions) alive(s *session, dir *directory.Directory) bool {
	ss.mu.Lock()
	_, ok := ss.byID[s.id]
	if ok && ss.now().Sub(s.created) > maxLifetime {
		ok = false
	}
	ss.mu.Unlock()
	if !ok {
		return false
	}
	_, err := dir.Authenticate(s.token)
	return err == nil
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	delete(ss.byID, id)
	ss.mu.Unlock()
}

// setCookie sets a cookie the page's scripts cannot read, sent back to this
// site only, and only over TLS when the request came over TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// sameOrigin rejects a form posted from another site: with SameSite=Strict
// cookies and the CSRF token it is a third guard.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return o == scheme+r.Host
}

func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// signedIn runs next with the session, or sends to the sign-in page.
func (h *Handler) signedIn(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.sessions.get(r, h.directory)
		if !ok {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				h.signInForm(w, r, http.StatusUnauthorized, signIn{Notice: "Connectez-vous pour continuer.", Return: r.URL.Path})
				return
			}
			http.Error(w, "session expirée", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && (!sameOrigin(r) || !tokensEqual(r.PostFormValue("csrf"), s.csrf)) {
			h.render(w, r, http.StatusForbidden, "error", page{Title: "Formulaire refusé", Session: s,
				Data: errorPage{Heading: "Formulaire refusé", Detail: "Ce formulaire a expiré ou ne vient pas de Maillage. Rechargez la page et recommencez."}})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r, s)
	}
}
