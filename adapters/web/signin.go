package web

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// signIn is the sign-in page: what to say, and what to come back to with
// the values of a form whose session had expired.
type signIn struct {
	CSRF   string
	Notice string
	Error  string
	Return string
	Values []formValue
}

type formValue struct{ Name, Value string }

// returnPath is where a sign-in may send back to: a page of this
// application, never another site.
var returnPath = regexp.MustCompile(`^/dossiers(/[0-9a-f-]{36}(/[a-z-]+)?)?$`)

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessions.get(r, h.directory); ok {
		http.Redirect(w, r, "/dossiers", http.StatusSeeOther)
		return
	}
	h.signInForm(w, r, http.StatusOK, signIn{Return: r.URL.Query().Get("retour")})
}

// signInForm renders the sign-in form with the browser's pre-session CSRF
// secret.
func (h *Handler) signInForm(w http.ResponseWriter, r *http.Request, status int, si signIn) {
	// One secret per browser, kept across renders, so that two sign-in
	// pages open in two tabs both work.
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) == 43 {
		si.CSRF = c.Value
	} else {
		si.CSRF = randomID()
	}
	if !returnPath.MatchString(si.Return) {
		si.Return = ""
	}
	setCookie(w, r, preCookie, si.CSRF, 3600)
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "signin", page{Title: "Connexion", Data: si})
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "formulaire illisible", http.StatusBadRequest)
		return
	}
	si := signIn{Return: r.PostFormValue("retour"), Values: keptValues(r.PostForm, "v:")}
	pre, err := r.Cookie(preCookie)
	if err != nil || !sameOrigin(r) || !tokensEqual(r.PostFormValue("csrf"), pre.Value) {
		si.Error = "Le formulaire de connexion a expiré : saisissez à nouveau votre jeton."
		h.signInForm(w, r, http.StatusForbidden, si)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("jeton"))
	p, err := h.directory.Authenticate(token)
	if token == "" || err != nil {
		si.Error = "Ce jeton n'est pas reconnu. Vérifiez-le ou demandez-en un nouveau à l'administrateur de Maillage."
		if token == "" {
			si.Error = "Saisissez le jeton d'accès qui vous a été remis."
		}
		h.signInForm(w, r, http.StatusUnauthorized, si)
		return
	}
	s := h.sessions.start(token, p)
	setCookie(w, r, sessionCookie, s.id, 0)
	setCookie(w, r, preCookie, "", -1)
	w.Header().Set("Cache-Control", "no-store")
	if !returnPath.MatchString(si.Return) {
		http.Redirect(w, r, "/dossiers", http.StatusSeeOther)
		return
	}
	if len(si.Values) > 0 {
		// A form whose session had expired: it comes back filled, with a
		// fresh CSRF token and its idempotency key, to be checked and sent.
		for _, f := range forms {
			if strings.HasSuffix(si.Return, "/"+f.path) {
				vals := url.Values{}
				for _, v := range si.Values {
					vals.Add(v.Name, v.Value)
				}
				r.SetPathValue("id", strings.Split(si.Return, "/")[2])
				h.showForm(w, r, s, f, vals, nil, "Votre session avait expiré : votre saisie est conservée. Vérifiez-la puis enregistrez.")
				return
			}
		}
	}
	http.Redirect(w, r, si.Return, http.StatusSeeOther)
}

// keptValues are a form's values to carry through the sign-in (without its
// CSRF token), or those carried, under prefix.
func keptValues(form url.Values, prefix string) []formValue {
	var out []formValue
	for name, vs := range form {
		n, ok := strings.CutPrefix(name, prefix)
		if prefix == "" {
			ok = name != "csrf"
		}
		if !ok {
			continue
		}
		for _, v := range vs {
			out = append(out, formValue{Name: n, Value: v})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	h.sessions.end(s.id)
	setCookie(w, r, sessionCookie, "", -1)
	h.signInForm(w, r, http.StatusOK, signIn{Notice: "Vous êtes déconnecté."})
}
