package domain

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

const (
	ase    InstitutionID = "ase-35"
	mecs   InstitutionID = "mecs-les-tilleuls"
	ditep  InstitutionID = "ditep-iroise"
	school InstitutionID = "college-jaures"
	cmpX   InstitutionID = "cmp-rennes-nord"
)

var (
	mother = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	father = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
)

func professional(i InstitutionID) Viewer { return Viewer{Role: RoleProfessional, Institution: i} }
func parent(p PersonID) Viewer            { return Viewer{Role: RoleFamily, FamilyMember: p} }

// history builds a case from hand-made events, sealed and applied one by one.
// Its clock gives each event's recorded-at and moves one hour per event
// unless the test sets it.
type history struct {
	tb     testing.TB
	state  *State
	events []Event
	clock  time.Time
}

func newHistory(tb testing.TB) *history {
	return &history{tb: tb, state: NewState(uuid.NewSHA1(uuid.NameSpaceURL, []byte(tb.Name()))), clock: t0}
}

// record seals an event of the given type and category, written by a
// professional of the institution, and applies it.
func (h *history) record(typ EventType, cat Category, by InstitutionID, payload any) Event {
	h.tb.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		h.tb.Fatal(err)
	}
	return h.recordEvent(Event{Type: typ, Category: cat, Actor: Actor{Institution: by, Professional: "pro " + string(by)}, Payload: raw})
}

func (h *history) recordEvent(e Event) Event {
	n := h.state.Version + 1
	id := uuid.NewSHA1(h.state.ID, []byte(strconv.FormatUint(n, 10)))
	salt := id[:]
	e = Seal(h.state, []Event{e}, []uuid.UUID{id}, [][]byte{salt}, h.clock)[0]
	e.Position = Position(n)
	h.state.Apply(e)
	h.events = append(h.events, e)
	h.clock = h.clock.Add(time.Hour)
	return e
}

func (h *history) open() Event {
	return h.record(CaseOpened, CategoryCoordination, ase, CaseOpenedPayload{ChildReference: "enfant-7", LegalFrame: FrameJudicial,
		Departement: "35", Coordinator: ase, CoordinatorKind: KindASE, CoordinatorName: "ASE d'Ille-et-Vilaine", Referent: Referent{Name: "Mme Le Gall"}})
}

func (h *history) join(i InstitutionID, k InstitutionKind, name string) Event {
	return h.record(PartnerJoined, CategoryCoordination, ase, PartnerJoinedPayload{Institution: i, Kind: k, Name: name,
		Referent: Referent{Name: "référent de " + name}, Reason: "accompagnement"})
}

func (h *history) leave(i InstitutionID) Event {
	return h.record(PartnerLeft, CategoryCoordination, ase, PartnerLeftPayload{Institution: i, Reason: "fin de mesure"})
}

func (h *history) family(p PersonID, name string) Event {
	return h.record(FamilyMemberRecorded, CategoryCoordination, ase, FamilyMemberRecordedPayload{FamilyMember: p, Name: name,
		Relationship: "parent", ParentalAuthority: true})
}

func (h *history) observe(by InstitutionID, cat Category, summary string) Event {
	return h.record(ObservationRecorded, cat, by, ObservationRecordedPayload{Summary: summary})
}

func (h *history) consent(by PersonID, insts []InstitutionID, kinds []InstitutionKind, cats []Category, from, until time.Time) uuid.UUID {
	id := uuid.NewSHA1(h.state.ID, []byte("consent "+strconv.Itoa(len(h.events))))
	h.record(ConsentGiven, CategoryConsent, ase, ConsentGivenPayload{Consent: id, GivenBy: by, Institutions: insts, Kinds: kinds,
		Categories: cats, From: from, Until: until})
	return id
}

func (h *history) withdraw(id uuid.UUID, by PersonID) Event {
	return h.record(ConsentWithdrawn, CategoryConsent, ase, ConsentWithdrawnPayload{Consent: id, WithdrawnBy: by})
}

func (h *history) restrict(k RestrictionKind, ref string, fam []PersonID, insts []InstitutionID, from, until time.Time) (uuid.UUID, Event) {
	id := uuid.NewSHA1(h.state.ID, []byte("order "+ref))
	e := h.record(JudicialRestrictionImposed, CategoryJudicial, ase, JudicialRestrictionImposedPayload{Restriction: id, Kind: k,
		OrderReference: ref, Court: "TJ Rennes", FamilyMembers: fam, Institutions: insts, From: from, Until: until})
	return id, e
}

func (h *history) lift(id uuid.UUID, ref string) Event {
	return h.record(JudicialRestrictionLifted, CategoryJudicial, ase, JudicialRestrictionLiftedPayload{Restriction: id, OrderReference: ref})
}

func (h *history) placement(by InstitutionID, host InstitutionID) Event {
	return h.record(PlacementChanged, CategoryDailyLife, by, PlacementChangedPayload{Planned: true, Reason: "orientation décidée en synthèse",
		PlaceOfLife: "Maison d'enfants Les Tilleuls", Address: "12 rue des Lilas, 35000 Rennes", HostInstitution: host})
}

// basic opens a case with a children's home, a DITEP and both parents.
func basic(tb testing.TB) *history {
	h := newHistory(tb)
	h.open()
	h.join(mecs, KindMECS, "MECS Les Tilleuls")
	h.join(ditep, KindDITEP, "DITEP de l'Iroise")
	h.family(mother, "Mme A.")
	h.family(father, "M. B.")
	return h
}

type seeCase struct {
	name string
	// given builds a case and returns the event to look at, who looks and when.
	given  func(h *history) (Event, Viewer, time.Time)
	want   Visibility
	rule   string
	basis  string // checked when not empty
	fields []string
}

func TestSee(t *testing.T) {
	cases := []seeCase{
		{
			name: "a children's home sees a health observation as a stub until a consent names it",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				return e, professional(mecs), h.clock
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a children's home sees a health observation in full while the consent is active",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				h.consent(mother, nil, []InstitutionKind{KindMECS}, []Category{CategoryHealth}, t0, t0.AddDate(0, 6, 0))
				return e, professional(mecs), h.clock
			},
			want: Full, rule: "health_consent",
		},
		{
			name: "a children's home sees a health observation as a stub again once the consent is withdrawn",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				c := h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryHealth}, t0, t0.AddDate(0, 6, 0))
				h.withdraw(c, mother)
				return e, professional(mecs), h.clock
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a children's home sees a health observation as a stub once the consent expired",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				until := t0.AddDate(0, 1, 0)
				h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryHealth}, t0, until)
				return e, professional(mecs), until
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a consent for other categories or other partners does not open health",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryDailyLife}, t0, t0.AddDate(1, 0, 0))
				h.consent(mother, []InstitutionID{school}, []InstitutionKind{KindAEMO}, []Category{CategoryHealth}, t0, t0.AddDate(1, 0, 0))
				return e, professional(mecs), h.clock
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a former member is not shown health by a consent given after it left: nothing after its leaving, in any form",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				h.leave(mecs)
				h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryHealth}, t0, t0.AddDate(1, 0, 0))
				return e, professional(mecs), h.clock
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a former member keeps health under a consent given before it left, while in force",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ditep, CategoryHealth, "bilan orthophonique")
				h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryHealth}, t0, t0.AddDate(1, 0, 0))
				h.leave(mecs)
				return e, professional(mecs), h.clock
			},
			want: Full, rule: "health_consent",
		},
		{
			name: "a DITEP sees health without consent",
			given: func(h *history) (Event, Viewer, time.Time) {
				return h.observe(ase, CategoryHealth, "hospitalisation"), professional(ditep), h.clock
			},
			want: Full, rule: "health_care_member",
		},
		{
			name: "an unknown event is decided by its category: unknown health is a stub without consent",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.recordEvent(Event{Type: "CarePathUpdated", Category: CategoryHealth, Actor: Actor{Institution: ditep}, Payload: json.RawMessage(`{"diagnosis":"x"}`)})
				return e, professional(mecs), h.clock
			},
			want: Hidden, rule: "health_needs_consent",
		},
		{
			name: "a newer schema of a known event is decided by its category",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.recordEvent(Event{Type: ObservationRecorded, SchemaVersion: 2, Category: CategoryPlan, Actor: Actor{Institution: ditep}, Payload: json.RawMessage(`{"summary":"x","v2":true}`)})
				return e, professional(mecs), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "an unknown category is hidden from members",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.recordEvent(Event{Type: "InvoiceSent", Category: "finance", Actor: Actor{Institution: ase}, Payload: json.RawMessage(`{}`)})
				return e, professional(ase), h.clock
			},
			want: Hidden, rule: "unknown_category",
		},
		{
			name: "a parent under placement_address_secret gets the placement change with placeOfLife, address, hostInstitution removed",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.placement(ase, "foyer-hors-dossier"), parent(mother), h.clock
			},
			want: Redacted, rule: "placement_address_secret", basis: "JE-2025-001",
			fields: []string{"placeOfLife", "address", "hostInstitution"},
		},
		{
			name: "the other parent not named by the order sees the placement change in full",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.placement(ase, "foyer-hors-dossier"), parent(father), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "a parent under placement_address_secret sees the placement change in full once the order is lifted",
			given: func(h *history) (Event, Viewer, time.Time) {
				id, _ := h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				e := h.placement(ase, "foyer-hors-dossier")
				h.lift(id, "JE-2025-001")
				return e, parent(mother), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "a parent under placement_address_secret is not told the children's home by its joining",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.events[1], parent(mother), h.clock
			},
			want: Redacted, rule: "placement_address_secret", fields: []string{"institution", "name", "referent"},
		},
		{
			name: "a parent under placement_address_secret is not told the children's home by who wrote a note",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.observe(mecs, CategoryDailyLife, "a bien dormi"), parent(mother), h.clock
			},
			want: Redacted, rule: "placement_address_secret", fields: []string{"actor"},
		},
		{
			name: "a parent under placement_address_secret is not told the children's home by a meeting's participants and place",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				e := h.record(SynthesisMeetingHeld, CategoryCoordination, ase, SynthesisMeetingHeldPayload{Meeting: uuid.New(),
					Participants: []InstitutionID{ase, mecs}, ChildHeard: true, Location: "salle B"})
				return e, parent(mother), h.clock
			},
			want: Redacted, rule: "placement_address_secret", fields: []string{"location", "participants"},
		},
		{
			name: "a member that left sees what was recorded until it left",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(school, KindSchool, "Collège Jaurès")
				e := h.observe(ase, CategoryPlan, "avant")
				h.leave(school)
				return e, professional(school), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "a member that left sees its own leaving",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(school, KindSchool, "Collège Jaurès")
				return h.leave(school), professional(school), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "a member that left sees nothing recorded after it left",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(school, KindSchool, "Collège Jaurès")
				h.leave(school)
				return h.observe(ase, CategoryPlan, "après"), professional(school), h.clock
			},
			want: Hidden, rule: "left_case",
		},
		{
			name: "a new member sees the history from the opening",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(school, KindSchool, "Collège Jaurès")
				return h.events[0], professional(school), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "partner_excluded does not hide what was recorded before it was in force",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.observe(ase, CategoryPlan, "avant")
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, h.clock.Add(time.Hour), h.clock.AddDate(0, 1, 0))
				return e, professional(mecs), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "partner_excluded hides what was recorded while it was in force",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(0, 1, 0))
				return h.observe(ase, CategoryPlan, "pendant"), professional(mecs), t0.AddDate(0, 2, 0)
			},
			want: Hidden, rule: "partner_excluded", basis: "JE-2025-002",
		},
		{
			name: "partner_excluded does not hide what was recorded after its term",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(0, 0, 1))
				h.clock = t0.AddDate(0, 0, 2)
				return h.observe(ase, CategoryPlan, "après"), professional(mecs), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "partner_excluded does not hide what was recorded after it was lifted",
			given: func(h *history) (Event, Viewer, time.Time) {
				id, _ := h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(1, 0, 0))
				h.lift(id, "JE-2025-002")
				return h.observe(ase, CategoryPlan, "après"), professional(mecs), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "of two partner_excluded orders in force, the earliest imposed is named",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(1, 0, 0))
				h.restrict(PartnerExcluded, "JE-2025-009", nil, []InstitutionID{mecs}, t0, t0.AddDate(1, 0, 0))
				return h.observe(ase, CategoryPlan, "pendant"), professional(mecs), h.clock
			},
			want: Hidden, rule: "partner_excluded", basis: "JE-2025-002",
		},
		{
			name: "a later partner_excluded order is named for what only it covers",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(0, 0, 1))
				h.restrict(PartnerExcluded, "JE-2025-009", nil, []InstitutionID{mecs}, t0, t0.AddDate(1, 0, 0))
				h.clock = t0.AddDate(0, 0, 2)
				return h.observe(ase, CategoryPlan, "après le premier"), professional(mecs), h.clock
			},
			want: Hidden, rule: "partner_excluded", basis: "JE-2025-009",
		},
		{
			name: "partner_excluded hides even health from a care member",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{ditep}, t0, t0.AddDate(1, 0, 0))
				return h.observe(ase, CategoryHealth, "pendant"), professional(ditep), h.clock
			},
			want: Hidden, rule: "partner_excluded",
		},
		{
			name: "family under family_information_limited does not see the plan",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(FamilyInformationLimited, "JE-2025-003", []PersonID{father}, nil, t0, t0.AddDate(1, 0, 0))
				return h.observe(ase, CategoryPlan, "objectif scolaire"), parent(father), h.clock
			},
			want: Hidden, rule: "family_information_limited", basis: "JE-2025-003",
		},
		{
			name: "family under family_information_limited still sees coordination",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(FamilyInformationLimited, "JE-2025-003", []PersonID{father}, nil, t0, t0.AddDate(1, 0, 0))
				return h.events[0], parent(father), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "family sees judicial orders naming them",
			given: func(h *history) (Event, Viewer, time.Time) {
				_, e := h.restrict(VisitsSupervised, "JE-2025-004", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return e, parent(mother), h.clock
			},
			want: Full, rule: "judicial_named", basis: "JE-2025-004",
		},
		{
			name: "family sees the lifting of an order naming them",
			given: func(h *history) (Event, Viewer, time.Time) {
				id, _ := h.restrict(VisitsSupervised, "JE-2025-004", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.lift(id, "JE-2025-004"), parent(mother), h.clock
			},
			want: Full, rule: "judicial_named", basis: "JE-2025-004",
		},
		{
			name: "family does not see judicial orders naming someone else",
			given: func(h *history) (Event, Viewer, time.Time) {
				id, _ := h.restrict(ContactSuspended, "JE-2025-005", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return h.lift(id, "JE-2025-005"), parent(father), h.clock
			},
			want: Hidden, rule: "judicial_not_named",
		},
		{
			name: "every member sees judicial orders",
			given: func(h *history) (Event, Viewer, time.Time) {
				_, e := h.restrict(ContactSuspended, "JE-2025-005", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
				return e, professional(ditep), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "auditor sees everything",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.restrict(PartnerExcluded, "JE-2025-002", nil, []InstitutionID{mecs}, t0, t0.AddDate(1, 0, 0))
				return h.observe(ditep, CategoryHealth, "diagnostic"), Viewer{Role: RoleAuditor}, h.clock
			},
			want: Full, rule: "auditor",
		},
		{
			name: "an admin sees nothing of cases",
			given: func(h *history) (Event, Viewer, time.Time) {
				return h.events[0], Viewer{Role: RoleAdmin}, h.clock
			},
			want: Hidden, rule: "admin_no_case_access",
		},
		{
			name: "a non-member sees nothing",
			given: func(h *history) (Event, Viewer, time.Time) {
				return h.events[0], professional(school), h.clock
			},
			want: Hidden, rule: "not_a_member",
		},
		{
			name: "an unknown family person sees nothing",
			given: func(h *history) (Event, Viewer, time.Time) {
				return h.events[0], parent(uuid.MustParse("00000000-0000-4000-8000-0000000000ff")), h.clock
			},
			want: Hidden, rule: "not_family",
		},
		{
			name: "family never sees health even with consent",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.consent(mother, []InstitutionID{mecs}, []InstitutionKind{KindMECS}, Categories, t0, t0.AddDate(1, 0, 0))
				return h.observe(ditep, CategoryHealth, "diagnostic"), parent(mother), h.clock
			},
			want: Hidden, rule: "health_not_for_family",
		},
		{
			name: "family does not see a FamilyNotInformed decision",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(cmpX, KindCMP, "CMP Rennes Nord")
				e := h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: cmpX, Reason: "danger", ReviewOn: t0.AddDate(0, 3, 0)})
				return e, parent(mother), h.clock
			},
			want: Hidden, rule: "family_not_informed",
		},
		{
			name: "family does not see the member a FamilyNotInformed decision concerns",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.join(cmpX, KindCMP, "CMP Rennes Nord")
				h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: cmpX, Reason: "danger", ReviewOn: t0.AddDate(0, 3, 0)})
				return e, parent(mother), h.clock
			},
			want: Hidden, rule: "family_not_informed",
		},
		{
			name: "family is not told the member it is not informed of by who wrote or took part",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(cmpX, KindCMP, "CMP Rennes Nord")
				h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: cmpX, Reason: "danger", ReviewOn: t0.AddDate(0, 3, 0)})
				e := h.record(SynthesisMeetingHeld, CategoryCoordination, cmpX, SynthesisMeetingHeldPayload{Meeting: uuid.New(),
					Participants: []InstitutionID{ase, cmpX}, ChildHeard: true})
				return e, parent(mother), h.clock
			},
			want: Redacted, rule: "family_not_informed", fields: []string{"participants", "actor"},
		},
		{
			name: "family sees the member once informed, never the decision",
			given: func(h *history) (Event, Viewer, time.Time) {
				e := h.join(cmpX, KindCMP, "CMP Rennes Nord")
				h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: cmpX, Reason: "danger", ReviewOn: t0.AddDate(0, 3, 0)})
				h.record(FamilyInformed, CategoryCoordination, ase, FamilyInformedPayload{Institution: cmpX, FamilyMembers: []PersonID{mother}, How: "entretien"})
				return e, parent(mother), h.clock
			},
			want: Full, rule: "default_audience",
		},
		{
			name: "members see the FamilyNotInformed decision",
			given: func(h *history) (Event, Viewer, time.Time) {
				h.join(cmpX, KindCMP, "CMP Rennes Nord")
				e := h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: cmpX, Reason: "danger", ReviewOn: t0.AddDate(0, 3, 0)})
				return e, professional(mecs), h.clock
			},
			want: Full, rule: "default_audience",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := basic(t)
			e, v, now := c.given(h)
			d := See(h.state, v, e, now)
			if d.Visibility != c.want || d.Rule != c.rule {
				t.Fatalf("got %s by %q, want %s by %q", d.Visibility, d.Rule, c.want, c.rule)
			}
			if c.basis != "" && d.Basis != c.basis {
				t.Errorf("basis %q, want %q", d.Basis, c.basis)
			}
			if !slices.Equal(d.Fields, c.fields) {
				t.Errorf("fields %q, want %q", d.Fields, c.fields)
			}
		})
	}
}

func TestSeeNamesTheConsentThatDecided(t *testing.T) {
	h := basic(t)
	e := h.observe(ditep, CategoryHealth, "bilan")
	id := h.consent(father, nil, []InstitutionKind{KindMECS}, []Category{CategoryHealth}, t0, t0.AddDate(0, 6, 0))
	h.consent(mother, []InstitutionID{mecs}, nil, []Category{CategoryHealth}, t0, t0.AddDate(0, 6, 0))
	for range 20 { // map order must not change the answer
		if d := See(h.state, professional(mecs), e, h.clock); d.Basis != id.String() {
			t.Fatalf("basis %q, want the earliest consent %s", d.Basis, id)
		}
	}
}

func TestViewRedactedCarriesNoRemovedField(t *testing.T) {
	h := basic(t)
	h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
	e := h.placement(mecs, mecs)
	d := See(h.state, parent(mother), e, h.clock)
	v := View(e, d)
	raw := mustJSON(t, v)
	// The removed keys are named in redactedFields, never as keys.
	for _, gone := range []string{`"placeOfLife":`, `"address":`, `"hostInstitution":`, `"salt":`, `"actor":`,
		"Tilleuls", "Lilas", string(mecs)} {
		if bytes.Contains(raw, []byte(gone)) {
			t.Errorf("redacted view contains %s: %s", gone, raw)
		}
	}
	if want := `{"planned":true,"reason":"orientation décidée en synthèse"}`; string(v.Payload) != want {
		t.Errorf("payload %s, want %s", v.Payload, want)
	}
	if !slices.Equal(v.RedactedFields, d.Fields) || v.Visibility != Redacted {
		t.Errorf("got %s %q, want redacted %q", v.Visibility, v.RedactedFields, d.Fields)
	}
	var back struct{ LeafHash, ChainHash Hash }
	if err := json.Unmarshal(raw, &back); err != nil || back.LeafHash != e.LeafHash || back.ChainHash != e.ChainHash {
		t.Errorf("hashes not kept: %v %s", err, raw)
	}
}

func TestViewStubCarriesOnlySequenceAndHashes(t *testing.T) {
	h := basic(t)
	e := h.observe(ditep, CategoryHealth, "diagnostic")
	raw := mustJSON(t, View(e, See(h.state, professional(mecs), e, h.clock)))
	var got map[string]json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(got))
	if want := []string{"chainHash", "leafHash", "sequence", "visibility"}; !slices.Equal(keys, want) {
		t.Fatalf("stub keys %q, want %q: %s", keys, want, raw)
	}
	if string(got["visibility"]) != `"hidden"` || string(got["sequence"]) != strconv.FormatUint(e.Sequence, 10) {
		t.Errorf("stub %s", raw)
	}
}

// A full view carries everything the viewer needs to recompute the leaf hash.
func TestViewFullLetsTheViewerRecomputeTheLeaf(t *testing.T) {
	h := basic(t)
	e := h.observe(ditep, CategoryPlan, "progrès en lecture")
	v := View(e, See(h.state, parent(mother), e, h.clock))
	var back Event
	if err := json.Unmarshal(mustJSON(t, v), &back); err != nil {
		t.Fatal(err)
	}
	if Leaf(back) != e.LeafHash || back.Position != e.Position || !v.Known {
		t.Fatalf("full view does not carry the event: %+v", back)
	}
}

// Every viewer's timeline, stubs and redactions included, verifies against
// the chain.
func TestTimelineVerifiesForEveryViewer(t *testing.T) {
	h := basic(t)
	h.restrict(PlacementAddressSecret, "JE-2025-001", []PersonID{mother}, nil, t0, t0.AddDate(1, 0, 0))
	h.placement(mecs, mecs)
	h.observe(ditep, CategoryHealth, "diagnostic")
	h.recordEvent(Event{Type: "FutureEvent", SchemaVersion: 1, Category: CategoryPlan, Payload: json.RawMessage(`[1,2]`)})
	for _, v := range []Viewer{{Role: RoleAuditor}, professional(mecs), professional(school), parent(mother), parent(father), {Role: RoleAdmin}} {
		views := Timeline(h.state, v, h.events, h.clock)
		if len(views) != len(h.events) {
			t.Fatalf("%+v: %d views for %d events", v, len(views), len(h.events))
		}
		cv := NewChainVerifier(h.state.ID)
		for _, ev := range views {
			if err := cv.Link(ev.Sequence, ev.LeafHash, ev.ChainHash); err != nil {
				t.Fatalf("%+v: %v", v, err)
			}
		}
	}
}

func TestWithoutMembersKeepsOrderAndRemovesEveryVariant(t *testing.T) {
	raw := []byte(`{"a": 1, "Address":"x","b":{"address":"nested"}, "ADDRESS" : "y","c":[1,{"d":2}],"address":"z"}`)
	got, ok := withoutMembers(raw, []string{"address"})
	if want := `{"a":1,"b":{"address":"nested"},"c":[1,{"d":2}]}`; !ok || string(got) != want {
		t.Fatalf("got %s %v, want %s", got, ok, want)
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{"a":1} {}`, `{"a":}`, `null`} {
		if _, ok := withoutMembers([]byte(bad), []string{"a"}); ok {
			t.Errorf("%q accepted as an object", bad)
		}
	}
}

func TestViewDropsAPayloadItCannotRedact(t *testing.T) {
	e := Event{Sequence: 3, Type: "FutureEvent", Payload: json.RawMessage(`["12 rue des Lilas"]`), Salt: []byte{1}}
	v := View(e, Decision{Visibility: Redacted, Fields: []string{"address"}})
	if v.Payload != nil || !slices.Contains(v.RedactedFields, "payload") || v.Known {
		t.Fatalf("got %+v", v)
	}
	if raw := mustJSON(t, v); bytes.Contains(raw, []byte("Lilas")) {
		t.Fatalf("payload leaked: %s", raw)
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}
