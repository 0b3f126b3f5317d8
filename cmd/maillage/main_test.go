package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// server is a real maillage server (embedded NATS JetStream on disk) started
// through Main, as the binary starts it.
type server struct {
	t    testing.TB
	main *Main
	dir  string
	vars map[string]string // the demo's printed exports: tokens, case ids
}

// mustServe starts a server with the demo on dir (a new temporary
// directory when empty).
func mustServe(t testing.TB, dir string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	var out bytes.Buffer
	m := NewMain(&out, io.Discard)
	if err := m.ParseFlags([]string{"--data", dir, "--addr", "127.0.0.1:0", "--demo"}); err != nil {
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

func (s *server) close() {
	if s.main != nil {
		if err := s.main.Close(); err != nil {
			s.t.Error(err)
		}
		s.main = nil
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return v
}

// do sends a request as the demo person named by the variable who.
func (s *server) do(method, path, who string, body string, headers ...string) answer {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.main.URL()+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+s.vars[who])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// timeline returns the viewer's timeline events by sequence.
func (s *server) timeline(caseVar, who string) map[int]map[string]any {
	s.t.Helper()
	a := s.do("GET", "/v1/cases/"+s.vars[caseVar]+"/timeline?limit=1000", who, "")
	if a.status != http.StatusOK {
		s.t.Fatalf("timeline as %s: %d %s", who, a.status, a.body)
	}
	out := map[int]map[string]any{}
	for _, e := range a.json(s.t)["events"].([]any) {
		ev := e.(map[string]any)
		out[int(ev["sequence"].(float64))] = ev
	}
	return out
}

// findEvents returns the sequences of the events of a type, read as the auditor.
func (s *server) findEvents(caseVar, typ string) []int {
	s.t.Helper()
	var seqs []int
	for seq, ev := range s.timeline(caseVar, "AUDITOR") {
		if ev["type"] == typ {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

func wantStatus(t testing.TB, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
}

func wantProblem(t testing.TB, a answer, status int, field, rule string) {
	t.Helper()
	wantStatus(t, a, status)
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	p := a.json(t)
	if field != "" && p["field"] != field {
		t.Errorf("problem names field %v, want %q: %s", p["field"], field, a.body)
	}
	if rule != "" && p["rule"] != rule {
		t.Errorf("problem names rule %v, want %q: %s", p["rule"], rule, a.body)
	}
	if p["detail"] == "" || p["title"] == "" || p["type"] == "" {
		t.Errorf("problem lacks type, title or detail: %s", a.body)
	}
}

func consentBody(id, mother string, given bool) string {
	if !given {
		return `{"type":"ConsentWithdrawn","payload":{"consent":"` + id + `","withdrawnBy":"` + mother + `"}}`
	}
	return `{"type":"ConsentGiven","payload":{"consent":"` + id + `","givenBy":"` + mother + `",
		"institutions":["mecs-les-tilleuls"],"categories":["health"],
		"from":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `","until":"2030-01-01T00:00:00Z"}}`
}

func TestHealthStubUntilConsentThenFullThenStubAgain(t *testing.T) {
	s := mustServe(t, "")
	health := s.findEvents("CASE_LEO", "ObservationRecorded")
	var healthSeq int
	for seq, ev := range s.timeline("CASE_LEO", "AUDITOR") {
		if ev["category"] == "health" && ev["type"] == "ObservationRecorded" {
			healthSeq = seq
		}
	}
	if healthSeq == 0 {
		t.Fatalf("demo has no health observation (observations at %v)", health)
	}
	visibility := func() string { return s.timeline("CASE_LEO", "MECS")[healthSeq]["visibility"].(string) }
	if v := visibility(); v != "hidden" {
		t.Fatalf("before consent the children's home sees the health event as %q, want hidden", v)
	}
	stub := s.timeline("CASE_LEO", "MECS")[healthSeq]
	for k := range stub {
		if k != "sequence" && k != "leafHash" && k != "chainHash" && k != "visibility" {
			t.Errorf("stub carries %q: %v", k, stub)
		}
	}
	consent := uuid.NewString()
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], true)), http.StatusCreated)
	if v := visibility(); v != "full" {
		t.Fatalf("with consent the children's home sees the health event as %q, want full", v)
	}
	if s.timeline("CASE_LEO", "SCHOOL")[healthSeq]["visibility"] != "hidden" {
		t.Errorf("the consent names the children's home only, yet the school sees the health event")
	}
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], false)), http.StatusCreated)
	if v := visibility(); v != "hidden" {
		t.Fatalf("after withdrawal the children's home sees the health event as %q, want hidden", v)
	}
}

func TestFatherUnderAddressSecretGetsPlacementWithoutLocation(t *testing.T) {
	s := mustServe(t, "")
	seqs := s.findEvents("CASE_LEO", "PlacementChanged")
	if len(seqs) != 1 {
		t.Fatalf("demo placement changes: %v", seqs)
	}
	full := s.timeline("CASE_LEO", "AUDITOR")[seqs[0]]["payload"].(map[string]any)
	father := s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/timeline?limit=1000", "FATHER", "")
	wantStatus(t, father, http.StatusOK)
	for _, field := range []string{"placeOfLife", "address", "hostInstitution"} {
		value := full[field].(string)
		if bytes.Contains(father.body, []byte(value)) {
			t.Errorf("the father's timeline contains the %s %q", field, value)
		}
	}
	ev := s.timeline("CASE_LEO", "FATHER")[seqs[0]]
	if ev["visibility"] != "redacted" {
		t.Fatalf("father sees the placement as %v, want redacted", ev["visibility"])
	}
	if !strings.Contains(fmt.Sprint(ev["redactedFields"]), "address") {
		t.Errorf("redactedFields %v do not name address", ev["redactedFields"])
	}
	mother := s.timeline("CASE_LEO", "MOTHER")[seqs[0]]
	if mother["visibility"] != "full" {
		t.Errorf("the mother, not named by the order, sees the placement as %v, want full", mother["visibility"])
	}
}

func TestIdempotencyKeyRetryRecordsOnce(t *testing.T) {
	s := mustServe(t, "")
	path := "/v1/cases/" + s.vars["CASE_INES"] + "/events"
	body := `{"type":"ObservationRecorded","payload":{"summary":"Inès a présenté son exposé en classe.","impact":"positive"}}`
	before := len(s.timeline("CASE_INES", "AUDITOR"))
	first := s.do("POST", path, "AED", body, "Idempotency-Key", "obs-1")
	wantStatus(t, first, http.StatusCreated)
	second := s.do("POST", path, "AED", body, "Idempotency-Key", "obs-1")
	wantStatus(t, second, http.StatusCreated)
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("retry answered differently:\n%s\n%s", first.body, second.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry not marked Idempotent-Replayed")
	}
	if after := len(s.timeline("CASE_INES", "AUDITOR")); after != before+1 {
		t.Errorf("%d events recorded by two identical requests, want 1", after-before)
	}
	other := s.do("POST", path, "AED", strings.Replace(body, "exposé", "devoir", 1), "Idempotency-Key", "obs-1")
	wantProblem(t, other, http.StatusUnprocessableEntity, "Idempotency-Key", "idempotency_key_reused")

	// Opening a case twice with one key opens one case.
	open := `{"payload":{"childReference":"TST-35-0001","legalFrame":"administrative","departement":"35","referent":{"name":"Claire Martin"}}}`
	a := s.do("POST", "/v1/cases", "ASE", open, "Idempotency-Key", "open-1")
	b := s.do("POST", "/v1/cases", "ASE", open, "Idempotency-Key", "open-1")
	wantStatus(t, a, http.StatusCreated)
	wantStatus(t, b, http.StatusCreated)
	if a.json(t)["caseId"] != b.json(t)["caseId"] || b.json(t)["version"].(float64) != 1 {
		t.Errorf("retried open answered %s then %s", a.body, b.body)
	}
}

func TestConcurrentConflictingCommandsOneWins(t *testing.T) {
	s := mustServe(t, "")
	path := "/v1/cases/" + s.vars["CASE_INES"] + "/events"
	version := s.do("GET", "/v1/cases/"+s.vars["CASE_INES"], "ASE", "").header.Get("ETag")
	var wg sync.WaitGroup
	answers := make([]answer, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"type":"ObservationRecorded","payload":{"summary":"observation %d"}}`, i)
			answers[i] = s.do("POST", path, "AED", body, "If-Match", version)
		}()
	}
	wg.Wait()
	codes := []int{answers[0].status, answers[1].status}
	if !(codes[0] == 201 && codes[1] == 412 || codes[0] == 412 && codes[1] == 201) {
		t.Fatalf("statuses %v, want one 201 and one 412: %s / %s", codes, answers[0].body, answers[1].body)
	}
	// Without If-Match: the same partner joining twice at once: one joins,
	// the other is refused by the rule.
	open := s.do("POST", "/v1/cases", "ASE", `{"payload":{"childReference":"TST-35-0002","legalFrame":"judicial","departement":"35","referent":{"name":"Claire Martin"}}}`)
	wantStatus(t, open, http.StatusCreated)
	joinPath := "/v1/cases/" + open.json(t)["caseId"].(string) + "/events"
	join := `{"type":"PartnerJoined","payload":{"institution":"mecs-les-tilleuls","referent":{"name":"Julien Roux"},"reason":"accueil"}}`
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = s.do("POST", joinPath, "ASE", join) }()
	}
	wg.Wait()
	codes = []int{answers[0].status, answers[1].status}
	if !(codes[0] == 201 && codes[1] == 409 || codes[0] == 409 && codes[1] == 201) {
		t.Fatalf("statuses %v, want one 201 and one 409: %s / %s", codes, answers[0].body, answers[1].body)
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	s := mustServe(t, "")
	path := "/v1/cases/" + s.vars["CASE_LEO"] + "/events"
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{"summary":"x"`), 400, "", "malformed_json")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{"summary":"x","humeur":"bonne"}}`), 400, "payload.humeur", "unknown_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{"summary":"x"},"extra":1}`), 400, "extra", "unknown_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{}}`), 400, "payload.summary", "")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded"}`), 400, "payload", "missing_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"payload":{"summary":"x"}}`), 400, "type", "missing_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"Nonsense","payload":{}}`), 400, "type", "unknown_event_type")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{"summary":42}}`), 400, "payload.summary", "invalid_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"InterventionAgreed","payload":{"intervention":"pas-un-uuid"}}`), 400, "payload.intervention", "invalid_field")
	wantProblem(t, s.do("POST", path, "MECS", `{"type":"ObservationRecorded","payload":{"summary":"x"}}`, "If-Match", "seven"), 400, "If-Match", "invalid_field")
	wantProblem(t, s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/timeline?after=-1", "MECS", ""), 400, "after", "invalid_field")
	big := `{"type":"ObservationRecorded","payload":{"summary":"` + strings.Repeat("a", 70<<10) + `"}}`
	wantProblem(t, s.do("POST", path, "MECS", big), 413, "", "body_too_large")
	wantProblem(t, s.do("GET", "/v1/me", "", ""), 401, "Authorization", "unauthenticated")
}

func TestNonMemberGets404LikeAnUnknownCase(t *testing.T) {
	s := mustServe(t, "")
	nonMember := s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/timeline", "AED", "")
	unknown := s.do("GET", "/v1/cases/"+uuid.NewString()+"/timeline", "AED", "")
	wantProblem(t, nonMember, 404, "", "case_not_found")
	wantProblem(t, unknown, 404, "", "case_not_found")
	strip := func(b []byte) string { return strings.Split(string(b), `"instance"`)[0] }
	if strip(nonMember.body) != strip(unknown.body) {
		t.Errorf("a non-member can tell a case exists:\n%s\n%s", nonMember.body, unknown.body)
	}
	wantProblem(t, s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"], "AED", ""), 404, "", "case_not_found")
	wantProblem(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "AED", `{"type":"ObservationRecorded","payload":{"summary":"x"}}`), 404, "", "case_not_found")
}

func TestContactSuspendedRefusesUnsupervisedVisit(t *testing.T) {
	s := mustServe(t, "")
	body := `{"type":"InterventionAgreed","payload":{"intervention":"` + uuid.NewString() + `","institution":"mecs-les-tilleuls",
		"description":"Week-end chez le père","modalities":"hébergement","timing":"un week-end sur deux","start":"2026-12-05T10:00:00+01:00",
		"contacts":[{"familyMember":"` + s.vars["FATHER_ID"] + `","supervised":%t}]}}`
	a := s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MECS", fmt.Sprintf(body, false))
	wantProblem(t, a, 409, "", "contact_suspended")
	if !strings.Contains(string(a.body), "TPE Rennes 26/00317") {
		t.Errorf("the refusal does not name the order: %s", a.body)
	}
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MECS", fmt.Sprintf(strings.Replace(body, "familyMember", "familyMember", 1), true)), 201)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, dir)
	a := s.do("POST", "/v1/cases/"+s.vars["CASE_INES"]+"/events", "AED", `{"type":"ObservationRecorded","payload":{"summary":"avant redémarrage"}}`)
	wantStatus(t, a, 201)
	before := s.do("GET", "/v1/cases/"+s.vars["CASE_INES"]+"/timeline?limit=1000", "AUDITOR", "")
	vars := s.vars
	s.close()

	s2 := mustServe(t, dir)
	s2.vars = vars // tokens were printed at first start only; the hashes are on disk
	after := s2.do("GET", "/v1/cases/"+vars["CASE_INES"]+"/timeline?limit=1000", "AUDITOR", "")
	wantStatus(t, after, 200)
	if !bytes.Equal(before.body, after.body) {
		t.Fatalf("timeline changed across a restart:\n%s\n%s", before.body, after.body)
	}
	wantStatus(t, s2.do("POST", "/v1/cases/"+vars["CASE_INES"]+"/events", "AED", `{"type":"ObservationRecorded","payload":{"summary":"après redémarrage"}}`), 201)
}
