package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// recordAs posts a command to the API with a demo token; it returns the
// status.
func recordAs(t *testing.T, d webDemo, who, caseID, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url+"/v1/cases/"+caseID+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.env[who])
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		t.Logf("%s: %s", who, b)
	}
	return res.StatusCode
}

// webClient is a browser without a browser: a cookie jar, no redirects
// followed unless asked.
type webClient struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newWebClient(t testing.TB, d webDemo) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, base: d.url, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (w *webClient) get(path string) (*http.Response, string) {
	w.t.Helper()
	res, err := w.c.Get(w.base + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (w *webClient) post(path string, form url.Values, origin string) (*http.Response, string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

var hiddenField = regexp.MustCompile(`name="(csrf|cle)" value="([^"]*)"`)

func hidden(body, name string) string {
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

func (w *webClient) signIn(token string) *http.Response {
	w.t.Helper()
	_, body := w.get("/connexion")
	res, _ := w.post("/connexion", url.Values{"csrf": {hidden(body, "csrf")}, "jeton": {token}}, w.base)
	if res.Request.URL.Path != "/dossiers" {
		w.t.Fatalf("sign-in ended on %s (%d)", res.Request.URL.Path, res.StatusCode)
	}
	return res
}

func mustUUID(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func caseVersion(t testing.TB, d webDemo) uint64 {
	t.Helper()
	st, _, err := d.m.cases.Load(context.Background(), mustUUID(t, d.env["CASE_LEO"]))
	if err != nil {
		t.Fatal(err)
	}
	return st.Version
}

func TestWebSessionsCSRFAndHeaders(t *testing.T) {
	d := startWebDemo(t)
	w := newWebClient(t, d)
	res, _ := w.get("/connexion")
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy allows unsafe sources: %q", csp)
	}
	if res, _ := w.get("/dossiers"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("case list without a session: %d", res.StatusCode)
	}
	// The session cookie: HttpOnly, SameSite=Strict (Secure comes with TLS).
	_, body := w.get("/connexion")
	form := url.Values{"csrf": {hidden(body, "csrf")}, "jeton": {d.env["MECS"]}}
	w.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, _ = w.post("/connexion", form, d.url)
	w.c.CheckRedirect = nil
	var cookie string
	for _, c := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "maillage_session=") {
			cookie = c
		}
	}
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie over plain HTTP: %q", cookie)
	}
	if res, _ := w.post("/connexion", url.Values{"csrf": {"forged"}, "jeton": {d.env["ASE"]}}, d.url); res.StatusCode != http.StatusForbidden {
		t.Errorf("a sign-in without the form's CSRF secret: %d", res.StatusCode)
	}

	leo := "/dossiers/" + d.env["CASE_LEO"]
	_, body = w.get(leo + "/observation")
	csrf, key := hidden(body, "csrf"), hidden(body, "cle")
	if csrf == "" || key == "" {
		t.Fatal("the form has no CSRF token or idempotency key")
	}
	before := caseVersion(t, d)
	obs := url.Values{"csrf": {"forged"}, "cle": {key}, "summary": {"Observation envoyée deux fois"}, "category": {"daily_life"}}
	if res, body := w.post(leo+"/observation", obs, d.url); res.StatusCode != http.StatusOK || !strings.Contains(body, "Observation envoyée deux fois") {
		t.Errorf("a form with a stale CSRF token: %d, and it should come back filled", res.StatusCode)
	}
	obs.Set("csrf", csrf)
	if res, _ := w.post(leo+"/observation", obs, "http://evil.example"); res.StatusCode == http.StatusSeeOther || caseVersion(t, d) != before {
		t.Error("a form posted from another site was recorded")
	}
	for range 2 {
		if res, _ := w.post(leo+"/observation", obs, d.url); res.Request.URL.Path != leo {
			t.Fatalf("observation: ended on %s (%d)", res.Request.URL.Path, res.StatusCode)
		}
	}
	if after := caseVersion(t, d); after != before+1 {
		t.Errorf("a double submit recorded %d events, want 1", after-before)
	}

	// The domain's refusal comes back next to the field it names, the input kept.
	_, body = w.get(leo + "/synthese")
	res, body = w.post(leo+"/synthese", url.Values{"csrf": {hidden(body, "csrf")}, "cle": {hidden(body, "cle")},
		"decisions": {"Une décision sans participant"}}, d.url)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="erreur-participants"`) ||
		!strings.Contains(body, "Une décision sans participant") || !strings.Contains(body, `aria-describedby="erreur-participants"`) {
		t.Errorf("a meeting without participants: %d\n%s", res.StatusCode, body)
	}

	// One answer for a case that does not exist and one the viewer may not know.
	aed := newWebClient(t, d)
	aed.signIn(d.env["AED"])
	resA, bodyA := aed.get(leo)
	resB, bodyB := aed.get("/dossiers/00000000-0000-4000-8000-000000000000")
	if resA.StatusCode != http.StatusNotFound || resB.StatusCode != http.StatusNotFound || mainOf(bodyA) != mainOf(bodyB) {
		t.Errorf("unknown case %d, case not known to the viewer %d, bodies differ: %v", resB.StatusCode, resA.StatusCode, mainOf(bodyA) != mainOf(bodyB))
	}

	// Signing out ends the session.
	_, body = w.get("/dossiers")
	w.post("/deconnexion", url.Values{"csrf": {hidden(body, "csrf")}}, d.url)
	if res, _ := w.get("/dossiers"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after signing out: %d", res.StatusCode)
	}
}

func mainOf(body string) string {
	i, j := strings.Index(body, "<main"), strings.Index(body, "</main>")
	if i < 0 || j < i {
		return body
	}
	return body[i:j]
}

// The father, under the order keeping the placement secret, finds no place
// of life in any page's source nor in the live stream.
func TestWebSecretPlacementInSourceAndStream(t *testing.T) {
	d := startWebDemo(t)
	w := newWebClient(t, d)
	w.signIn(d.env["FATHER"])
	leo := "/dossiers/" + d.env["CASE_LEO"]
	for _, path := range []string{"/dossiers", leo, leo + "/imprimer", leo + "/consultations", leo + "/observation"} {
		_, body := w.get(path)
		for _, s := range secretPlace {
			if strings.Contains(body, s) {
				t.Errorf("%s tells the father %q", path, s)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.url+leo+"/flux?version=0", nil)
	res, err := w.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream content type %q", ct)
	}
	var stream strings.Builder
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		stream.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "event: version") {
			break
		}
	}
	if !strings.Contains(stream.String(), "event: sections") {
		t.Fatalf("no sections in the stream:\n%s", stream.String())
	}
	for _, s := range secretPlace {
		if strings.Contains(stream.String(), s) {
			t.Errorf("the live stream tells the father %q", s)
		}
	}
}

// TestWebInterventionKeepsTheJudgesOrders: an intervention agreed in the
// meeting goes the API's way; an unsupervised contact with the father, whose
// contacts the judge suspended, is refused next to the "accompanied" box,
// the input kept; a supervised one is recorded.
func TestWebInterventionKeepsTheJudgesOrders(t *testing.T) {
	d := startWebDemo(t)
	w := newWebClient(t, d)
	w.signIn(d.env["ASE"])
	leo := "/dossiers/" + d.env["CASE_LEO"]
	_, body := w.get(leo + "/intervention")
	if !strings.Contains(body, `name="contactWith"`) || !strings.Contains(body, `value="mecs-les-tilleuls"`) {
		t.Fatalf("the intervention form lists no members or family:\n%s", mainOf(body))
	}
	form := url.Values{"csrf": {hidden(body, "csrf")}, "cle": {hidden(body, "cle")}, "institution": {"mecs-les-tilleuls"},
		"description": {"Week-end chez le père"}, "modalities": {"hébergement"}, "timing": {"un week-end sur deux"},
		"start": {"2026-12-12"}, "contactWith": {d.env["FATHER_ID"]}}
	before := caseVersion(t, d)
	res, body := w.post(leo+"/intervention", form, d.url)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="erreur-supervised"`) ||
		!strings.Contains(body, "suspendu les contacts") || !strings.Contains(body, "Week-end chez le père") {
		t.Errorf("an unsupervised contact with the father: %d\n%s", res.StatusCode, mainOf(body))
	}
	if caseVersion(t, d) != before {
		t.Error("the refused intervention was recorded")
	}
	form.Set("supervised", "oui")
	form.Set("description", "Visite médiatisée avec le père")
	if res, _ := w.post(leo+"/intervention", form, d.url); res.Request.URL.Path != leo || caseVersion(t, d) != before+1 {
		t.Errorf("a supervised contact: ended on %s (%d), version %d", res.Request.URL.Path, res.StatusCode, caseVersion(t, d))
	}
}
