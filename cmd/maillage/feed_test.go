package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
)

// tailOutput is a buffer written by a command and read by the test.
type tailOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *tailOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *tailOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serveWithFeeds starts the server with the demo and partner connections on
// port, on dir.
func serveWithFeeds(t *testing.T, dir string, port int) *server {
	t.Helper()
	var out bytes.Buffer
	m := NewMain(&out, io.Discard)
	if err := m.ParseFlags([]string{"--data", dir, "--addr", "127.0.0.1:0", "--demo", "--partner-listen", fmt.Sprintf("127.0.0.1:%d", port)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, main: m, dir: dir, vars: map[string]string{}}
	t.Cleanup(func() { s.close() })
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(strings.Fields(rest)[0], "=")
			s.vars[k] = v
		}
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// tailCmd runs "maillage feed tail" in the background.
type tailCmd struct {
	out    tailOutput
	cancel context.CancelFunc
	ended  chan error
}

func startTail(t *testing.T, url, creds string, args ...string) *tailCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &tailCmd{cancel: cancel, ended: make(chan error, 1)}
	go func() {
		c.ended <- run(ctx, append([]string{"feed", "tail", "--url", url, "--creds", creds}, args...), &c.out, io.Discard)
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *tailCmd) stop(t *testing.T) {
	if c.cancel == nil {
		return
	}
	c.cancel()
	if err := <-c.ended; err != nil {
		t.Errorf("feed tail: %v", err)
	}
	c.cancel = nil
}

// waitFor waits until the output satisfies ok.
func (c *tailCmd) waitFor(t *testing.T, what string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(c.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("feed tail: no %s in:\n%s", what, c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines returns the JSON lines of a tail run with --json.
func (c *tailCmd) lines(t *testing.T) []feedLine {
	t.Helper()
	var out []feedLine
	sc := bufio.NewScanner(strings.NewReader(c.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l feedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("feed tail --json: %v: %s", err, sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// caughtUp reports whether the case's chain is verified up to version in
// the JSON lines.
func caughtUp(ls []feedLine, id domain.CaseID, version uint64) bool {
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].CaseID == id {
			return ls[i].Verified == version
		}
	}
	return false
}

func (s *server) version(caseVar string) uint64 {
	s.t.Helper()
	a := s.do("GET", "/v1/cases/"+s.vars[caseVar], "ASE", "")
	wantStatus(s.t, a, http.StatusOK)
	return uint64(a.json(s.t)["version"].(float64))
}

// Given the demo served with partner connections, when the children's home
// and the DITEP tail their feeds with credentials from "partner
// credentials" while commands are recorded, then each sees what the policy
// allows, each sequence once and in order; the mother's consent reveals the
// health observations to the home and its withdrawal retracts them; both
// chains verify to the same head; after the server stops and starts again
// mid-stream, the tails resume without a gap or a duplicate; a forged
// message is reported in French.
func TestPartnersTailTheirFeedsThroughServe(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	s := serveWithFeeds(t, dir, port)
	url := s.main.PartnerURL()
	credsFor := func(inst string) string {
		path := filepath.Join(t.TempDir(), inst+".creds")
		var stderr bytes.Buffer
		if err := run(context.Background(), []string{"partner", "credentials", inst, "--data", dir, "--out", path}, io.Discard, &stderr); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr.String(), "Identifiants du flux partenaire de "+inst) {
			t.Errorf("partner credentials said: %s", stderr.String())
		}
		return path
	}
	if err := run(context.Background(), []string{"partner", "credentials", "nobody", "--data", dir}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "inconnue de l'annuaire") {
		t.Errorf("credentials for an unknown institution: %v", err)
	}
	home := startTail(t, url, credsFor("mecs-les-tilleuls"), "--json")
	care := startTail(t, url, credsFor("ditep-la-passerelle"))
	leo := uuid.MustParse(s.vars["CASE_LEO"])
	version := s.version("CASE_LEO")
	home.waitFor(t, "LEO's chain", func(string) bool { return caughtUp(home.lines(t), leo, version) })

	var healthSeqs []uint64
	for seq, ev := range s.timeline("CASE_LEO", "AUDITOR") {
		if ev["category"] == "health" {
			healthSeqs = append(healthSeqs, uint64(seq))
		}
	}
	for _, l := range home.lines(t) {
		for _, h := range healthSeqs {
			if l.CaseID == leo && l.Sequence == h && l.View.Visibility != domain.Hidden {
				t.Fatalf("the home received health event %d as %s before any consent", h, l.View.Visibility)
			}
		}
	}

	consent := uuid.NewString()
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], true)), http.StatusCreated)
	count := func(kind feeds.Kind) func(string) bool {
		return func(string) bool {
			n := 0
			for _, l := range home.lines(t) {
				if l.Kind == kind && l.CaseID == leo {
					n++
				}
			}
			return n == len(healthSeqs)
		}
	}
	home.waitFor(t, "reveals", count(feeds.KindReveal))
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], false)), http.StatusCreated)
	home.waitFor(t, "retracts", count(feeds.KindRetract))

	// The server stops and starts again on the same files and port, while
	// the tails keep running; more is recorded.
	vars := s.vars // the demo prints its tokens at the first start only
	s.close()
	s = serveWithFeeds(t, dir, port)
	s.vars = vars
	obs := `{"type":"ObservationRecorded","category":"daily_life","payload":{"summary":"Retour de week-end serein."}}`
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MECS", obs), http.StatusCreated)
	version = s.version("CASE_LEO")
	home.waitFor(t, "the chain after the restart", func(string) bool { return caughtUp(home.lines(t), leo, version) })
	care.waitFor(t, "the DITEP's chain", func(out string) bool {
		return strings.Contains(out, fmt.Sprintf("✓ chaîne vérifiée jusqu'au n°%d ", version))
	})

	events := map[uint64]int{}
	var head domain.Hash
	for _, l := range home.lines(t) {
		if l.CaseID != leo {
			continue
		}
		if l.Break != "" || l.Duplicate {
			t.Fatalf("home: sequence %d: break %q, duplicate %v", l.Sequence, l.Break, l.Duplicate)
		}
		if l.Kind == feeds.KindEvent {
			events[l.Sequence]++
			if l.Sequence != uint64(len(events)) {
				t.Fatalf("home: event %d after %d others", l.Sequence, len(events)-1)
			}
		}
		head = l.Head
	}
	if uint64(len(events)) != version {
		t.Fatalf("home: %d events, want %d", len(events), version)
	}
	care.stop(t)
	if out := care.out.String(); !strings.Contains(out, fmt.Sprintf("dossier %s : vérifiée du n°1 au n°%d, empreinte de tête %s", leo, version, head)) {
		t.Fatalf("the DITEP's chain does not end at the home's head %s:\n%s", head, out)
	}
	for _, want := range []string{"Ouverture du dossier (coordination)", "Observation partagée (santé)", "Consentement donné (consentement)"} {
		if !strings.Contains(care.out.String(), want) {
			t.Errorf("the DITEP's tail does not say %q", want)
		}
	}

	// A forged message: the home's tail says the chain does not verify.
	home.stop(t)
	forged := domain.EventView{Sequence: version + 1, Visibility: domain.Hidden}
	msg, err := feeds.EncodeMessage(feeds.Subject("mecs-les-tilleuls", leo), feeds.Message{Kind: feeds.KindEvent, CaseID: leo, Sequence: forged.Sequence, Cause: forged.Sequence, View: forged})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := njs.New(s.main.feedServer.Conn())
	// The stopped tail's last pull request may still be open on the server
	// until it notices the closed connection; a message delivered to it
	// would only come back after the ack wait (30 s). Publish once the
	// server holds no pull request.
	cons, err := js.Consumer(context.Background(), feeds.StreamName("mecs-les-tilleuls"), feeds.PartnerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumWaiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stopped tail's pull requests are still open: %d", info.NumWaiting)
		}
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	text := startTail(t, url, credsFor("mecs-les-tilleuls"))
	text.waitFor(t, "the broken link", func(out string) bool {
		return strings.Contains(out, "⚠ CHAÎNE NON VÉRIFIÉE : empreinte de chaîne attendue")
	})
}
