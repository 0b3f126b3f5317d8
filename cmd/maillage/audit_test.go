package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
)

// openCaseWithObservations opens a case as the ASE of the demo and records n
// observations on it, through the API; it returns the case id.
func (s *server) openCaseWithObservations(ref string, n int) string {
	s.t.Helper()
	a := s.do("POST", "/v1/cases", "ASE", `{"type":"CaseOpened","payload":{"childReference":"`+ref+`","legalFrame":"administrative",
		"departement":"35","referent":{"name":"Claire Martin"}}}`)
	wantStatus(s.t, a, http.StatusCreated)
	id := a.json(s.t)["caseId"].(string)
	for i := range n {
		wantStatus(s.t, s.do("POST", "/v1/cases/"+id+"/events", "ASE",
			`{"type":"ObservationRecorded","payload":{"summary":"Observation `+strconv.Itoa(i+1)+` de `+ref+`"}}`), http.StatusCreated)
	}
	return id
}

// tamperer changes the events stream below the application: it deletes
// messages and publishes others on a case's subject, as someone with access
// to the NATS server could, bypassing the store's checks.
type tamperer struct {
	t     *testing.T
	store *jetstream.Store
	js    interface {
		DeleteMsg(ctx context.Context, seq uint64) error
	}
}

func newTamperer(t *testing.T, dir string) *tamperer {
	t.Helper()
	store, err := jetstream.Open(context.Background(), jetstream.WithEmbedded(filepath.Join(dir, "jetstream")), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := store.JetStream().Stream(context.Background(), store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	return &tamperer{t: t, store: store, js: stream}
}

func (tp *tamperer) events(id string) []domain.Event {
	tp.t.Helper()
	evs, err := tp.store.ReadCase(context.Background(), uuid.MustParse(id), 0)
	if err != nil || len(evs) < 5 {
		tp.t.Fatalf("case %s: %d events, %v", id, len(evs), err)
	}
	return evs
}

// drop deletes the message holding an event (one event per message here).
func (tp *tamperer) drop(e domain.Event) {
	tp.t.Helper()
	seq, idx := jetstream.SplitPosition(e.Position)
	if idx != 0 {
		tp.t.Fatalf("event %d shares its message", e.Sequence)
	}
	if err := tp.js.DeleteMsg(context.Background(), seq); err != nil {
		tp.t.Fatal(err)
	}
}

// publish stores events as one JSON message each, at the end of the stream.
func (tp *tamperer) publish(events ...domain.Event) {
	tp.t.Helper()
	for _, e := range events {
		e.Position, e.SealedPayload = 0, nil
		body, _ := json.Marshal([]domain.Event{e})
		msg := nats.NewMsg(tp.store.Subject(e.CaseID))
		msg.Data = body
		msg.Header.Set(jetstream.HeaderCase, e.CaseID.String())
		msg.Header.Set(jetstream.HeaderFirstSeq, strconv.FormatUint(e.Sequence, 10))
		msg.Header.Set(jetstream.HeaderVersion, strconv.FormatUint(e.Sequence, 10))
		msg.Header.Set(jetstream.HeaderFormat, jetstream.FormatJSON)
		if _, err := tp.store.JetStream().PublishMsg(context.Background(), msg); err != nil {
			tp.t.Fatal(err)
		}
	}
}

// rewrite replaces events k.. of a case by change's, in order.
func (tp *tamperer) rewrite(evs []domain.Event, k int, change func([]domain.Event) []domain.Event) {
	tp.t.Helper()
	tail := append([]domain.Event(nil), evs[k-1:]...)
	for _, e := range tail {
		tp.drop(e)
	}
	tp.publish(change(tail)...)
}

func altered(e domain.Event) domain.Event {
	e.Actor.Professional += " (modifié)"
	return e
}

// rehash recomputes the hashes of events following head, as someone
// rewriting a history consistently would.
func rehash(head domain.Hash, evs []domain.Event) []domain.Event {
	for i := range evs {
		evs[i].LeafHash = domain.Leaf(evs[i])
		evs[i].ChainHash = domain.Chain(head, evs[i].LeafHash)
		head = evs[i].ChainHash
	}
	return evs
}

// runCLI runs the binary's command line and returns its standard output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, io.Discard)
	return out.String(), err
}

func wantLine(t *testing.T, out, id string, link int, field string) {
	t.Helper()
	want := "RUPTURE dossier " + id + ", maillon " + strconv.Itoa(link) + " : " + breakWords[field]
	if !strings.Contains(out, want) {
		t.Errorf("the report does not say %q:\n%s", want, out)
	}
}

func TestAuditVerifyNamesTamperingBelowTheApplication(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, dir)
	ids := map[string]string{"alter": s.vars["CASE_LEO"], "drop": s.vars["CASE_INES"], "reorder": s.vars["CASE_NOAH"]}
	for _, name := range []string{"insert", "reencode", "rewrite", "truncate"} {
		ids[name] = s.openCaseWithObservations("TST-35-"+name, 5)
	}
	s.close() // signs the heads of every case at shutdown
	pub := filepath.Join(dir, "signing.pub")

	out, err := runCLI(t, "audit", "verify", "--data", dir, "--pubkey", pub)
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, "7 dossiers") || !strings.Contains(out, "7 têtes signées") {
		t.Fatalf("untouched store: %v\n%s", err, out)
	}
	// The access log was sealed up to the shutdown, and verifies.
	var sealed, seals int
	if _, err := fmt.Sscanf(out[strings.Index(out, "journal des accès : "):], "journal des accès : %d enregistrements scellés vérifiés (%d scellement(s)", &sealed, &seals); err != nil ||
		sealed == 0 || !strings.Contains(out, "signatures contrôlées") || !strings.Contains(out, " ; 0 enregistrements pas encore scellés") ||
		!strings.Contains(out, "OK : aucun enregistrement scellé n'a été modifié") {
		t.Fatalf("access log of the untouched store (%d records in %d seals, %v):\n%s", sealed, seals, err, out)
	}

	tp := newTamperer(t, dir)
	const k = 3
	ev := map[string][]domain.Event{}
	for name, id := range ids {
		ev[name] = tp.events(id)
	}
	// An event's content changed in place (order kept).
	tp.rewrite(ev["alter"], k, func(tail []domain.Event) []domain.Event { tail[0] = altered(tail[0]); return tail })
	// An event removed.
	tp.drop(ev["drop"][k-1])
	// Two events swapped.
	tp.rewrite(ev["reorder"], k, func(tail []domain.Event) []domain.Event { tail[0], tail[1] = tail[1], tail[0]; return tail })
	// A forged event inserted, hashed as its own.
	tp.rewrite(ev["insert"], k, func(tail []domain.Event) []domain.Event {
		forged := tail[0]
		forged.ID = uuid.New()
		forged.Payload = json.RawMessage(`{"summary":"Réunion qui n'a pas eu lieu"}`)
		forged.LeafHash = domain.Leaf(forged)
		return append([]domain.Event{forged}, tail...)
	})
	// The same event stored again in another format: not a change.
	tp.rewrite(ev["reencode"], k, func(tail []domain.Event) []domain.Event { return tail })
	// A consistent rewrite: every hash recomputed after the change.
	tp.rewrite(ev["rewrite"], k, func(tail []domain.Event) []domain.Event {
		tail[0] = altered(tail[0])
		return rehash(ev["rewrite"][k-2].ChainHash, tail)
	})
	// The last event removed.
	last := ev["truncate"][len(ev["truncate"])-1]
	tp.drop(last)
	tp.store.Close()

	out, err = runCLI(t, "audit", "verify", "--data", dir)
	if !errors.Is(err, errChainBroken) {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
	wantLine(t, out, ids["alter"], k, "leafHash")
	wantLine(t, out, ids["drop"], k, "sequence")
	wantLine(t, out, ids["reorder"], k, "sequence")
	wantLine(t, out, ids["insert"], k, "chainHash")
	for _, name := range []string{"reencode", "rewrite", "truncate"} {
		if strings.Contains(out, ids[name]) {
			t.Errorf("without signed heads, %s is reported:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "attendu 3, trouvé 4") {
		t.Errorf("the dropped event's break does not say what was expected and found:\n%s", out)
	}

	out, err = runCLI(t, "audit", "verify", "--data", dir, "--pubkey", pub)
	if !errors.Is(err, errChainBroken) {
		t.Fatalf("verify with the public key: %v\n%s", err, out)
	}
	n := len(ev["rewrite"])
	wantLine(t, out, ids["rewrite"], n, "signedHead")
	wantLine(t, out, ids["truncate"], int(last.Sequence), "signedHead")
	wantLine(t, out, ids["alter"], k, "leafHash")
	if strings.Contains(out, ids["reencode"]) {
		t.Errorf("a re-encoded event is reported:\n%s", out)
	}

	out, err = runCLI(t, "audit", "verify", "--data", dir, "--case", ids["drop"])
	if !errors.Is(err, errChainBroken) || strings.Count(out, "RUPTURE") != 1 {
		t.Fatalf("verify one case: %v\n%s", err, out)
	}
	wantLine(t, out, ids["drop"], k, "sequence")
	if _, err := runCLI(t, "audit", "verify", "--data", dir, "--case", ids["reencode"], "--pubkey", pub); err != nil {
		t.Fatalf("verify an intact case: %v", err)
	}
}

// Given a server whose signing key was replaced (the operator kept the old
// public key and removed the private key; serve made a new one), when a
// case moves and is read under the new key, then audit verify with the new
// key alone refuses the heads and seals of the old one and says to give it
// too, and with both keys everything verifies.
func TestAuditVerifyAcrossASigningKeyRotation(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, dir)
	vars := s.vars
	s.close()
	oldPub := filepath.Join(t.TempDir(), "signing-old.pub")
	if err := os.Rename(filepath.Join(dir, "signing.pub"), oldPub); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	s = mustServe(t, dir) // a new key
	s.vars = vars
	id := s.openCaseWithObservations("TST-35-rotation", 3)
	wantStatus(t, s.do("GET", "/v1/cases/"+id+"/timeline", "ASE", ""), http.StatusOK)
	s.close()
	newPub := filepath.Join(dir, "signing.pub")

	out, err := runCLI(t, "audit", "verify", "--data", dir, "--pubkey", newPub)
	if err == nil || !strings.Contains(err.Error(), "second --pubkey") {
		t.Fatalf("verify with the new key only: %v\n%s", err, out)
	}
	out, err = runCLI(t, "audit", "verify", "--data", dir, "--pubkey", newPub, "--pubkey", oldPub)
	if err != nil || !strings.Contains(out, "OK : toutes les chaînes vérifient") || !strings.Contains(out, "4 têtes signées") ||
		!strings.Contains(out, "signatures contrôlées") || !strings.Contains(out, "OK : aucun enregistrement scellé") {
		t.Fatalf("verify with both keys: %v\n%s", err, out)
	}
}
