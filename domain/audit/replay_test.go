package audit

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// history records commands through the real decider, at a clock the test
// moves, as the case service does.
type history struct {
	t      *testing.T
	id     domain.CaseID
	state  *domain.State
	events []domain.Event
	now    time.Time
}

func newHistory(t *testing.T, start time.Time) *history {
	id := uuid.New()
	return &history{t: t, id: id, state: domain.NewState(id), now: start}
}

func (h *history) record(actor domain.Actor, role domain.Role, cat domain.Category, p domain.Payload) domain.Event {
	h.t.Helper()
	decided, err := domain.Decide(h.state, domain.Command{Type: p.EventType(), Category: cat, Actor: actor, Role: role, Payload: p}, h.now)
	if err != nil {
		h.t.Fatalf("%s: %v", p.EventType(), err)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	e := domain.Seal(h.state, decided, []uuid.UUID{uuid.New()}, [][]byte{salt}, h.now)[0]
	h.state.Apply(e)
	h.events = append(h.events, e)
	h.now = h.now.Add(time.Hour)
	return e
}

var (
	ase      = domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	mecs     = domain.Actor{Institution: "mecs-35", Professional: "Julien Roux"}
	cmpActor = domain.Actor{Institution: "cmp-35", Professional: "Dr Benali"}
)

// leo is a case with a health observation, a consent given then withdrawn,
// and an order keeping the placement secret from the father.
type leo struct {
	*history
	mother, father                      domain.PersonID
	health, placement                   domain.Event
	consent                             uuid.UUID
	beforeConsent, withConsent, afterIt time.Time
}

func newLeo(t *testing.T) leo {
	t0 := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	l := leo{history: newHistory(t, t0), mother: uuid.New(), father: uuid.New(), consent: uuid.New()}
	pro := domain.RoleProfessional
	l.record(ase, pro, "", &domain.CaseOpenedPayload{ChildReference: "LEO-35-0147", LegalFrame: domain.FrameJudicial, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}})
	l.record(ase, pro, "", &domain.PartnerJoinedPayload{Institution: "mecs-35", Kind: domain.KindMECS, Name: "MECS Les Tilleuls",
		Referent: domain.Referent{Name: "Julien Roux"}, Reason: "accueil"})
	l.record(ase, pro, "", &domain.PartnerJoinedPayload{Institution: "cmp-35", Kind: domain.KindCMP, Name: "CMP Rennes Nord",
		Referent: domain.Referent{Name: "Dr Benali"}, Reason: "suivi"})
	l.record(ase, pro, "", &domain.FamilyMemberRecordedPayload{FamilyMember: l.mother, Name: "Nathalie Durand", Relationship: "mère", ParentalAuthority: true})
	l.record(ase, pro, "", &domain.FamilyMemberRecordedPayload{FamilyMember: l.father, Name: "Thomas Durand", Relationship: "père", ParentalAuthority: true})
	l.record(ase, pro, "", &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.PlacementAddressSecret,
		OrderReference: "JE-2025-001", Court: "TJ Rennes", FamilyMembers: []domain.PersonID{l.father}, From: t0, Until: t0.AddDate(1, 0, 0)})
	l.placement = l.record(mecs, pro, "", &domain.PlacementChangedPayload{Planned: true, Reason: "accueil", PlaceOfLife: "MECS Les Tilleuls",
		Address: "1 allée des Tilleuls", HostInstitution: "mecs-35"})
	l.health = l.record(cmpActor, pro, domain.CategoryHealth, &domain.ObservationRecordedPayload{Summary: "bilan"})
	l.beforeConsent = l.now
	l.now = l.now.Add(24 * time.Hour)
	l.record(domain.Actor{FamilyMember: l.mother}, domain.RoleFamily, "", &domain.ConsentGivenPayload{Consent: l.consent, GivenBy: l.mother,
		Institutions: []domain.InstitutionID{"mecs-35"}, Categories: []domain.Category{domain.CategoryHealth}, From: l.now, Until: l.now.AddDate(1, 0, 0)})
	l.withConsent = l.now
	l.now = l.now.Add(24 * time.Hour)
	l.record(domain.Actor{FamilyMember: l.mother}, domain.RoleFamily, "", &domain.ConsentWithdrawnPayload{Consent: l.consent, WithdrawnBy: l.mother})
	l.afterIt = l.now
	return l
}

func seenBy(t *testing.T, seen []Seen, v domain.Viewer) Seen {
	t.Helper()
	for _, s := range seen {
		if s.Viewer == v {
			return s
		}
	}
	t.Fatalf("no viewer %+v in %+v", v, seen)
	return Seen{}
}

func TestReplayAnswersWhoCouldSeeAnEventBeforeDuringAndAfterAConsent(t *testing.T) {
	l := newLeo(t)
	home := domain.Viewer{Role: domain.RoleProfessional, Institution: "mecs-35"}
	care := domain.Viewer{Role: domain.RoleProfessional, Institution: "cmp-35"}
	mother := domain.Viewer{Role: domain.RoleFamily, FamilyMember: l.mother}

	before := ReplayAsOf(l.id, l.events, l.beforeConsent)
	seen, err := before.Who(l.health.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1+3+2 {
		t.Fatalf("%d viewers, want the auditor, 3 members and 2 parents", len(seen))
	}
	if s := seenBy(t, seen, home); s.Decision.Visibility != domain.Hidden || s.Decision.Rule != "health_needs_consent" {
		t.Fatalf("before the consent the children's home: %+v", s)
	}
	if s := seenBy(t, seen, care); s.Decision.Visibility != domain.Full || s.Decision.Rule != "health_care_member" {
		t.Fatalf("the CMP: %+v", s)
	}
	if s := seenBy(t, seen, mother); s.Decision.Rule != "health_not_for_family" {
		t.Fatalf("the mother: %+v", s)
	}
	if s := seenBy(t, seen, domain.Viewer{Role: domain.RoleAuditor}); s.Decision.Visibility != domain.Full {
		t.Fatalf("the auditor: %+v", s)
	}

	during := ReplayAsOf(l.id, l.events, l.withConsent)
	seen, _ = during.Who(l.health.Sequence)
	s := seenBy(t, seen, home)
	if s.Decision.Visibility != domain.Full || s.Decision.Rule != "health_consent" || s.Decision.Basis != l.consent.String() {
		t.Fatalf("with the consent the children's home: %+v", s)
	}
	if !strings.Contains(s.Why, l.consent.String()) || !strings.Contains(s.Why, "Nathalie Durand (mère)") {
		t.Fatalf("why does not name the consent and who gave it: %s", s.Why)
	}

	after := ReplayAsOf(l.id, l.events, l.afterIt)
	seen, _ = after.Who(l.health.Sequence)
	if s := seenBy(t, seen, home); s.Decision.Visibility != domain.Hidden {
		t.Fatalf("after the withdrawal the children's home: %+v", s)
	}
	if after.Version != uint64(len(l.events)) || during.Version != after.Version-1 {
		t.Fatalf("versions %d and %d for %d events", during.Version, after.Version, len(l.events))
	}

	// The order that keeps the placement from the father is named.
	seen, _ = after.Who(l.placement.Sequence)
	father := seenBy(t, seen, domain.Viewer{Role: domain.RoleFamily, FamilyMember: l.father})
	if father.Decision.Visibility != domain.Redacted || father.Decision.Basis != "JE-2025-001" || !strings.Contains(father.Why, "JE-2025-001 (TJ Rennes") {
		t.Fatalf("the father and the placement: %+v", father)
	}

	// Before the observation was recorded, nobody could see it.
	early := ReplayAsOf(l.id, l.events, l.health.RecordedAt.Add(-time.Nanosecond))
	if _, err := early.Who(l.health.Sequence); !errors.Is(err, ErrNotRecordedYet) {
		t.Fatalf("event not recorded yet: %v", err)
	}
	counts := during.Counts()
	for _, c := range counts {
		if c.Full+c.Redacted+c.Hidden != int(during.Version) {
			t.Fatalf("counts of %s do not add up: %+v", c.Label, c)
		}
	}
}

func TestFamilyIsShownReadsByInstitutionsItMayKnowOnly(t *testing.T) {
	l := newLeo(t)
	now := l.now
	rec := func(role domain.Role, inst domain.InstitutionID, who domain.PersonID) domain.AccessRecord {
		return domain.AccessRecord{At: now, Kind: domain.AccessTimeline, CaseID: l.id, FromSequence: 1, ToSequence: 9,
			Principal: uuid.New(), Role: role, Institution: inst, FamilyMember: who, Purpose: "synthèse"}
	}
	records := []domain.AccessRecord{
		rec(domain.RoleProfessional, "mecs-35", uuid.Nil),
		rec(domain.RoleProfessional, "cmp-35", uuid.Nil),
		rec(domain.RoleAuditor, "", uuid.Nil),
		rec(domain.RoleFamily, "", l.mother),
		rec(domain.RoleFamily, "", l.father),
	}
	got, limited := ForFamily(l.state, l.events, l.mother, records, now)
	if limited != nil || len(got) != 4 {
		t.Fatalf("the mother is shown %d records (limited %v), want 4", len(got), limited)
	}
	for _, r := range got {
		if r.Principal != uuid.Nil || r.Purpose != "" {
			t.Fatalf("the family is shown who exactly and why: %+v", r)
		}
	}
	// The father may not learn where the child lives: no reads by the home.
	got, _ = ForFamily(l.state, l.events, l.father, records, now)
	for _, r := range got {
		if r.Institution == "mecs-35" {
			t.Fatalf("the father is shown a read by the child's place of life under order JE-2025-001")
		}
	}
	if len(got) != 3 {
		t.Fatalf("the father is shown %d records, want 3 (CMP, auditor, his own)", len(got))
	}
	// Under family_information_limited, nothing.
	l.record(ase, domain.RoleProfessional, "", &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.FamilyInformationLimited,
		OrderReference: "JE-2025-002", Court: "TJ Rennes", FamilyMembers: []domain.PersonID{l.mother}, From: now, Until: now.AddDate(1, 0, 0)})
	got, limited = ForFamily(l.state, l.events, l.mother, records, l.now)
	if limited == nil || limited.OrderReference != "JE-2025-002" || len(got) != 0 {
		t.Fatalf("under a limiting order the mother is shown %d records (limited %v)", len(got), limited)
	}
	if others := ByOtherInstitutions("ase-35", records); len(others) != 2 {
		t.Fatalf("reads by other institutions: %d, want 2", len(others))
	}
}
