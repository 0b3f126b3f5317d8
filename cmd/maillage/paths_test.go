package main

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// exclude records, as the ASE, an order excluding inst from Léo's case now.
func exclude(t *testing.T, s *server, inst, ref string) {
	t.Helper()
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "ASE", `{"type":"JudicialRestrictionImposed","payload":{
		"restriction":"`+uuid.NewString()+`","kind":"partner_excluded","orderReference":"`+ref+`","court":"Tribunal pour enfants de Rennes",
		"institutions":["`+inst+`"],"from":"`+from+`","until":"2030-01-01T00:00:00Z"}}`), http.StatusCreated)
}

func TestRefusalsQuoteNothingTheRequesterMayNotSee(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	exclude(t, s, "college-jules-ferry", "TPE Rennes 26/99999")

	// The school's timeline hides the order excluding it; its refusal must
	// not quote it.
	for _, ev := range s.timeline("CASE_LEO", "SCHOOL") {
		if typ, _ := ev["type"].(string); strings.HasPrefix(typ, "Judicial") && ev["visibility"] != "hidden" {
			t.Fatalf("the excluded school sees the order: %v", ev)
		}
	}
	a := s.do("POST", leo+"/events", "SCHOOL", `{"type":"ObservationRecorded","payload":{"summary":"Léo a participé au conseil de classe"}}`)
	wantProblem(t, a, http.StatusConflict, "", "undisclosed_decision")
	for _, secret := range []string{"99999", "Tribunal", "exclu", "partner_excluded", "Jules Ferry"} {
		if bytes.Contains(a.body, []byte(secret)) {
			t.Errorf("the excluded school's refusal quotes %q: %s", secret, a.body)
		}
	}
	// The neutral answer is the same for another hidden reason of the rule.
	b := s.do("POST", leo+"/events", "SCHOOL", `{"type":"ObservationRecorded","payload":{"summary":"autre"}}`)
	if string(a.body) != string(b.body) {
		t.Errorf("two refusals of the same hidden order differ:\n%s\n%s", a.body, b.body)
	}

	// The full reason is in the access log, for auditors.
	var log struct {
		Records []struct {
			Kind string `json:"kind"`
			Rule string `json:"rule"`
		} `json:"records"`
	}
	wantStatus(t, s.read(leo+"/access", "AUDITOR", &log), http.StatusOK)
	found := false
	for _, r := range log.Records {
		found = found || r.Kind == "refusal" && r.Rule == "partner_excluded"
	}
	if !found {
		t.Errorf("the auditor's access list does not hold the withheld refusal: %+v", log.Records)
	}
	var coordinator struct {
		Records []struct {
			Kind string `json:"kind"`
		} `json:"records"`
	}
	wantStatus(t, s.read(leo+"/access", "ASE", &coordinator), http.StatusOK)
	for _, r := range coordinator.Records {
		if r.Kind == "refusal" {
			t.Errorf("the coordinator's access list shows a withheld refusal")
		}
	}

	// Metrics name routes, outcomes and institutions, never what a case holds.
	metrics := s.do("GET", "/metrics", "", "")
	wantStatus(t, metrics, http.StatusOK)
	for _, secret := range []string{"26/99999", "Tribunal", "LEO-35", s.vars["CASE_LEO"], "Durand", "partner_excluded"} {
		if bytes.Contains(metrics.body, []byte(secret)) {
			i := bytes.Index(metrics.body, []byte(secret))
			t.Errorf("/metrics holds %q: %s", secret, metrics.body[max(0, i-200):min(len(metrics.body), i+50)])
		}
	}

	// The ASE sees the contact suspension: its refusal says why.
	c := s.do("POST", leo+"/events", "ASE", `{"type":"InterventionAgreed","payload":{"intervention":"`+uuid.NewString()+`",
		"institution":"mecs-les-tilleuls","description":"Week-end chez le père","modalities":"hébergement","timing":"un week-end sur deux",
		"start":"2026-12-05T10:00:00+01:00","contacts":[{"familyMember":"`+s.vars["FATHER_ID"]+`","supervised":false}]}}`)
	wantProblem(t, c, http.StatusConflict, "payload.contacts[0].supervised", "contact_suspended")
}

func TestAFamilyConsentAnswerTellsNoMembership(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	consent := func(inst string) answer {
		return s.do("POST", leo+"/events", "MOTHER", `{"type":"ConsentGiven","payload":{"consent":"`+uuid.NewString()+`",
			"givenBy":"`+s.vars["MOTHER_ID"]+`","institutions":["`+inst+`"],"categories":["health"],
			"from":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z"}}`)
	}
	member, stranger := consent("mecs-les-tilleuls"), consent("aed-sauvegarde-35")
	if member.status != http.StatusCreated || stranger.status != member.status {
		t.Errorf("a consent naming a member answers %d, one naming an institution of the directory that is not a member %d: %s",
			member.status, stranger.status, stranger.body)
	}
	wantProblem(t, consent("nulle-part"), http.StatusBadRequest, "payload.institutions[0]", "invalid_field")
}

func TestFormerMembersSeeNothingAfterLeaving(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	wantStatus(t, s.do("POST", leo+"/events", "ASE", `{"type":"PartnerLeft","payload":{"institution":"college-jules-ferry","reason":"fin de scolarité"}}`), http.StatusCreated)
	left := s.do("GET", leo+"/timeline?limit=1000", "SCHOOL", "")
	wantStatus(t, left, http.StatusOK)
	leftVersion := int(left.json(t)["version"].(float64))
	wantStatus(t, s.do("POST", leo+"/events", "ASE", `{"type":"NeedIdentified","payload":{"need":"`+uuid.NewString()+`",
		"domain":"scolarité","description":"soutien scolaire après le départ du collège"}}`), http.StatusCreated)

	after := s.do("GET", leo+"/timeline?limit=1000", "SCHOOL", "")
	wantStatus(t, after, http.StatusOK)
	body := after.json(t)
	if v := int(body["version"].(float64)); v != leftVersion {
		t.Errorf("the former member reads version %d, want its leaving's %d", v, leftVersion)
	}
	if etag := after.header.Get("ETag"); etag != `"`+strconv.Itoa(leftVersion)+`"` {
		t.Errorf("ETag %s, want the leaving's version %d", etag, leftVersion)
	}
	events := body["events"].([]any)
	if last := int(events[len(events)-1].(map[string]any)["sequence"].(float64)); last != leftVersion {
		t.Errorf("the former member's timeline goes to sequence %d, past its leaving (%d)", last, leftVersion)
	}
	if bytes.Equal(after.body, left.body) == false {
		t.Errorf("the former member's timeline changed after it left:\n%s\n%s", left.body, after.body)
	}
	for _, view := range []string{"plan", "chronology"} {
		a := s.do("GET", leo+"/"+view, "SCHOOL", "")
		wantStatus(t, a, http.StatusOK)
		if v := int(a.json(t)["version"].(float64)); v != leftVersion {
			t.Errorf("%s: version %d, want %d", view, v, leftVersion)
		}
		if bytes.Contains(a.body, []byte("soutien scolaire")) {
			t.Errorf("%s shows what was recorded after the leaving", view)
		}
	}
	wantProblem(t, s.do("GET", leo+"/head", "SCHOOL", ""), http.StatusForbidden, "", "head_current_members_only")
}

func TestAFamilyAccessListNamesNoHiddenOrder(t *testing.T) {
	s := mustServe(t, "")
	leo := "/v1/cases/" + s.vars["CASE_LEO"]
	wantStatus(t, s.do("POST", leo+"/events", "ASE", `{"type":"JudicialRestrictionImposed","payload":{
		"restriction":"`+uuid.NewString()+`","kind":"family_information_limited","orderReference":"TPE Rennes 26/55555","court":"Tribunal pour enfants de Rennes",
		"familyMembers":["`+s.vars["MOTHER_ID"]+`"],"from":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z"}}`), http.StatusCreated)
	a := s.do("GET", leo+"/access", "MOTHER", "")
	wantStatus(t, a, http.StatusOK)
	if bytes.Contains(a.body, []byte("55555")) || bytes.Contains(a.body, []byte("Tribunal")) {
		t.Errorf("the mother's access list names the order her timeline hides: %s", a.body)
	}
	if !bytes.Contains(a.body, []byte("family_information_limited")) {
		t.Errorf("the mother is not told why her access list is empty: %s", a.body)
	}
}
