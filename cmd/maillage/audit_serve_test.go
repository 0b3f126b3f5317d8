package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/personal"
)

// mustServeWith starts a server with the demo on a new directory, with
// more flags.
func mustServeWith(t *testing.T, flags ...string) *server {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	m := NewMain(&out, io.Discard)
	if err := m.ParseFlags(append([]string{"--data", dir, "--addr", "127.0.0.1:0", "--demo"}, flags...)); err != nil {
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

// accessRecords returns the access log's records of a case since from, as
// the auditor reads them.
func (s *server) accessRecords(caseVar string, from time.Time) []map[string]any {
	s.t.Helper()
	q := "/v1/audit/access?case=" + s.vars[caseVar]
	if !from.IsZero() { // the zero time is outside the dates the API takes
		q += "&from=" + from.UTC().Format(time.RFC3339Nano)
	}
	a := s.do("GET", q, "AUDITOR", "")
	wantStatus(s.t, a, http.StatusOK)
	var body struct {
		Records []map[string]any `json:"records"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		s.t.Fatal(err)
	}
	return body.Records
}

func countKinds(records []map[string]any) map[string]int {
	out := map[string]int{}
	for _, r := range records {
		out[r["kind"].(string)]++
	}
	return out
}

// personalValues returns the values of the personal-data fields of a
// case's events, as the auditor reads them, but those also found outside
// them: in the envelope (the actor, who recorded an event, stays readable
// on purpose: docs/personal-data.md) or in the other demo cases (a referent
// or the word "mère" they share), which erasing this case leaves.
func (s *server) personalValues(caseVar string) []string {
	s.t.Helper()
	var elsewhere strings.Builder
	for name := range s.vars {
		if strings.HasPrefix(name, "CASE_") && name != caseVar {
			fmt.Fprintln(&elsewhere, s.timeline(name, "AUDITOR"))
		}
	}
	var values []string
	for _, ev := range s.timeline(caseVar, "AUDITOR") {
		fmt.Fprintln(&elsewhere, ev["actor"])
		var payload any
		raw, _ := json.Marshal(ev["payload"])
		json.Unmarshal(raw, &payload)
		for _, f := range personal.Fields() {
			if string(f.Type) == ev["type"] {
				values = append(values, valuesAt(payload, strings.Split(f.Path, "."))...)
			}
		}
	}
	var out []string
	for _, v := range values {
		if !strings.Contains(elsewhere.String(), v) {
			out = append(out, v)
		}
	}
	return out
}

func valuesAt(v any, path []string) []string {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	name, each := strings.CutSuffix(path[0], "[]")
	var items []any
	if each {
		items, _ = obj[name].([]any)
	} else if x, ok := obj[name]; ok {
		items = []any{x}
	}
	var out []string
	for _, x := range items {
		if len(path) > 1 {
			out = append(out, valuesAt(x, path[1:])...)
		} else if str, ok := x.(string); ok && len(str) >= 4 {
			out = append(out, str)
		}
	}
	return out
}

func TestAuditWhileServingReplayAccessLogExportAndErasure(t *testing.T) {
	s := mustServeWith(t, "--nats-listen", "127.0.0.1:0")
	natsURL := s.main.store.Server().ClientURL()
	pub := filepath.Join(s.dir, "signing.pub")
	leo := s.vars["CASE_LEO"]

	// The embedded store is the server's: the tools refuse it, and go through NATS.
	if _, err := runCLI(t, "audit", "verify", "--data", s.dir); err == nil || !strings.Contains(err.Error(), "serveur en marche") {
		t.Fatalf("verify on a served directory: %v", err)
	}
	if out, err := runCLI(t, "audit", "verify", "--nats", natsURL, "--pubkey", pub); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify through NATS: %v\n%s", err, out)
	}

	// Replay: before the mother's consent the children's home could not see
	// the health observation; after it, it could, because of that consent.
	var health int
	for seq, ev := range s.timeline("CASE_LEO", "AUDITOR") {
		if ev["category"] == "health" && ev["type"] == "ObservationRecorded" {
			health = seq
		}
	}
	consent := uuid.NewString()
	given := s.do("POST", "/v1/cases/"+leo+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], true))
	wantStatus(t, given, http.StatusCreated)
	consentSeq := int(given.json(t)["version"].(float64))
	recordedAt, err := time.Parse(time.RFC3339Nano, s.timeline("CASE_LEO", "AUDITOR")[consentSeq]["recordedAt"].(string))
	if err != nil {
		t.Fatal(err)
	}
	replay := func(at time.Time) string {
		t.Helper()
		out, err := runCLI(t, "audit", "replay", "--nats", natsURL, "--case", leo, "--as-of", at.Format(time.RFC3339Nano), "--event", fmt.Sprint(health))
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		_, table, ok := strings.Cut(out, "qui pouvait le voir")
		for _, line := range strings.Split(table, "\n") {
			if ok && strings.HasPrefix(line, "mecs-les-tilleuls") {
				return line
			}
		}
		t.Fatalf("replay does not say what the children's home could see:\n%s", out)
		return ""
	}
	if line := replay(recordedAt.Add(-time.Nanosecond)); !strings.Contains(line, "masqué") || !strings.Contains(line, "health_needs_consent") {
		t.Errorf("before the consent: %s", line)
	}
	if line := replay(recordedAt); !strings.Contains(line, "complet") || !strings.Contains(line, "health_consent") || !strings.Contains(line, consent) {
		t.Errorf("with the consent: %s", line)
	}

	// Access log: every read is recorded, with its purpose, and nothing else.
	since := time.Now()
	wantStatus(t, s.do("GET", "/v1/cases/"+leo+"/timeline", "MECS", "", "X-Access-Purpose", "préparation de la synthèse"), http.StatusOK)
	wantStatus(t, s.do("GET", "/v1/cases/"+leo+"/timeline?after=5&limit=3", "MECS", ""), http.StatusOK)
	wantStatus(t, s.do("GET", "/v1/cases/"+leo, "ASE", ""), http.StatusOK)
	wantStatus(t, s.do("GET", "/v1/cases/"+leo+"/timeline", "AED", ""), http.StatusNotFound)
	wrote := s.do("POST", "/v1/cases/"+leo+"/events", "MECS", `{"type":"ObservationRecorded","payload":{"summary":"Thomas Durand a appelé la MECS."}}`)
	wantStatus(t, wrote, http.StatusCreated)
	var records []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		records = s.accessRecords("CASE_LEO", since)
		if countKinds(records)["feed"] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	kinds := countKinds(records)
	if kinds["timeline"] != 2 || kinds["summary"] != 1 || kinds["feed"] == 0 || len(kinds) != 3 {
		t.Fatalf("records by kind %v, want 2 timelines, 1 summary and feed deliveries only", kinds)
	}
	for _, r := range records {
		if r["kind"] == "timeline" && r["purpose"] == "préparation de la synthèse" {
			if r["institution"] != "mecs-les-tilleuls" || r["role"] != "professional" || r["fromSequence"].(float64) != 1 || r["principal"] == nil {
				t.Errorf("timeline record %v", r)
			}
		}
		if r["institution"] == "aed-sauvegarde-35" {
			t.Errorf("a refused read is recorded: %v", r)
		}
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "Thomas") || strings.Contains(string(b), "payload") {
			t.Errorf("a record holds event contents: %s", b)
		}
	}
	// The family sees who read the case, but not the child's place of life
	// when an order keeps it from them; the coordinator sees the reads by
	// other institutions; other members may not list them.
	familyList := func(who string) string {
		a := s.do("GET", "/v1/cases/"+leo+"/access", who, "")
		wantStatus(t, a, http.StatusOK)
		return string(a.body)
	}
	if l := familyList("MOTHER"); !strings.Contains(l, "mecs-les-tilleuls") || strings.Contains(l, "préparation") {
		t.Errorf("the mother's list: %s", l)
	}
	if l := familyList("FATHER"); strings.Contains(l, "mecs-les-tilleuls") || strings.Contains(l, "Tilleuls") {
		t.Errorf("the father, under an order keeping the placement secret, learns of the children's home: %s", l)
	}
	if l := familyList("ASE"); strings.Contains(l, `"institution":"ase-35"`) || !strings.Contains(l, "préparation de la synthèse") {
		t.Errorf("the coordinator's list: %s", l)
	}
	wantProblem(t, s.do("GET", "/v1/cases/"+leo+"/access", "MECS", ""), http.StatusForbidden, "", "access_list_coordinator_only")
	wantProblem(t, s.do("GET", "/v1/audit/access", "ASE", ""), http.StatusForbidden, "", "auditor_only")

	// Export: for auditors, with the latest signed head, verified offline.
	pos := domain.Position(wrote.json(t)["position"].(float64))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.main.Signer().WaitFor(ctx, pos); err != nil {
		t.Fatal(err)
	}
	if err := s.main.Signer().SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, s.do("GET", "/v1/cases/"+leo+"/export", "MECS", ""), http.StatusForbidden, "", "auditor_only")
	exported := s.do("GET", "/v1/cases/"+leo+"/export", "AUDITOR", "")
	wantStatus(t, exported, http.StatusOK)
	file := filepath.Join(t.TempDir(), "leo.jsonl")
	os.WriteFile(file, exported.body, 0o600)
	if out, err := runCLI(t, "audit", "verify", "--file", file, "--pubkey", pub); err != nil || !strings.Contains(out, "1 têtes signées") {
		t.Fatalf("offline verification of the export: %v\n%s", err, out)
	}
	head := s.do("GET", "/v1/cases/"+leo+"/head", "MOTHER", "")
	wantStatus(t, head, http.StatusOK)
	var signed audit.SignedHead
	json.Unmarshal(head.body, &signed)
	key, err := readPublicKey(pub)
	if err != nil || signed.Verify(key) != nil || signed.ChainHash.String() != wrote.json(t)["events"].([]any)[0].(map[string]any)["chainHash"] {
		t.Fatalf("the signed head a family member reads does not match the chain: %s (%v)", head.body, err)
	}
	if countKinds(s.accessRecords("CASE_LEO", since))["export"] != 1 {
		t.Errorf("the export is not recorded once")
	}
	// The same export from the command line, verified offline too, and
	// recorded as a second export.
	cliFile := filepath.Join(t.TempDir(), "leo-cli.jsonl")
	if _, err := runCLI(t, "audit", "export", "--nats", natsURL, "--case", leo, "--out", cliFile, "--purpose", "contrôle CNIL"); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "audit", "verify", "--file", cliFile, "--pubkey", pub); err != nil || !strings.Contains(out, "1 têtes signées") {
		t.Fatalf("offline verification of the command-line export: %v\n%s", err, out)
	}
	if countKinds(s.accessRecords("CASE_LEO", since))["export"] != 2 {
		t.Errorf("the command-line export is not recorded")
	}

	// Erasure: an auditor destroys the personal data of a case.
	secrets := s.personalValues("CASE_INES")
	if len(secrets) < 3 {
		t.Fatalf("the demo case has %d personal values: the test proves little", len(secrets))
	}
	ines := s.vars["CASE_INES"]
	// A read's purpose is the case's personal data too: stored sealed.
	const purpose = "entretien avec Samira au sujet du coucher"
	wantStatus(t, s.do("GET", "/v1/cases/"+ines+"/timeline", "AED", "", "X-Access-Purpose", purpose), http.StatusOK)
	if !strings.Contains(fmt.Sprint(s.accessRecords("CASE_INES", time.Time{})), purpose) {
		t.Fatal("the access list does not show the purpose before erasure")
	}
	if files := dirHolds(t, s.dir, purpose); len(files) > 0 {
		t.Errorf("the purpose is stored in clear in %v", files)
	}
	secrets = append(secrets, purpose)
	// The partners' feeds hold them (the relay caught up with the case).
	inesEvents, err := s.main.events.ReadCase(context.Background(), uuid.MustParse(ines), 0)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := s.main.relay.WaitFor(wctx, inesEvents[len(inesEvents)-1].Position); err != nil {
		t.Fatal(err)
	}
	if found := feedSecrets(t, s.main, secrets); len(found) == 0 {
		t.Fatal("the partner feeds hold none of the case's personal values before erasure: the test proves little")
	}
	wantProblem(t, s.do("POST", "/v1/cases/"+ines+"/erase", "ASE", `{"reason":"x"}`), http.StatusForbidden, "", "erase_auditor_or_admin")
	wantProblem(t, s.do("POST", "/v1/cases/"+ines+"/erase", "AUDITOR", `{"reason":""}`), http.StatusBadRequest, "reason", "")
	wantStatus(t, s.do("POST", "/v1/cases/"+ines+"/erase", "AUDITOR", `{"reason":"fin de la durée de conservation"}`), http.StatusOK)
	var shown []string
	for _, who := range demoViewers {
		for _, path := range []string{"/timeline?limit=1000", "", "/plan", "/chronology", "/export", "/access"} {
			if a := s.do("GET", "/v1/cases/"+ines+path, who, ""); a.status == http.StatusOK {
				shown = append(shown, string(a.body))
			}
		}
	}
	shown = append(shown, fmt.Sprint(s.accessRecords("CASE_INES", time.Time{})))
	all := strings.Join(shown, "\n")
	for _, secret := range secrets {
		if strings.Contains(all, secret) {
			t.Errorf("after erasure, %q is still shown", secret)
		}
	}
	if !strings.Contains(all, personal.Erased) {
		t.Errorf("nothing reads %q after erasure", personal.Erased)
	}
	if files := dirHolds(t, s.dir, purpose); len(files) > 0 {
		t.Errorf("after erasure, the purpose is in %v", files)
	}
	// Nor do the partner feeds, in their messages or on disk.
	if found := feedSecrets(t, s.main, secrets); len(found) > 0 {
		t.Errorf("after erasure, the partner feeds still hold %q", found)
	}
	wantProblem(t, s.do("POST", "/v1/cases/"+ines+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"après"}}`), http.StatusConflict, "", "case_erased")
	if out, err := runCLI(t, "audit", "verify", "--nats", natsURL, "--pubkey", pub, "--case", ines); err != nil {
		t.Fatalf("the erased case does not verify: %v\n%s", err, out)
	}
}

// dirHolds returns the files under dir that hold s.
func dirHolds(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed by the running server meanwhile
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if bytes.Contains(b, []byte(s)) {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// feedSecrets returns the secrets found in the partner feeds of a server:
// in the messages of every feed stream, read as the relay's account can,
// and in the feed server's files on disk.
func feedSecrets(t *testing.T, m *Main, secrets []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := njs.New(m.feedServer.Conn())
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		stream, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			msg, err := stream.GetMsg(ctx, seq)
			if errors.Is(err, njs.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&raw, msg.Header, string(msg.Data))
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(filepath.Join(m.DataDir, "feeds"), func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file the running server renamed meanwhile: its bytes are in the renamed one
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		raw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range secrets {
		if bytes.Contains(raw.Bytes(), []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

// Given a stopped server whose feeds hold a case, when an admin erases the
// case from the command line on its data directory, then the feeds under
// it hold none of the case's personal data when the server starts again.
func TestCaseEraseOnAStoppedServerClearsItsFeeds(t *testing.T) {
	s := mustServeWith(t)
	ines := s.vars["CASE_INES"]
	secrets := s.personalValues("CASE_INES")
	events, err := s.main.events.ReadCase(context.Background(), uuid.MustParse(ines), 0)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.main.relay.WaitFor(wctx, events[len(events)-1].Position); err != nil {
		t.Fatal(err)
	}
	if len(feedSecrets(t, s.main, secrets)) == 0 {
		t.Fatal("the feeds hold none of the case's personal values: the test proves little")
	}
	s.close()

	out, err := runCLI(t, "case", "erase", ines, "--data", s.dir, "--reason", "fin de la durée de conservation")
	if err != nil || !strings.Contains(out, "données personnelles effacées") || !strings.Contains(out, "retiré de") {
		t.Fatalf("case erase: %v\n%s", err, out)
	}
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--data", s.dir, "--addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if found := feedSecrets(t, m, secrets); len(found) > 0 {
		t.Errorf("after erasure, the feeds hold %q", found)
	}
}
