package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The synthesis views of the demo, read through the real server: they must
// agree, for each viewer, with what the viewer's timeline shows.

var demoViewers = []string{"ASE", "MECS", "DITEP", "CMP", "SCHOOL", "MOTHER", "FATHER", "AUDITOR"}

// read GETs a synthesis view as who and decodes it.
func (s *server) read(path, who string, into any) answer {
	s.t.Helper()
	a := s.do("GET", path, who, "")
	if a.status == http.StatusOK && into != nil {
		if err := json.Unmarshal(a.body, into); err != nil {
			s.t.Fatalf("GET %s as %s: %v: %s", path, who, err, a.body)
		}
	}
	return a
}

type chronologyBody struct {
	Version uint64 `json:"version"`
	Entries []struct {
		Sequence       int      `json:"sequence"`
		Date           string   `json:"date"`
		Type           string   `json:"type"`
		What           string   `json:"what"`
		RedactedFields []string `json:"redactedFields"`
	} `json:"entries"`
}

type planBody struct {
	Version uint64 `json:"version"`
	Needs   []struct {
		ID string `json:"id"`
	} `json:"needs"`
	Objectives []struct {
		ID string `json:"id"`
	} `json:"objectives"`
	Referents []struct {
		Institution string `json:"institution"`
	} `json:"referents"`
	Interventions []struct {
		Institution   string `json:"institution"`
		Withheld      bool   `json:"withheld"`
		Interventions []struct {
			ID string `json:"id"`
		} `json:"interventions"`
	} `json:"interventions"`
	NextReview *struct {
		Due          time.Time `json:"due"`
		PeriodMonths int       `json:"periodMonths"`
	} `json:"nextReview"`
}

type accessRow struct {
	Institution  string `json:"institution"`
	FamilyMember string `json:"familyMember"`
	Categories   []struct {
		Category   string   `json:"category"`
		Visibility string   `json:"visibility"`
		Rule       string   `json:"rule"`
		Fields     []string `json:"fields"`
		Consent    *struct {
			ID string `json:"id"`
		} `json:"consent"`
		Order *struct {
			Reference string `json:"reference"`
		} `json:"order"`
	} `json:"categories"`
}

type visibilityBody struct {
	Members []accessRow `json:"members"`
	Family  []accessRow `json:"family"`
}

// category returns the row's decision for a category as "visibility rule".
func (r accessRow) category(c string) string {
	for _, cat := range r.Categories {
		if cat.Category == c {
			return cat.Visibility + " " + cat.Rule
		}
	}
	return ""
}

type deadlinesBody struct {
	Deadlines []struct {
		Kind        string    `json:"kind"`
		Due         time.Time `json:"due"`
		Overdue     bool      `json:"overdue"`
		Institution string    `json:"institution"`
		CaseID      string    `json:"caseId"`
	} `json:"deadlines"`
}

func (d deadlinesBody) find(kind, inst string) (time.Time, bool) {
	for _, x := range d.Deadlines {
		if x.Kind == kind && x.Institution == inst {
			return x.Due, true
		}
	}
	return time.Time{}, false
}

func TestSynthesisViewsAgreeWithTheEventsForEachViewer(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	auditor := s.timeline("CASE_LEO", "AUDITOR")
	for _, who := range demoViewers {
		timeline := s.timeline("CASE_LEO", who)
		var chrono chronologyBody
		wantStatus(t, s.read(leo+"/chronology", who, &chrono), http.StatusOK)
		var visible []int
		for seq, ev := range timeline {
			if ev["visibility"] != "hidden" {
				visible = append(visible, seq)
			}
		}
		var got []int
		for _, e := range chrono.Entries {
			got = append(got, e.Sequence)
			if want := fmt.Sprint(timeline[e.Sequence]["redactedFields"]); want != fmt.Sprint(e.RedactedFields) && !(want == "<nil>" && e.RedactedFields == nil) {
				t.Errorf("%s: entry %d redacts %v, the timeline %v", who, e.Sequence, e.RedactedFields, want)
			}
			if e.What == "" {
				t.Errorf("%s: entry %d says nothing", who, e.Sequence)
			}
		}
		slices.Sort(visible)
		slices.Sort(got)
		if !slices.Equal(got, visible) {
			t.Errorf("%s: the chronology shows %v, the timeline %v", who, got, visible)
		}

		var plan planBody
		wantStatus(t, s.read(leo+"/plan", who, &plan), http.StatusOK)
		wantNeeds, wantObjectives, wantInterventions := visibleIDs(timeline, "NeedIdentified", "need"), visibleIDs(timeline, "ObjectiveSet", "objective"),
			visibleIDs(timeline, "InterventionAgreed", "intervention")
		var needs, objectives, interventions []string
		for _, n := range plan.Needs {
			needs = append(needs, n.ID)
		}
		for _, o := range plan.Objectives {
			objectives = append(objectives, o.ID)
		}
		for _, g := range plan.Interventions {
			for _, iv := range g.Interventions {
				interventions = append(interventions, iv.ID)
			}
		}
		for _, c := range [][2][]string{{needs, wantNeeds}, {objectives, wantObjectives}, {interventions, wantInterventions}} {
			slices.Sort(c[0])
			slices.Sort(c[1])
			if !slices.Equal(c[0], c[1]) {
				t.Errorf("%s: the plan holds %v, the timeline shows %v", who, c[0], c[1])
			}
		}
		if plan.NextReview == nil || plan.NextReview.Due.Format(time.DateOnly) != "2027-03-05" || plan.NextReview.PeriodMonths != 12 {
			t.Errorf("%s: next review %+v, want 2027-03-05 (12 months after the synthesis of 5 March 2026)", who, plan.NextReview)
		}
	}

	// The father is named by the order keeping the place of life secret:
	// nothing of it, nor of the children's home, reaches him.
	placement := auditor[s.findEvents("CASE_LEO", "PlacementChanged")[0]]["payload"].(map[string]any)
	for _, view := range []string{"/plan", "/chronology"} {
		body := string(s.read(leo+view, "FATHER", nil).body)
		for _, secret := range []string{placement["placeOfLife"].(string), placement["address"].(string), "mecs-les-tilleuls", "MECS Les Tilleuls"} {
			if strings.Contains(body, secret) {
				t.Errorf("the father's %s tells %q", view, secret)
			}
		}
	}
	if body := string(s.read(leo+"/plan", "MOTHER", nil).body); !strings.Contains(body, "MECS Les Tilleuls") {
		t.Errorf("the mother, not named by the order, does not see the children's home in the plan: %s", body)
	}
	// Health information stays with the care members.
	health := string(s.read(leo+"/plan", "CMP", nil).body)
	for _, who := range []string{"MECS", "SCHOOL", "MOTHER", "FATHER"} {
		if body := string(s.read(leo+"/plan", who, nil).body); strings.Contains(body, "Troubles anxieux") || !strings.Contains(health, "Troubles anxieux") {
			t.Errorf("%s reads the health need in the plan, or the CMP does not", who)
		}
	}
}

// visibleIDs returns the ids (payload field key) of the visible events of
// a type in a timeline.
func visibleIDs(timeline map[int]map[string]any, typ, key string) []string {
	var ids []string
	for _, ev := range timeline {
		if ev["type"] == typ && ev["visibility"] != "hidden" {
			if p, ok := ev["payload"].(map[string]any); ok {
				ids = append(ids, p[key].(string))
			}
		}
	}
	return ids
}

func TestWhoSeesWhatAndDeadlinesOfTheDemo(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	var vis visibilityBody
	wantStatus(t, s.read(leo+"/visibility", "MECS", &vis), http.StatusOK)
	rows := map[string]accessRow{}
	for _, m := range vis.Members {
		rows[m.Institution] = m
	}
	for _, f := range vis.Family {
		rows[f.FamilyMember] = f
	}
	for _, c := range []struct{ row, category, want string }{
		{"mecs-les-tilleuls", "health", "hidden health_needs_consent"},
		{"college-jules-ferry", "health", "hidden health_needs_consent"},
		{"cmp-rennes-nord", "health", "full health_care_member"},
		{"ditep-la-passerelle", "health", "full health_care_member"},
		{"ase-35", "judicial", "full default_audience"},
		{s.vars["FATHER_ID"], "daily_life", "redacted placement_address_secret"},
		{s.vars["FATHER_ID"], "judicial", "full judicial_named"},
		{s.vars["FATHER_ID"], "health", "hidden health_not_for_family"},
		{s.vars["MOTHER_ID"], "daily_life", "full default_audience"},
	} {
		if got := rows[c.row].category(c.category); got != c.want {
			t.Errorf("%s sees %s as %q, want %q", c.row, c.category, got, c.want)
		}
	}
	for _, cat := range rows[s.vars["FATHER_ID"]].Categories {
		if cat.Category == "daily_life" && (cat.Order == nil || cat.Order.Reference != "TPE Rennes 26/00317" || !slices.Contains(cat.Fields, "address")) {
			t.Errorf("the father's daily life is not said to be redacted by the order: %+v", cat)
		}
	}
	for _, who := range []string{"MOTHER", "FATHER"} {
		wantProblem(t, s.do("GET", leo+"/visibility", who, ""), http.StatusForbidden, "", "visibility_members_only")
		wantProblem(t, s.do("GET", leo+"/deadlines", who, ""), http.StatusForbidden, "", "deadlines_members_only")
	}

	var dl deadlinesBody
	wantStatus(t, s.read(leo+"/deadlines", "SCHOOL", &dl), http.StatusOK)
	for _, inst := range []string{"cmp-rennes-nord", "college-jules-ferry"} {
		if _, ok := dl.find("family_information", inst); !ok {
			t.Errorf("no deadline to inform the family of %s, which joined without FamilyInformed: %+v", inst, dl)
		}
	}
	for _, inst := range []string{"mecs-les-tilleuls", "ditep-la-passerelle"} {
		if _, ok := dl.find("family_information", inst); ok {
			t.Errorf("a deadline to inform the family of %s, which it was", inst)
		}
	}
	if due, ok := dl.find("plan_review", ""); !ok || due.Format(time.DateOnly) != "2027-03-05" {
		t.Errorf("plan review due %v, want 2027-03-05", due)
	}
	if due, ok := dl.find("synthesis_meeting", ""); !ok || due.Format(time.DateOnly) != "2026-09-04" {
		t.Errorf("no synthesis since 5 March 2026: due %v, want 2026-09-04 (183 days later)", due)
	}
	if _, ok := dl.find("order_expiring", ""); ok {
		t.Errorf("the orders run a year: none expires within the default 30 days")
	}
	wantStatus(t, s.read(leo+"/deadlines?horizon=366", "SCHOOL", &dl), http.StatusOK)
	orders := 0
	for _, d := range dl.Deadlines {
		if d.Kind == "order_expiring" {
			orders++
		}
	}
	if orders != 2 {
		t.Errorf("%d orders expiring within 366 days, want the 2 of TPE Rennes 26/00317: %+v", orders, dl)
	}
	var noah deadlinesBody
	wantStatus(t, s.read("/v1/cases/"+s.vars["CASE_NOAH"]+"/deadlines", "FOSTER", &noah), http.StatusOK)
	if due, ok := noah.find("plan_review", ""); !ok || due.Format(time.DateOnly) != "2027-03-01" {
		t.Errorf("Noah, 14 months old, plan review due %v, want 2027-03-01 (6 months after the opening)", due)
	}
	if due, ok := noah.find("family_not_informed_review", "placement-familial-35"); !ok || due.Format(time.DateOnly) != "2026-10-02" {
		t.Errorf("the decision not to inform Noah's mother is due for review %v, want 2026-10-02", due)
	}

	// The institution's list: the ASE coordinates all three cases.
	var mine deadlinesBody
	wantStatus(t, s.read("/v1/deadlines?horizon=200", "ASE", &mine), http.StatusOK)
	cases := map[string]bool{}
	for _, d := range mine.Deadlines {
		cases[d.CaseID] = true
	}
	for _, c := range []string{"CASE_LEO", "CASE_INES", "CASE_NOAH"} {
		if !cases[s.vars[c]] {
			t.Errorf("the ASE's deadlines miss %s: %+v", c, mine)
		}
	}
	wantStatus(t, s.read("/v1/deadlines", "AED", &mine), http.StatusOK)
	for _, d := range mine.Deadlines {
		if d.CaseID != s.vars["CASE_INES"] {
			t.Errorf("the AED, member of Inès's case only, gets a deadline of %s", d.CaseID)
		}
	}
	wantProblem(t, s.do("GET", "/v1/deadlines", "AUDITOR", ""), http.StatusForbidden, "", "institution_deadlines_professionals_only")
}

func TestNonMembersGet404OnEverySynthesisView(t *testing.T) {
	s := mustServe(t, "")
	strip := func(b []byte) string { return strings.Split(string(b), `"instance"`)[0] }
	for _, view := range []string{"plan", "chronology", "visibility", "deadlines"} {
		for _, who := range []string{"AED", "ADMIN"} {
			nonMember := s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/"+view, who, "")
			unknown := s.do("GET", "/v1/cases/"+uuid.NewString()+"/"+view, who, "")
			wantProblem(t, nonMember, http.StatusNotFound, "", "case_not_found")
			if strip(nonMember.body) != strip(unknown.body) {
				t.Errorf("%s can tell that the case exists from /%s:\n%s\n%s", who, view, nonMember.body, unknown.body)
			}
		}
	}
}

// TestAsOfShowsNothingThePolicyHidesNow: a read as of a past date shows the
// history recorded up to then as the policy lets the reader see it now. The
// children's home reads the health need in a chronology as of before the
// consent while the consent is in force, and no longer once it is
// withdrawn, whatever the date asked; auditors alone read who could see
// what on a past date.
func TestAsOfShowsNothingThePolicyHidesNow(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	auditor := s.timeline("CASE_LEO", "AUDITOR")
	var healthSeq int
	for seq, ev := range auditor {
		if ev["category"] == "health" && ev["type"] == "NeedIdentified" {
			healthSeq = seq
		}
	}
	before := time.Now().UTC()
	consent := uuid.NewString()
	wantStatus(t, s.do("POST", leo+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], true)), http.StatusCreated)
	after := time.Now().UTC()
	asOf := func(t time.Time) string { return "?asOf=" + t.Format(time.RFC3339Nano) }
	healthNeed := func(query string) bool {
		var chrono chronologyBody
		wantStatus(t, s.read(leo+"/chronology"+query, "MECS", &chrono), http.StatusOK)
		for _, e := range chrono.Entries {
			if e.Sequence == healthSeq {
				return true
			}
		}
		return false
	}
	if !healthNeed(asOf(before)) || !healthNeed(asOf(after)) || !healthNeed("") {
		t.Errorf("while the consent is in force, the children's home does not read the health need as of before it, after it or now")
	}
	mecsHealth := func(query string) string {
		var vis visibilityBody
		wantStatus(t, s.read(leo+"/visibility"+query, "AUDITOR", &vis), http.StatusOK)
		for _, m := range vis.Members {
			if m.Institution == "mecs-les-tilleuls" {
				return m.category("health")
			}
		}
		return ""
	}
	if got := mecsHealth(asOf(before)); got != "hidden health_needs_consent" {
		t.Errorf("who sees what as of before the consent, for an auditor: the children's home sees health as %q", got)
	}
	if got := mecsHealth(asOf(after)); got != "full health_consent" {
		t.Errorf("who sees what as of after the consent, for an auditor: the children's home sees health as %q", got)
	}
	wantProblem(t, s.do("GET", leo+"/visibility"+asOf(after), "ASE", ""), http.StatusForbidden, "", "visibility_as_of_auditors_only")

	wantStatus(t, s.do("POST", leo+"/events", "MOTHER", consentBody(consent, s.vars["MOTHER_ID"], false)), http.StatusCreated)
	if healthNeed(asOf(after)) || healthNeed("") {
		t.Errorf("the consent withdrawn, the children's home still reads the health need as of when it was in force")
	}

	// The placement change: absent from the chronology as of just before
	// it was recorded, present from then on.
	seq := s.findEvents("CASE_LEO", "PlacementChanged")[0]
	recorded, err := time.Parse(time.RFC3339Nano, auditor[seq]["recordedAt"].(string))
	if err != nil {
		t.Fatal(err)
	}
	placed := func(at time.Time) bool {
		var chrono chronologyBody
		wantStatus(t, s.read(leo+"/chronology"+asOf(at), "AUDITOR", &chrono), http.StatusOK)
		for _, e := range chrono.Entries {
			if e.Type == "PlacementChanged" {
				return true
			}
		}
		return false
	}
	if placed(recorded.Add(-time.Nanosecond)) || !placed(recorded) {
		t.Errorf("as of the placement's recording (%s): before %v, at %v", recorded, placed(recorded.Add(-time.Nanosecond)), placed(recorded))
	}
	var plan planBody
	wantStatus(t, s.read(leo+"/plan"+asOf(recorded.Add(-time.Nanosecond)), "AUDITOR", &plan), http.StatusOK)
	if plan.Version != uint64(seq-1) {
		t.Errorf("the plan as of just before sequence %d is at version %d", seq, plan.Version)
	}
	wantProblem(t, s.do("GET", leo+"/plan?asOf=hier", "ASE", ""), http.StatusBadRequest, "asOf", "invalid_field")
	wantProblem(t, s.do("GET", leo+"/deadlines"+asOf(before), "ASE", ""), http.StatusBadRequest, "asOf", "invalid_field")
}

func TestReadYourWritesWithMinPosition(t *testing.T) {
	s := mustServe(t, "")
	a := s.do("POST", "/v1/cases/"+s.vars["CASE_INES"]+"/events", "AED",
		`{"type":"CrisisDeclared","payload":{"crisis":"`+uuid.NewString()+`","description":"Fugue de 24 h","onCall":[{"institution":"ase-35","contact":"02 99 00 00 99"}],"protocol":"protocole partagé"}}`)
	wantStatus(t, a, http.StatusCreated)
	pos := uint64(a.json(t)["position"].(float64))
	var dl deadlinesBody
	read := s.read("/v1/deadlines?minPosition="+strconv.FormatUint(pos, 10), "AED", &dl)
	wantStatus(t, read, http.StatusOK)
	if got, _ := strconv.ParseUint(read.header.Get("Maillage-Position"), 10, 64); got < pos {
		t.Errorf("read at position %d, asked for %d", got, pos)
	}
	var plan struct {
		Crises []struct {
			Description string `json:"description"`
		} `json:"crises"`
	}
	wantStatus(t, s.read("/v1/cases/"+s.vars["CASE_INES"]+"/plan?minPosition="+strconv.FormatUint(pos, 10), "SCHOOL", &plan), http.StatusOK)
	if len(plan.Crises) != 1 || plan.Crises[0].Description != "Fugue de 24 h" {
		t.Errorf("the plan read after the crisis was declared: %+v", plan)
	}
	behind := s.do("GET", "/v1/observatory?minPosition="+strconv.FormatUint(pos+1<<40, 10), "ASE", "")
	wantProblem(t, behind, http.StatusServiceUnavailable, "", "read_models_behind")
	if behind.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	wantProblem(t, s.do("GET", "/v1/observatory?minPosition=-1", "ASE", ""), http.StatusBadRequest, "minPosition", "invalid_field")
}

func TestDirectoryListsOwnCasesOnly(t *testing.T) {
	s := mustServe(t, "")
	var dir struct {
		Institutions []struct {
			ID     string `json:"id"`
			Kind   string `json:"kind"`
			OnCall string `json:"onCall"`
			Cases  []struct {
				CaseID         string `json:"caseId"`
				ChildReference string `json:"childReference"`
			} `json:"cases"`
		} `json:"institutions"`
	}
	wantStatus(t, s.read("/v1/directory", "MECS", &dir), http.StatusOK)
	if len(dir.Institutions) != len(demoInstitutions) {
		t.Fatalf("%d institutions, want %d", len(dir.Institutions), len(demoInstitutions))
	}
	for _, inst := range dir.Institutions {
		switch {
		case inst.ID == "mecs-les-tilleuls":
			if len(inst.Cases) != 1 || inst.Cases[0].CaseID != s.vars["CASE_LEO"] || inst.Cases[0].ChildReference != "LEO-35-0147" {
				t.Errorf("the children's home's own cases: %+v", inst.Cases)
			}
		case len(inst.Cases) > 0:
			t.Errorf("the children's home reads the cases of %s", inst.ID)
		}
	}
	wantStatus(t, s.read("/v1/directory?kind=foster", "FATHER", &dir), http.StatusOK)
	if len(dir.Institutions) != 1 || dir.Institutions[0].OnCall == "" || len(dir.Institutions[0].Cases) != 0 {
		t.Errorf("the father's directory of foster services: %+v", dir.Institutions)
	}
	wantProblem(t, s.do("GET", "/v1/directory?kind=hopital", "MECS", ""), http.StatusBadRequest, "kind", "invalid_field")
}

// The demo's events are recorded at its start, in the current month, which
// the observatory never shows: it publishes closed months only.
func TestObservatoryOfTheDemoShowsNothingOfTheCurrentMonth(t *testing.T) {
	s := mustServe(t, "")
	// The month before the current one, which closes an hour after it ends.
	lastClosed := func() string {
		y, m, _ := time.Now().UTC().Add(-time.Hour).Date()
		return time.Date(y, m-1, 1, 0, 0, 0, 0, time.UTC).Format("2006-01")
	}
	before := lastClosed()
	a := s.do("GET", "/v1/observatory", "ADMIN", "")
	wantStatus(t, a, http.StatusOK)
	for _, leak := range []string{s.vars["CASE_LEO"], "LEO-35-0147", "2026-01-12"} {
		if bytes.Contains(a.body, []byte(leak)) {
			t.Errorf("the observatory shows %q: %s", leak, a.body)
		}
	}
	var o struct {
		Threshold     int               `json:"threshold"`
		ClosedThrough string            `json:"closedThrough"`
		Periods       []json.RawMessage `json:"periods"`
	}
	if err := json.Unmarshal(a.body, &o); err != nil || o.Threshold != 5 || o.Periods == nil || len(o.Periods) != 0 {
		t.Errorf("the demo's cases, recorded this month, show as %s", a.body)
	}
	if o.ClosedThrough != before && o.ClosedThrough != lastClosed() {
		t.Errorf("closed through %s, want %s: the month before the current one", o.ClosedThrough, before)
	}
	wantProblem(t, s.do("GET", "/v1/observatory", "MOTHER", ""), http.StatusForbidden, "", "observatory_professionals_only")
}

func TestSynthesisViewsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, dir)
	paths := []string{"/v1/cases/" + s.vars["CASE_LEO"] + "/plan", "/v1/cases/" + s.vars["CASE_LEO"] + "/chronology", "/v1/directory", "/v1/observatory"}
	var before []string
	for _, p := range paths {
		before = append(before, string(s.read(p, "ASE", nil).body))
	}
	vars := s.vars
	s.close()
	s2 := mustServe(t, dir)
	s2.vars = vars
	for i, p := range paths {
		if after := string(s2.read(p, "ASE", nil).body); after != before[i] {
			t.Errorf("%s changed across a restart:\n%s\n%s", p, before[i], after)
		}
	}
}

func TestProjectionsRebuildCommand(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, dir)
	plan := "/v1/cases/" + s.vars["CASE_LEO"] + "/plan"
	before := string(s.read(plan, "ASE", nil).body)
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"projections", "rebuild", "--data", dir}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "serveur en marche") {
		t.Fatalf("a rebuild while the server runs: %v", err)
	}
	vars := s.vars
	s.close()
	if err := os.Remove(filepath.Join(dir, snapshotFile)); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"projections", "rebuild", "--data", dir}, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if out := stderr.String(); !strings.Contains(out, "Vues de synthèse reconstruites") || !strings.Contains(out, "de 3 dossiers") || !strings.Contains(out, "100%") {
		t.Fatalf("rebuild's report: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err != nil {
		t.Fatalf("no snapshot after the rebuild: %v", err)
	}
	s2 := mustServe(t, dir)
	s2.vars = vars
	if after := string(s2.read(plan, "ASE", nil).body); after != before {
		t.Errorf("the plan after a rebuild differs:\n%s\n%s", before, after)
	}
}

func TestPlanFollowsReviewsChangesAndLinkedPlanVersions(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	var plan struct {
		Objectives []struct {
			ID            string `json:"id"`
			Status        string `json:"status"`
			StatusComment string `json:"statusComment"`
		} `json:"objectives"`
		Interventions []struct {
			Institution   string `json:"institution"`
			Interventions []struct {
				ID         string `json:"id"`
				Timing     string `json:"timing"`
				Ended      bool   `json:"ended"`
				EndReason  string `json:"endReason"`
				Modalities string `json:"modalities"`
			} `json:"interventions"`
		} `json:"interventions"`
		LinkedPlans []struct {
			Kind, Reference, Version string
			PreviousVersions         []string `json:"previousVersions"`
		} `json:"linkedPlans"`
	}
	wantStatus(t, s.read(leo+"/plan", "ASE", &plan), http.StatusOK)
	objective, intervention := plan.Objectives[0].ID, plan.Interventions[0].Interventions[0].ID
	for _, body := range []string{
		`{"type":"PlansArticulated","payload":{"plans":[{"kind":"PPE","reference":"PPE-35-2026-0147","version":"1","institution":"ase-35"}]}}`,
		`{"type":"PlansArticulated","payload":{"plans":[{"kind":"PPE","reference":"PPE-35-2026-0147","version":"2","institution":"ase-35"},
			{"kind":"PPA","reference":"PPA-DITEP-0147","version":"1","institution":"ditep-la-passerelle"}]}}`,
		`{"type":"ObjectiveReviewed","payload":{"objective":"` + objective + `","status":"partially_achieved","comment":"présent 3 jours sur 4"}}`,
		`{"type":"InterventionChanged","payload":{"intervention":"` + intervention + `","modalities":"accompagnement au collège chaque matin","timing":"quotidien","reason":"point d'étape"}}`,
	} {
		wantStatus(t, s.do("POST", leo+"/events", "ASE", body), http.StatusCreated)
	}
	wantStatus(t, s.read(leo+"/plan", "ASE", &plan), http.StatusOK)
	if o := plan.Objectives[0]; o.Status != "partially_achieved" || o.StatusComment != "présent 3 jours sur 4" {
		t.Errorf("the reviewed objective: %+v", o)
	}
	if iv := plan.Interventions[0].Interventions[0]; iv.Modalities != "accompagnement au collège chaque matin" || iv.Timing != "quotidien" || iv.Ended {
		t.Errorf("the changed intervention: %+v", iv)
	}
	if len(plan.LinkedPlans) != 2 || plan.LinkedPlans[0].Version != "2" || !slices.Equal(plan.LinkedPlans[0].PreviousVersions, []string{"1"}) ||
		plan.LinkedPlans[1].Kind != "PPA" {
		t.Errorf("linked plans: %+v", plan.LinkedPlans)
	}
}
