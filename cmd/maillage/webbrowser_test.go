package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// webDemo is the real server on the demo territory, with the tokens and
// case ids it printed.
type webDemo struct {
	m   *Main
	url string
	env map[string]string // ASE, MECS, DITEP, FATHER, CASE_LEO, FATHER_ID, ...
}

var exportLine = regexp.MustCompile(`(?m)^export (\w+)=(\S+)`)

func startWebDemo(t testing.TB) webDemo {
	t.Helper()
	var out bytes.Buffer
	m := NewMain(&out, io.Discard)
	if err := m.ParseFlags([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0", "--log-format", "json", "--demo"}); err != nil {
		t.Fatal(err)
	}
	m.log = slog.New(slog.DiscardHandler)
	if os.Getenv("MAILLAGE_WEB_DEBUG") != "" {
		m.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	d := webDemo{m: m, url: m.URL(), env: map[string]string{}}
	for _, kv := range exportLine.FindAllStringSubmatch(out.String(), -1) {
		d.env[kv[1]] = kv[2]
	}
	if d.env["CASE_LEO"] == "" || d.env["MECS"] == "" {
		t.Fatalf("the demo printed no tokens:\n%s", out.String())
	}
	return d
}

// browserTools are Debian's chromium and axe-core, as .ci/run installs them.
type browserTools struct {
	chromium string
	axe      []byte
}

// needBrowser finds chromium and axe-core: missing, the test fails under CI
// and is skipped elsewhere, saying how to install them.
func needBrowser(t *testing.T) browserTools {
	t.Helper()
	missing := func(what, how string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: the end-to-end web tests need it under CI (%s; .ci/run does it)", what, how)
		}
		t.Skipf("%s not found: %s to run the end-to-end web tests", what, how)
	}
	path := env("MAILLAGE_CHROMIUM", "/usr/bin/chromium")
	if _, err := os.Stat(path); err != nil {
		missing("chromium", "apt-get install -y chromium, or set MAILLAGE_CHROMIUM")
	}
	dir := os.Getenv("MAILLAGE_AXE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "maillage", "axe")
	}
	axe, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		missing("axe-core", "npm install --prefix "+dir+" axe-core@"+axeVersion+", or set MAILLAGE_AXE")
	}
	return browserTools{chromium: path, axe: axe}
}

// axeVersion is the axe-core .ci/run installs.
const axeVersion = "4.14.1"

// newBrowser starts one headless chromium for the test; each tab() of it is
// a browser context of its own (its own cookies: another person).
func newBrowser(t *testing.T, tools browserTools) func() context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(tools.chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "fr-FR"), chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return func() context.Context {
		tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		tab, cancelTimeout := context.WithTimeout(tab, 90*time.Second)
		t.Cleanup(cancelTimeout)
		return tab
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor waits until a JavaScript condition holds in the page.
func waitFor(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	// A navigation destroys the page's context under a poll: poll again
	// in the new page.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		_, err := chromedp.Run(pctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage:\n%s", cond, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signInBrowser signs in on the sign-in page with a token.
func signInBrowser(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(base+"/connexion"), chromedp.WaitVisible(chromedp.ID("jeton")),
		chromedp.SendKeys(chromedp.ID("jeton"), token), chromedp.Submit(chromedp.ID("jeton")))
	waitFor(t, ctx, `location.pathname === "/dossiers" && document.readyState === "complete"`)
}

// pageText is what the page shows, and its source: the DOM as it stands and
// the HTML as served (fetched again by the page, with its cookies).
func pageSource(t *testing.T, ctx context.Context) string {
	t.Helper()
	dom := eval[string](t, ctx, `document.documentElement.outerHTML`)
	served, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(location.href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return dom + "\n" + served
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeAudit runs axe-core in the page for WCAG 2.1 A and AA and reports each
// violation; it returns their count.
func axeAudit(t *testing.T, ctx context.Context, tools browserTools, name string) int {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(tools.axe)+"\n;true")); err != nil {
		t.Fatalf("injecting axe-core: %v", err)
	}
	js := `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}).then(r =>
		JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core on %s: %v", name, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("axe-core, %s: %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
	t.Logf("axe-core %s, WCAG 2.1 A/AA, %s: %d violation(s)", axeVersion, name, len(vs))
	return len(vs)
}

// screenshot writes a PNG of the page under $MAILLAGE_SCREENSHOTS.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("MAILLAGE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the viewport: what a meeting-room screen shows
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scrollToStubs shows the part of the chronology where the children's home
// has stubs and the DITEP the health observations.
const scrollToStubs = `document.getElementById("evenement-12").scrollIntoView(), true`

// secretPlace is what tells the child's place of life, in the demo.
var secretPlace = []string{"Tilleuls", "10-13 ans", "12 rue des", "35000 Rennes"}

func TestWebEachViewerSeesWhatThePolicyLets(t *testing.T) {
	tools := needBrowser(t)
	d := startWebDemo(t)
	tab := newBrowser(t, tools)
	leo := d.url + "/dossiers/" + d.env["CASE_LEO"]
	violations := map[string]int{}

	mecs := tab()
	do(t, mecs, chromedp.Navigate(d.url+"/connexion"), chromedp.WaitVisible(chromedp.ID("jeton")))
	violations["connexion"] = axeAudit(t, mecs, tools, "connexion")
	signInBrowser(t, mecs, d.url, d.env["MECS"])
	violations["mes dossiers"] = axeAudit(t, mecs, tools, "mes dossiers")
	do(t, mecs, chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	text := eval[string](t, mecs, `document.body.innerText`)
	if !strings.Contains(text, "Élément non visible pour votre institution") {
		t.Error("the children's home sees no stub of the health observation")
	}
	if strings.Contains(pageSource(t, mecs), "Bilan psychologique") {
		t.Error("the children's home's page holds the DITEP's health observation")
	}
	violations["dossier"] = axeAudit(t, mecs, tools, "dossier (MECS)")
	eval[bool](t, mecs, scrollToStubs)
	screenshot(t, mecs, "dossier-mecs")
	do(t, mecs, chromedp.Navigate(leo+"/synthese"), chromedp.WaitVisible(chromedp.ID("champ-participants")))
	violations["réunion"] = axeAudit(t, mecs, tools, "formulaire de réunion")
	do(t, mecs, chromedp.Navigate(leo+"/intervention"), chromedp.WaitVisible(chromedp.ID("champ-institution")))
	violations["intervention"] = axeAudit(t, mecs, tools, "formulaire d'intervention")
	screenshot(t, mecs, "formulaire-reunion")
	do(t, mecs, chromedp.Navigate(leo+"/imprimer"), chromedp.WaitVisible(chromedp.CSS("h1")))
	violations["impression"] = axeAudit(t, mecs, tools, "compte rendu imprimable")
	if _, err := chromedp.Call(mecs, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatal(err)
	}
	screenshot(t, mecs, "impression")
	if _, err := chromedp.Call(mecs, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}

	ditep := tab()
	signInBrowser(t, ditep, d.url, d.env["DITEP"])
	do(t, ditep, chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	if text := eval[string](t, ditep, `document.body.innerText`); !strings.Contains(text, "Bilan psychologique") {
		t.Error("the DITEP does not see its own health observation")
	}
	eval[bool](t, ditep, scrollToStubs)
	screenshot(t, ditep, "dossier-ditep")
	do(t, ditep, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	violations["dossier, téléphone"] = axeAudit(t, ditep, tools, "dossier (largeur de téléphone)")
	if wide := eval[bool](t, ditep, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
		t.Error("the case page scrolls sideways at a phone's width")
	}
	screenshot(t, ditep, "dossier-telephone")

	father := tab()
	signInBrowser(t, father, d.url, d.env["FATHER"])
	for _, path := range []string{"/dossiers", "/dossiers/" + d.env["CASE_LEO"], "/dossiers/" + d.env["CASE_LEO"] + "/imprimer",
		"/dossiers/" + d.env["CASE_LEO"] + "/consultations"} {
		do(t, father, chromedp.Navigate(d.url+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		src := pageSource(t, father)
		for _, s := range secretPlace {
			if strings.Contains(src, s) {
				t.Errorf("the father's %s tells the place of life kept secret from him (%q)", path, s)
			}
		}
	}
	if text := eval[string](t, father, `document.body.innerText`); !strings.Contains(text, "Qui a consulté le dossier") {
		t.Errorf("the father's access page: %s", text)
	}
	do(t, father, chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	violations["dossier, parent"] = axeAudit(t, father, tools, "dossier (parent)")
	screenshot(t, father, "dossier-pere")

	mother := tab()
	signInBrowser(t, mother, d.url, d.env["MOTHER"])
	do(t, mother, chromedp.Navigate(leo+"/consultations"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if text := eval[string](t, mother, `document.querySelector("main").innerText`); !strings.Contains(text, "MECS Les Tilleuls") {
		t.Errorf("the mother is not told the children's home read the case:\n%s", text)
	}
	violations["consultations"] = axeAudit(t, mother, tools, "qui a consulté le dossier")
	t.Logf("axe-core violations per page: %v", violations)
}

func TestWebMeetingShowsLiveAndALostAccessStops(t *testing.T) {
	tools := needBrowser(t)
	d := startWebDemo(t)
	tab := newBrowser(t, tools)
	leo := d.url + "/dossiers/" + d.env["CASE_LEO"]

	ditep := tab()
	signInBrowser(t, ditep, d.url, d.env["DITEP"])
	do(t, ditep, chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	waitFor(t, ditep, `document.documentElement.dataset.live === "open"`)
	eval[bool](t, ditep, `window.notReloaded = true`)

	mecs := tab()
	signInBrowser(t, mecs, d.url, d.env["MECS"])
	do(t, mecs, chromedp.Navigate(leo+"/synthese"), chromedp.WaitVisible(chromedp.ID("champ-participants")),
		chromedp.Click(chromedp.CSS(`input[name=participants][value="mecs-les-tilleuls"]`)),
		chromedp.Click(chromedp.CSS(`input[name=participants][value="ditep-la-passerelle"]`)),
		chromedp.Click(chromedp.ID("champ-childHeard")),
		chromedp.SendKeys(chromedp.ID("champ-strengths"), "Léo a tenu son emploi du temps partagé"),
		chromedp.SendKeys(chromedp.ID("champ-decisions"), "Maintenir le rituel d'arrivée au DITEP"),
		chromedp.Submit(chromedp.ID("champ-decisions")))
	waitFor(t, mecs, `location.pathname.endsWith("`+d.env["CASE_LEO"]+`") && document.body.innerText.includes("réunion de synthèse est enregistrée")`)
	waitFor(t, ditep, `document.getElementById("sections").innerText.includes("Maintenir le rituel d'arrivée au DITEP")`)
	if !eval[bool](t, ditep, `window.notReloaded === true`) {
		t.Error("the DITEP's page was reloaded")
	}

	// The coordinator records the DITEP's leaving: its open page stops at once.
	res := recordAs(t, d, "ASE", d.env["CASE_LEO"], `{"type": "PartnerLeft", "payload": {"institution": "ditep-la-passerelle", "reason": "fin de l'accompagnement"}}`)
	if res != 201 {
		t.Fatalf("PartnerLeft: %d", res)
	}
	waitFor(t, ditep, `document.documentElement.dataset.live === "closed"`)
	if text := eval[string](t, ditep, `document.getElementById("etat-direct").innerText`); !strings.Contains(text, "plus accès") {
		t.Errorf("the DITEP's page does not say it stopped: %q", text)
	}
	if res := recordAs(t, d, "MECS", d.env["CASE_LEO"], `{"type": "ObservationRecorded", "payload": {"summary": "Après le départ du DITEP"}}`); res != 201 {
		t.Fatalf("observation: %d", res)
	}
	do(t, mecs, chromedp.Navigate(leo), chromedp.WaitVisible(chromedp.ID("chronologie")))
	waitFor(t, mecs, `document.body.innerText.includes("Après le départ du DITEP")`)
	if eval[bool](t, ditep, `document.body.innerText.includes("Après le départ du DITEP")`) {
		t.Error("a page whose viewer lost access still received an event")
	}
}

func TestWebKeyboardAlone(t *testing.T) {
	tools := needBrowser(t)
	d := startWebDemo(t)
	tab := newBrowser(t, tools)
	ctx := tab()
	focused := func() string {
		return eval[string](t, ctx, `(document.activeElement.id || "") + "|" + (document.activeElement.innerText || document.activeElement.value || "").trim()`)
	}
	press := func(keys string) { do(t, ctx, chromedp.KeyEvent(keys)) }
	// tabTo presses Tab until the focus is on the element whose text holds
	// want, within a bound: the order is the page's.
	tabTo := func(want string) []string {
		var seen []string
		for range 40 {
			press(kb.Tab)
			f := focused()
			seen = append(seen, f)
			if strings.Contains(f, want) {
				return seen
			}
		}
		t.Fatalf("Tab never reached %q; focus went: %v", want, seen)
		return nil
	}

	do(t, ctx, chromedp.Navigate(d.url+"/connexion"), chromedp.WaitVisible(chromedp.ID("jeton")))
	if f := focused(); !strings.HasPrefix(f, "jeton|") {
		t.Errorf("the sign-in page does not start on the token field: %q", f)
	}
	press(d.env["MECS"])
	press(kb.Enter)
	waitFor(t, ctx, `location.pathname === "/dossiers" && document.readyState === "complete"`)
	order := tabTo("Aller au contenu")
	if len(order) != 1 {
		t.Errorf("the skip link is not the first stop: %v", order)
	}
	press(kb.Enter)
	if f := focused(); !strings.HasPrefix(f, "contenu|") {
		t.Errorf("the skip link does not move to the content: %q", f)
	}
	tabTo("LEO-35-0147")
	press(kb.Enter)
	waitFor(t, ctx, `location.pathname.startsWith("/dossiers/") && document.readyState === "complete"`)
	tabTo("Enregistrer une observation")
	press(kb.Enter)
	waitFor(t, ctx, `location.pathname.endsWith("/observation") && document.readyState === "complete"`)

	// An empty observation: the error is announced, the focus is on it, the
	// typed values stay.
	tabTo("champ-actionTaken|")
	press("Appel au collège prévu")
	tabTo("Enregistrer")
	press(kb.Enter)
	waitFor(t, ctx, `document.getElementById("erreurs") !== null && document.readyState === "complete"`)
	if f := focused(); !strings.HasPrefix(f, "erreurs|") {
		t.Errorf("the error summary does not take the focus: %q", f)
	}
	if role := eval[string](t, ctx, `document.getElementById("erreurs").getAttribute("role")`); role != "alert" {
		t.Errorf("error summary role %q", role)
	}
	if v := eval[string](t, ctx, `document.getElementById("champ-actionTaken").value`); v != "Appel au collège prévu" {
		t.Errorf("the typed value was lost: %q", v)
	}
	if desc := eval[string](t, ctx, `document.getElementById("champ-summary").getAttribute("aria-describedby") || ""`); !strings.Contains(desc, "erreur-summary") {
		t.Errorf("the field in error does not point at its message: %q", desc)
	}
	axeAudit(t, ctx, tools, "formulaire d'observation en erreur")
	screenshot(t, ctx, "formulaire-erreur")
	tabTo("champ-summary|")
	press("Bonne semaine, au clavier seulement")
	tabTo("Enregistrer")
	press(kb.Enter)
	waitFor(t, ctx, `document.body.innerText.includes("observation est enregistrée") && document.readyState === "complete"`)
	if !eval[bool](t, ctx, `document.getElementById("sections").innerText.includes("Bonne semaine, au clavier seulement")`) {
		t.Error("the observation recorded with the keyboard is not in the chronology")
	}

	// Escape closes the sign-out confirmation and gives the focus back.
	do(t, ctx, chromedp.Navigate(d.url+"/dossiers/"+d.env["CASE_LEO"]), chromedp.WaitVisible(chromedp.ID("chronologie")))
	tabTo("Se déconnecter")
	press(kb.Enter)
	waitFor(t, ctx, `document.getElementById("confirm-signout").open`)
	if f := focused(); !strings.Contains(f, "Rester connecté") {
		t.Errorf("the dialog does not take the focus: %q", f)
	}
	press(kb.Escape)
	waitFor(t, ctx, `!document.getElementById("confirm-signout").open`)
	if f := focused(); !strings.Contains(f, "Se déconnecter") {
		t.Errorf("Escape does not give the focus back to the sign-out button: %q", f)
	}

	// A session that expired while typing: the sign-in page carries the
	// input, and the form comes back filled.
	do(t, ctx, chromedp.Navigate(d.url+"/dossiers/"+d.env["CASE_LEO"]+"/observation"), chromedp.WaitVisible(chromedp.ID("champ-summary")))
	tabTo("champ-summary|")
	press("Saisie gardée malgré la session expirée")
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "maillage_session", URL: d.url}); err != nil {
		t.Fatal(err)
	}
	tabTo("Enregistrer")
	press(kb.Enter)
	waitFor(t, ctx, `document.getElementById("jeton") !== null && document.readyState === "complete"`)
	if text := eval[string](t, ctx, `document.querySelector("main").innerText`); !strings.Contains(text, "saisie est conservée") {
		t.Errorf("the sign-in page does not say the input is kept: %s", text)
	}
	press(d.env["MECS"])
	press(kb.Enter)
	waitFor(t, ctx, `document.getElementById("champ-summary") !== null && document.readyState === "complete"`)
	if v := eval[string](t, ctx, `document.getElementById("champ-summary").value`); v != "Saisie gardée malgré la session expirée" {
		t.Errorf("the input was lost across the sign-in: %q", v)
	}
	tabTo("Enregistrer")
	press(kb.Enter)
	waitFor(t, ctx, `document.body.innerText.includes("observation est enregistrée") && document.readyState === "complete"`)
}
