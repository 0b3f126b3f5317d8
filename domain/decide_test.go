package domain_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// The fixed clock: Monday 10 March 2025, 9:30.
var clock = time.Date(2025, time.March, 10, 9, 30, 0, 0, time.UTC)

func days(n int) time.Time { return clock.AddDate(0, 0, n) }

// id gives a stable UUID for a name used in the tests.
func id(name string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceURL, []byte("maillage-test:"+name)) }

// The case: the ASE d'Ille-et-Vilaine coordinates; the MECS Les Tilleuls and
// the DITEP La Passerelle are members; the CMP Rennes Nord is not, at first.
// The mother holds parental authority, the father does not; the grandmother
// is not recorded.
const (
	aseID   domain.InstitutionID = "ase-35"
	mecsID  domain.InstitutionID = "mecs-les-tilleuls"
	ditepID domain.InstitutionID = "ditep-la-passerelle"
	cmpID   domain.InstitutionID = "cmp-rennes-nord"
)

var (
	caseID      = id("dossier")
	mother      = id("mère")
	father      = id("père")
	grandmother = id("grand-mère")
)

var institutionsOfTests = map[domain.InstitutionID]struct {
	kind     domain.InstitutionKind
	name     string
	referent string
}{
	aseID:   {domain.KindASE, "ASE d'Ille-et-Vilaine", "Claire Le Goff"},
	mecsID:  {domain.KindMECS, "MECS Les Tilleuls", "Karim Benali"},
	ditepID: {domain.KindDITEP, "DITEP La Passerelle", "Anne Rivière"},
	cmpID:   {domain.KindCMP, "CMP Rennes Nord", "Dr Paul Marchand"},
}

// who records a command: a role and an actor.
type who struct {
	role domain.Role
	domain.Actor
}

func professionalOf(inst domain.InstitutionID) who {
	return who{domain.RoleProfessional, domain.Actor{Institution: inst, Professional: institutionsOfTests[inst].referent}}
}

func familyMember(p domain.PersonID) who {
	return who{domain.RoleFamily, domain.Actor{FamilyMember: p}}
}

var (
	ase        = professionalOf(aseID)
	mecs       = professionalOf(mecsID)
	ditep      = professionalOf(ditepID)
	cmpPro     = professionalOf(cmpID)
	motherSelf = familyMember(mother)
	fatherSelf = familyMember(father)
	auditor    = who{role: domain.RoleAuditor}
	admin      = who{role: domain.RoleAdmin, Actor: domain.Actor{Professional: "admin"}}
)

func (w who) records(p domain.Payload) domain.Command {
	var t domain.EventType
	if p != nil {
		t = p.EventType()
	}
	return domain.Command{Type: t, Actor: w.Actor, Role: w.role, Payload: p}
}

// asCategory records the command under another category.
func asCategory(c domain.Command, cat domain.Category) domain.Command { c.Category = cat; return c }

// aCase is the fixture case, opened by the ASE with the MECS and the DITEP
// as members and both parents recorded, followed by more.
func aCase(more ...domain.Command) []domain.Command {
	return append([]domain.Command{
		ase.records(opening()),
		ase.records(joining(mecsID)),
		ase.records(joining(ditepID)),
		ase.records(recording(mother)),
		ase.records(recording(father)),
	}, more...)
}

// Payloads, valid unless a test changes them.

func opening() *domain.CaseOpenedPayload {
	return &domain.CaseOpenedPayload{ChildReference: "ENF-35-2025-0147", LegalFrame: domain.FrameJudicial, Departement: "35",
		Coordinator: aseID, CoordinatorKind: domain.KindASE, CoordinatorName: "ASE d'Ille-et-Vilaine",
		Referent:        domain.Referent{Name: "Claire Le Goff", Function: "référente ASE", Phone: "02 99 02 35 35", Email: "claire.legoff@ille-et-vilaine.fr"},
		ChildBirthMonth: "2013-09"}
}

func joining(inst domain.InstitutionID) *domain.PartnerJoinedPayload {
	i := institutionsOfTests[inst]
	return &domain.PartnerJoinedPayload{Institution: inst, Kind: i.kind, Name: i.name,
		Referent: domain.Referent{Name: i.referent}, Reason: "accompagnement prévu au PPE"}
}

func leaving(inst domain.InstitutionID) *domain.PartnerLeftPayload {
	return &domain.PartnerLeftPayload{Institution: inst, Reason: "fin de la prise en charge"}
}

func newReferent(inst domain.InstitutionID) *domain.ReferentChangedPayload {
	return &domain.ReferentChangedPayload{Institution: inst, Referent: domain.Referent{Name: "Léa Morvan", Function: "éducatrice"}, Reason: "départ en congé"}
}

func handover(from, to domain.InstitutionID) *domain.CoordinationHandedOverPayload {
	return &domain.CoordinationHandedOverPayload{From: from, To: to, Reason: "le lieu de vie devient le premier interlocuteur"}
}

func recording(p domain.PersonID) *domain.FamilyMemberRecordedPayload {
	switch p {
	case mother:
		return &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Sandrine Lebrun", Relationship: "mère", ParentalAuthority: true}
	case father:
		return &domain.FamilyMemberRecordedPayload{FamilyMember: father, Name: "Julien Lebrun", Relationship: "père", ParentalAuthority: false}
	}
	return &domain.FamilyMemberRecordedPayload{FamilyMember: p, Name: "Monique Lebrun", Relationship: "grand-mère"}
}

func need(n uuid.UUID) *domain.NeedIdentifiedPayload {
	return &domain.NeedIdentifiedPayload{Need: n, Domain: "scolarité", Description: "reprendre une scolarité régulière au collège"}
}

func objective(o uuid.UUID, needs ...uuid.UUID) *domain.ObjectiveSetPayload {
	return &domain.ObjectiveSetPayload{Objective: o, Needs: needs, Title: "retour en classe à temps plein"}
}

func review(o uuid.UUID) *domain.ObjectiveReviewedPayload {
	return &domain.ObjectiveReviewedPayload{Objective: o, Status: domain.ObjectivePartiallyAchieved, Comment: "trois jours sur cinq"}
}

func intervention(i uuid.UUID, inst domain.InstitutionID, contacts ...domain.ContactArrangement) *domain.InterventionAgreedPayload {
	return &domain.InterventionAgreedPayload{Intervention: i, Institution: inst, Description: "rencontres parent-enfant",
		Modalities: "au lieu de vie", Timing: "un samedi sur deux", Start: days(7), Contacts: contacts}
}

func interventionChange(i uuid.UUID, contacts ...domain.ContactArrangement) *domain.InterventionChangedPayload {
	return &domain.InterventionChangedPayload{Intervention: i, Modalities: "au domicile", Timing: "chaque samedi", Contacts: contacts, Reason: "bilan positif"}
}

func interventionEnd(i uuid.UUID) *domain.InterventionEndedPayload {
	return &domain.InterventionEndedPayload{Intervention: i, Reason: "objectif atteint"}
}

func unsupervised(p domain.PersonID) domain.ContactArrangement {
	return domain.ContactArrangement{FamilyMember: p}
}

func supervised(p domain.PersonID, by string) domain.ContactArrangement {
	return domain.ContactArrangement{FamilyMember: p, Supervised: true, ThirdParty: by}
}

func plans(inst domain.InstitutionID) *domain.PlansArticulatedPayload {
	return &domain.PlansArticulatedPayload{Plans: []domain.PlanLink{{Kind: "PPA", Reference: "PPA-2025-12", Version: "2", Institution: inst}}}
}

func meeting(m uuid.UUID, participants []domain.InstitutionID, family ...domain.PersonID) *domain.SynthesisMeetingHeldPayload {
	return &domain.SynthesisMeetingHeldPayload{Meeting: m, Participants: participants, FamilyPresent: family, ChildHeard: true,
		Decisions: []string{"maintien de l'accueil à la MECS"}}
}

func decision(d uuid.UUID, agreeing []domain.InstitutionID, dissenting []domain.InstitutionID, contacts ...domain.ContactArrangement) *domain.DecisionRecordedPayload {
	p := &domain.DecisionRecordedPayload{Decision: d, Kind: "organisation des visites", Summary: "visites de la mère au lieu de vie",
		Agreeing: agreeing, Categories: []domain.Category{domain.CategoryPlan}, Contacts: contacts}
	for _, inst := range dissenting {
		p.Dissenting = append(p.Dissenting, domain.Dissent{Institution: inst, Reason: "rythme trop soutenu"})
	}
	return p
}

func crisis(c uuid.UUID, onCall domain.InstitutionID) *domain.CrisisDeclaredPayload {
	return &domain.CrisisDeclaredPayload{Crisis: c, Description: "fugue de la MECS", Protocol: "signalement, recherche, retour accompagné",
		OnCall: []domain.OnCall{{Institution: onCall, Contact: "astreinte 06 12 34 56 78", Hours: "24 h/24"}}}
}

func crisisResolution(c uuid.UUID) *domain.CrisisResolvedPayload {
	return &domain.CrisisResolvedPayload{Crisis: c, Outcome: "retour à la MECS le soir même"}
}

func placement() *domain.PlacementChangedPayload {
	return &domain.PlacementChangedPayload{Planned: true, Reason: "préparation à l'autonomie", PlaceOfLife: "MECS Les Tilleuls, unité ados", HostInstitution: mecsID}
}

func observation() *domain.ObservationRecordedPayload {
	return &domain.ObservationRecordedPayload{Summary: "s'est endormi plus facilement cette semaine", Impact: "positive"}
}

func consent(c uuid.UUID, by domain.PersonID, institutions ...domain.InstitutionID) *domain.ConsentGivenPayload {
	return &domain.ConsentGivenPayload{Consent: c, GivenBy: by, Institutions: institutions,
		Categories: []domain.Category{domain.CategoryHealth}, From: days(0), Until: days(365)}
}

func consentToKind(c uuid.UUID, by domain.PersonID, k domain.InstitutionKind) *domain.ConsentGivenPayload {
	p := consent(c, by)
	p.Kinds = []domain.InstitutionKind{k}
	return p
}

func withdrawal(c uuid.UUID, by domain.PersonID) *domain.ConsentWithdrawnPayload {
	return &domain.ConsentWithdrawnPayload{Consent: c, WithdrawnBy: by, Reason: "changement d'avis"}
}

const (
	orderRef = "TE 25/00123"
	court    = "tribunal judiciaire de Rennes"
	mediator = "Service de médiation familiale de Rennes"
)

// order is an order of the juge des enfants binding family members, in
// force from..until.
func order(r uuid.UUID, kind domain.RestrictionKind, from, until time.Time, family ...domain.PersonID) *domain.JudicialRestrictionImposedPayload {
	return &domain.JudicialRestrictionImposedPayload{Restriction: r, Kind: kind, OrderReference: orderRef, Court: court,
		FamilyMembers: family, From: from, Until: until}
}

func contactSuspension(r uuid.UUID, p domain.PersonID) *domain.JudicialRestrictionImposedPayload {
	return order(r, domain.ContactSuspended, days(-10), days(30), p)
}

func supervisedVisits(r uuid.UUID, thirdParty string, p domain.PersonID) *domain.JudicialRestrictionImposedPayload {
	o := order(r, domain.VisitsSupervised, days(-10), days(180), p)
	o.ThirdParty = thirdParty
	return o
}

func exclusion(r uuid.UUID, inst domain.InstitutionID) *domain.JudicialRestrictionImposedPayload {
	o := order(r, domain.PartnerExcluded, days(-1), days(90))
	o.Institutions = []domain.InstitutionID{inst}
	return o
}

func lifting(r uuid.UUID, ref string) *domain.JudicialRestrictionLiftedPayload {
	return &domain.JudicialRestrictionLiftedPayload{Restriction: r, OrderReference: ref, Reason: "ordonnance de mainlevée"}
}

func informed(inst domain.InstitutionID, family ...domain.PersonID) *domain.FamilyInformedPayload {
	return &domain.FamilyInformedPayload{Institution: inst, FamilyMembers: family, How: "entretien au service le 7 mars"}
}

func notInformed(inst domain.InstitutionID) *domain.FamilyNotInformedPayload {
	return &domain.FamilyNotInformedPayload{Institution: inst, Reason: "risque de pression sur l'enfant avant l'audience", ReviewOn: days(30)}
}

func closing() *domain.CaseClosedPayload {
	return &domain.CaseClosedPayload{Reason: "end_of_measure", Comment: "mainlevée du placement"}
}

// edit changes a payload for one test.
func edit[T domain.Payload](p T, change func(T)) T { change(p); return p }

// A spec reads like docs/domain.md, "Rules a command must keep": given a case's history, when a command is
// decided, then one event of a type is recorded, or the command is refused
// with a rule (and, when set, on a field).
type spec struct {
	name    string
	given   []domain.Command // recorded in order at the clock
	at      time.Time        // when the command is decided; the clock when zero
	when    domain.Command
	then    domain.EventType
	refused string
	field   string
}

// history records commands in order at the clock, each decided, sealed and
// applied; it fails the test if one is refused.
func history(t testing.TB, cmds []domain.Command) (*domain.State, []domain.Event) {
	t.Helper()
	s := domain.NewState(caseID)
	var all []domain.Event
	for i, c := range cmds {
		events, err := domain.Decide(s, c, clock)
		if err != nil {
			t.Fatalf("given #%d (%s) was refused: %v", i+1, c.Type, err)
		}
		for _, e := range seal(s, events, clock) {
			s.Apply(e)
			all = append(all, e)
		}
	}
	return s, all
}

// seal seals events with ids and salts derived from their sequence.
func seal(s *domain.State, events []domain.Event, at time.Time) []domain.Event {
	ids := make([]uuid.UUID, len(events))
	salts := make([][]byte, len(events))
	for i := range events {
		seq := s.Version + uint64(i) + 1
		ids[i] = uuid.NewSHA1(caseID, fmt.Appendf(nil, "event-%d", seq))
		salts[i] = fmt.Appendf(nil, "salt-%012d", seq)
	}
	return domain.Seal(s, events, ids, salts, at)
}

// shape is what Decide must leave as it was.
type shape struct {
	version                                                uint64
	members, family, consents, restrictions, needs         int
	objectives, interventions, crises, meetings, decisions int
	coordinator                                            domain.InstitutionID
	closed                                                 bool
}

func shapeOf(s *domain.State) shape {
	return shape{s.Version, len(s.Members), len(s.Family), len(s.Consents), len(s.Restrictions), len(s.Needs),
		len(s.Objectives), len(s.Interventions), len(s.Crises), len(s.Meetings), len(s.Decisions), s.Coordinator, s.Closed}
}

func (sp spec) run(t *testing.T) {
	t.Helper()
	s, _ := history(t, sp.given)
	twin, _ := history(t, sp.given)
	before := shapeOf(s)
	now := cmp.Or(sp.at, clock)

	events, err := domain.Decide(s, sp.when, now)

	if after := shapeOf(s); after != before || !reflect.DeepEqual(s, twin) {
		t.Fatalf("Decide changed the state: %+v, was %+v", after, before)
	}
	if sp.refused != "" {
		if err == nil {
			t.Fatalf("then refused with %s, but %d event(s) decided", sp.refused, len(events))
		}
		checkRefusal(t, err, sp.refused, sp.field)
		if events != nil {
			t.Errorf("refused, yet events returned: %v", events)
		}
		return
	}
	if err != nil {
		t.Fatalf("then %s, but refused: %v", sp.then, err)
	}
	if len(events) != 1 || events[0].Type != sp.then {
		t.Fatalf("then one %s, got %v", sp.then, events)
	}
	e := events[0]
	want, _ := json.Marshal(sp.when.Payload)
	if string(e.Payload) != string(want) || e.SchemaVersion != domain.CurrentSchemaVersion || e.Actor != sp.when.Actor {
		t.Errorf("envelope: payload %s, schema %d, actor %+v", e.Payload, e.SchemaVersion, e.Actor)
	}
	// The decided event seals and applies after the history.
	s.Apply(seal(s, events, now)[0])
	if s.Version != before.version+1 {
		t.Errorf("version after apply: %d, want %d", s.Version, before.version+1)
	}
}

// checkRefusal checks err is a refusal naming the rule, with a code and a
// message a professional can read.
func checkRefusal(t *testing.T, err error, rule, field string) {
	t.Helper()
	var e *domain.Error
	if !errors.As(err, &e) {
		t.Fatalf("then refused with %s, got a non-domain error: %v", rule, err)
	}
	if e.Rule != rule {
		t.Fatalf("then refused with %s, got %s: %s", rule, e.Rule, e.Message)
	}
	switch e.Code {
	case domain.ERefused, domain.EForbidden, domain.EInvalid:
	default:
		t.Errorf("refusal %s: code %q", rule, e.Code)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Errorf("refusal %s: no message", rule)
	}
	if field != "" && e.Field != field {
		t.Errorf("refusal %s: field %q, want %q", rule, e.Field, field)
	}
}

func retyped(c domain.Command, t domain.EventType) domain.Command { c.Type = t; return c }

func members(ids ...domain.InstitutionID) []domain.InstitutionID { return ids }

var (
	needSchool     = id("besoin-scolarité")
	objSchool      = id("objectif-scolarité")
	visits         = id("intervention-visites")
	synthesis      = id("synthèse-mars")
	visitsDecision = id("décision-visites")
	runaway        = id("crise-fugue")
	healthConsent  = id("consentement-santé")
	suspension     = id("ordonnance-suspension")
	supervision    = id("ordonnance-visites-accompagnées")
	exclusionOrder = id("ordonnance-exclusion")
)

func decideSpecs() []spec {
	return []spec{
		// The command itself.
		{name: "a payload of another type is refused",
			given: aCase(), when: retyped(mecs.records(observation()), domain.PartnerJoined), refused: "payload_mismatch", field: "type"},
		{name: "a command without payload is refused",
			given: aCase(), when: domain.Command{Type: domain.ObservationRecorded, Role: domain.RoleProfessional, Actor: mecs.Actor}, refused: "payload_mismatch"},
		{name: "an invalid payload is refused on its field",
			given: aCase(), when: ase.records(edit(consent(healthConsent, mother, mecsID), func(p *domain.ConsentGivenPayload) { p.Until = p.From })),
			refused: "invalid_field", field: "payload.until"},
		{name: "a nested field is named by its path",
			given: aCase(), when: ase.records(edit(joining(cmpID), func(p *domain.PartnerJoinedPayload) { p.Referent.Name = "" })),
			refused: "invalid_field", field: "payload.referent.name"},
		{name: "an observation recorded after the fact may give its date to the month",
			given: aCase(), when: mecs.records(edit(observation(), func(p *domain.ObservationRecordedPayload) { p.DateCertainty = domain.DateMonth })),
			then: domain.ObservationRecorded},
		{name: "a span may not end before the event's date",
			given: aCase(), when: mecs.records(edit(observation(), func(p *domain.ObservationRecordedPayload) {
				until := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
				p.OccurredUntil = &until
			})),
			refused: "occurred_until_before_occurred_at", field: "payload.occurredUntil"},
		{name: "a need may be recorded as health",
			given: aCase(), when: asCategory(ditep.records(need(needSchool)), domain.CategoryHealth), then: domain.NeedIdentified},
		{name: "a need may not be recorded as judicial",
			given: aCase(), when: asCategory(ditep.records(need(needSchool)), domain.CategoryJudicial), refused: "invalid_field", field: "category"},

		// Roles.
		{name: "an auditor records nothing",
			given: aCase(), when: auditor.records(observation()), refused: "role_cannot_record"},
		{name: "an admin records nothing",
			given: aCase(), when: admin.records(observation()), refused: "role_cannot_record"},
		{name: "a command without role is refused",
			given: aCase(), when: who{Actor: mecs.Actor}.records(observation()), refused: "role_cannot_record"},
		{name: "a professional without institution is refused",
			given: aCase(), when: who{role: domain.RoleProfessional, Actor: domain.Actor{Professional: "Karim Benali"}}.records(observation()),
			refused: "invalid_field", field: "actor.institution"},
		{name: "a family member without identity is refused",
			given: aCase(), when: who{role: domain.RoleFamily}.records(consent(healthConsent, mother, mecsID)), refused: "invalid_field", field: "actor.familyMember"},
		{name: "the mother gives a consent in her own name",
			given: aCase(), when: motherSelf.records(consent(healthConsent, mother, mecsID)), then: domain.ConsentGiven},
		{name: "the mother withdraws her own consent",
			given: aCase(ase.records(consent(healthConsent, mother, mecsID))), when: motherSelf.records(withdrawal(healthConsent, mother)), then: domain.ConsentWithdrawn},
		{name: "the mother cannot give a consent in the father's name",
			given: aCase(), when: motherSelf.records(consent(healthConsent, father, mecsID)), refused: "family_records_own_consent_only"},
		{name: "the mother cannot withdraw a consent in the father's name",
			given: aCase(ase.records(consent(healthConsent, mother, mecsID))), when: motherSelf.records(withdrawal(healthConsent, father)), refused: "family_records_own_consent_only"},
		{name: "the mother records nothing but consents",
			given: aCase(), when: motherSelf.records(observation()), refused: "family_records_own_consent_only"},

		// Life cycle.
		{name: "the ASE opens a case it coordinates",
			when: ase.records(opening()), then: domain.CaseOpened},
		{name: "the MECS cannot open a case the ASE is to coordinate",
			when: mecs.records(opening()), refused: "coordinator_only"},
		{name: "a case is opened once",
			given: aCase(), when: ase.records(opening()), refused: "case_already_opened"},
		{name: "nothing is recorded on a case not opened",
			when: mecs.records(observation()), refused: "case_not_opened"},
		{name: "no consent is given on a case not opened",
			when: motherSelf.records(consent(healthConsent, mother, mecsID)), refused: "case_not_opened"},
		{name: "the ASE closes the case",
			given: aCase(), when: ase.records(closing()), then: domain.CaseClosed},
		{name: "the MECS cannot close the case",
			given: aCase(), when: mecs.records(closing()), refused: "coordinator_only"},
		{name: "nothing is recorded on a closed case",
			given: aCase(ase.records(closing())), when: mecs.records(observation()), refused: "case_closed"},
		{name: "no member joins a closed case",
			given: aCase(ase.records(closing())), when: ase.records(joining(cmpID)), refused: "case_closed"},
		{name: "no consent is given on a closed case",
			given: aCase(ase.records(closing())), when: motherSelf.records(consent(healthConsent, mother, mecsID)), refused: "case_closed"},

		// Coordination and membership.
		{name: "the ASE adds the CMP",
			given: aCase(), when: ase.records(joining(cmpID)), then: domain.PartnerJoined},
		{name: "the MECS cannot add the CMP",
			given: aCase(), when: mecs.records(joining(cmpID)), refused: "coordinator_only"},
		{name: "the MECS cannot remove the DITEP",
			given: aCase(), when: mecs.records(leaving(ditepID)), refused: "coordinator_only"},
		{name: "the ASE records the grandmother",
			given: aCase(), when: ase.records(recording(grandmother)), then: domain.FamilyMemberRecorded},
		{name: "the MECS cannot record a family member",
			given: aCase(), when: mecs.records(recording(grandmother)), refused: "coordinator_only"},
		{name: "a family member is recorded once",
			given: aCase(), when: ase.records(recording(mother)), refused: "family_member_already_recorded"},
		{name: "a member records an observation",
			given: aCase(), when: mecs.records(observation()), then: domain.ObservationRecorded},
		{name: "a non-member records nothing",
			given: aCase(), when: cmpPro.records(observation()), refused: "members_only"},
		{name: "a former member records nothing",
			given: aCase(ase.records(leaving(mecsID))), when: mecs.records(observation()), refused: "members_only"},
		{name: "a member is added once",
			given: aCase(), when: ase.records(joining(mecsID)), refused: "already_member"},
		{name: "a former member may join again",
			given: aCase(ase.records(leaving(mecsID))), when: ase.records(joining(mecsID)), then: domain.PartnerJoined},
		{name: "the ASE removes the MECS",
			given: aCase(), when: ase.records(leaving(mecsID)), then: domain.PartnerLeft},
		{name: "a non-member cannot be removed",
			given: aCase(), when: ase.records(leaving(cmpID)), refused: "not_a_member"},
		{name: "the coordinator cannot leave without handing over",
			given: aCase(), when: ase.records(leaving(aseID)), refused: "coordinator_cannot_leave"},
		{name: "after handing over, the former coordinator may leave",
			given: aCase(ase.records(handover(aseID, mecsID))), when: mecs.records(leaving(aseID)), then: domain.PartnerLeft},

		// Referents.
		{name: "the MECS changes its own referent",
			given: aCase(), when: mecs.records(newReferent(mecsID)), then: domain.ReferentChanged},
		{name: "the coordinator changes the DITEP's referent",
			given: aCase(), when: ase.records(newReferent(ditepID)), then: domain.ReferentChanged},
		{name: "the MECS cannot change the DITEP's referent",
			given: aCase(), when: mecs.records(newReferent(ditepID)), refused: "referent_own_only"},
		{name: "a non-member has no referent to change",
			given: aCase(), when: ase.records(newReferent(cmpID)), refused: "not_a_member"},

		// Handover.
		{name: "the ASE hands coordination over to the MECS",
			given: aCase(), when: ase.records(handover(aseID, mecsID)), then: domain.CoordinationHandedOver},
		{name: "coordination is not handed over to a non-member",
			given: aCase(), when: ase.records(handover(aseID, cmpID)), refused: "handover_to_member"},
		{name: "coordination is not handed over to a former member",
			given: aCase(ase.records(leaving(mecsID))), when: ase.records(handover(aseID, mecsID)), refused: "handover_to_member"},
		{name: "only the coordinator's own coordination is handed over",
			given: aCase(), when: ase.records(handover(mecsID, ditepID)), refused: "handover_to_member"},
		{name: "the MECS cannot hand over coordination",
			given: aCase(), when: mecs.records(handover(aseID, mecsID)), refused: "coordinator_only"},
		{name: "after the handover the ASE no longer adds members",
			given: aCase(ase.records(handover(aseID, mecsID))), when: ase.records(joining(cmpID)), refused: "coordinator_only"},
		{name: "after the handover the MECS adds members",
			given: aCase(ase.records(handover(aseID, mecsID))), when: mecs.records(joining(cmpID)), then: domain.PartnerJoined},

		// The plan.
		{name: "a need is identified",
			given: aCase(), when: ditep.records(need(needSchool)), then: domain.NeedIdentified},
		{name: "an objective answers a known need",
			given: aCase(ditep.records(need(needSchool))), when: ase.records(objective(objSchool, needSchool)), then: domain.ObjectiveSet},
		{name: "an objective cannot answer an unknown need",
			given: aCase(), when: ase.records(objective(objSchool, needSchool)), refused: "unknown_need", field: "payload.needs[0]"},
		{name: "a known objective is reviewed",
			given: aCase(ase.records(objective(objSchool))), when: mecs.records(review(objSchool)), then: domain.ObjectiveReviewed},
		{name: "an unknown objective is not reviewed",
			given: aCase(), when: mecs.records(review(objSchool)), refused: "unknown_objective"},
		{name: "an intervention by a member is agreed",
			given: aCase(), when: ase.records(intervention(visits, mecsID)), then: domain.InterventionAgreed},
		{name: "an intervention by a non-member is refused",
			given: aCase(), when: ase.records(intervention(visits, cmpID)), refused: "intervention_member_only"},
		{name: "an intervention cannot serve an unknown objective",
			given: aCase(), when: ase.records(edit(intervention(visits, mecsID), func(p *domain.InterventionAgreedPayload) { p.Objectives = []uuid.UUID{objSchool} })),
			refused: "unknown_objective"},
		{name: "an intervention in progress changes",
			given: aCase(ase.records(intervention(visits, mecsID))), when: mecs.records(interventionChange(visits)), then: domain.InterventionChanged},
		{name: "an unknown intervention does not change",
			given: aCase(), when: mecs.records(interventionChange(visits)), refused: "unknown_intervention"},
		{name: "an ended intervention does not change",
			given: aCase(ase.records(intervention(visits, mecsID)), mecs.records(interventionEnd(visits))), when: mecs.records(interventionChange(visits)), refused: "unknown_intervention"},
		{name: "an intervention ends",
			given: aCase(ase.records(intervention(visits, mecsID))), when: mecs.records(interventionEnd(visits)), then: domain.InterventionEnded},
		{name: "an intervention ends once",
			given: aCase(ase.records(intervention(visits, mecsID)), mecs.records(interventionEnd(visits))), when: mecs.records(interventionEnd(visits)), refused: "unknown_intervention"},
		{name: "the plan is articulated with a member's PPA",
			given: aCase(), when: ase.records(plans(ditepID)), then: domain.PlansArticulated},
		{name: "the plan is not articulated with a stranger's plan",
			given: aCase(), when: ase.records(plans(cmpID)), refused: "plan_institution_unknown", field: "payload.plans[0].institution"},

		// Meetings and decisions.
		{name: "a synthesis lists members and the mother",
			given: aCase(), when: ase.records(meeting(synthesis, members(aseID, mecsID, ditepID), mother)), then: domain.SynthesisMeetingHeld},
		{name: "a synthesis does not list a non-member",
			given: aCase(), when: ase.records(meeting(synthesis, members(aseID, cmpID))), refused: "meeting_participants_known", field: "payload.participants[1]"},
		{name: "a synthesis does not list an unrecorded relative",
			given: aCase(), when: ase.records(meeting(synthesis, members(aseID), grandmother)), refused: "meeting_participants_known"},
		{name: "a decision with a member dissenting is recorded",
			given: aCase(), when: ase.records(decision(visitsDecision, members(aseID, mecsID), members(ditepID))), then: domain.DecisionRecorded},
		{name: "a non-member does not agree to a decision",
			given: aCase(), when: ase.records(decision(visitsDecision, members(aseID, cmpID), nil)), refused: "decision_members_only"},
		{name: "a non-member does not dissent from a decision",
			given: aCase(), when: ase.records(decision(visitsDecision, members(aseID), members(cmpID))), refused: "decision_members_only"},

		// Crises.
		{name: "a crisis is declared with a member on call",
			given: aCase(), when: mecs.records(crisis(runaway, mecsID)), then: domain.CrisisDeclared},
		{name: "a non-member is not on call",
			given: aCase(), when: mecs.records(crisis(runaway, cmpID)), refused: "oncall_members_only"},
		{name: "a crisis is resolved",
			given: aCase(mecs.records(crisis(runaway, mecsID))), when: mecs.records(crisisResolution(runaway)), then: domain.CrisisResolved},
		{name: "an unknown crisis is not resolved",
			given: aCase(), when: mecs.records(crisisResolution(runaway)), refused: "unknown_crisis"},
		{name: "a crisis is resolved once",
			given: aCase(mecs.records(crisis(runaway, mecsID)), mecs.records(crisisResolution(runaway))), when: mecs.records(crisisResolution(runaway)), refused: "unknown_crisis"},

		// Daily life.
		{name: "a planned placement change is recorded",
			given: aCase(), when: ase.records(placement()), then: domain.PlacementChanged},

		// Duplicate ids.
		{name: "a need id is used once",
			given: aCase(ditep.records(need(needSchool))), when: ditep.records(need(needSchool)), refused: "duplicate_id", field: "payload.need"},
		{name: "an objective id is used once",
			given: aCase(ase.records(objective(objSchool))), when: ase.records(objective(objSchool)), refused: "duplicate_id"},
		{name: "an intervention id is used once",
			given: aCase(ase.records(intervention(visits, mecsID))), when: ase.records(intervention(visits, mecsID)), refused: "duplicate_id"},
		{name: "a meeting id is used once",
			given: aCase(ase.records(meeting(synthesis, members(aseID)))), when: ase.records(meeting(synthesis, members(aseID))), refused: "duplicate_id"},
		{name: "a decision id is used once",
			given: aCase(ase.records(decision(visitsDecision, members(aseID), nil))), when: ase.records(decision(visitsDecision, members(aseID), nil)), refused: "duplicate_id"},
		{name: "a crisis id is used once",
			given: aCase(mecs.records(crisis(runaway, mecsID))), when: mecs.records(crisis(runaway, mecsID)), refused: "duplicate_id"},
		{name: "a consent id is used once",
			given: aCase(ase.records(consent(healthConsent, mother, mecsID))), when: ase.records(consent(healthConsent, mother, mecsID)), refused: "duplicate_id"},
		{name: "a restriction id is used once",
			given: aCase(ase.records(contactSuspension(suspension, father))), when: ase.records(contactSuspension(suspension, father)), refused: "duplicate_id"},

		// Contacts.
		{name: "a visit with the mother is scheduled",
			given: aCase(), when: ase.records(intervention(visits, mecsID, unsupervised(mother))), then: domain.InterventionAgreed},
		{name: "no visit with an unrecorded relative",
			given: aCase(), when: ase.records(intervention(visits, mecsID, unsupervised(grandmother))), refused: "contact_family_unknown", field: "payload.contacts[0].familyMember"},
		{name: "no decision schedules a contact with an unrecorded relative",
			given: aCase(), when: ase.records(decision(visitsDecision, members(aseID), nil, unsupervised(grandmother))), refused: "contact_family_unknown"},

		// Restrictions bind decisions too: contact_suspended.
		{name: "contacts with the father suspended: no unsupervised visit",
			given: aCase(ase.records(contactSuspension(suspension, father))),
			when:  ase.records(intervention(visits, mecsID, unsupervised(father))), refused: "contact_suspended", field: "payload.contacts[0].supervised"},
		{name: "contacts with the father suspended: a supervised visit",
			given: aCase(ase.records(contactSuspension(suspension, father))),
			when:  ase.records(intervention(visits, mecsID, supervised(father, mediator))), then: domain.InterventionAgreed},
		{name: "contacts with the father suspended: no decision of an unsupervised visit",
			given: aCase(ase.records(contactSuspension(suspension, father))),
			when:  ase.records(decision(visitsDecision, members(aseID, mecsID), nil, unsupervised(father))), refused: "contact_suspended"},
		{name: "contacts with the father suspended: no change to an unsupervised visit",
			given: aCase(ase.records(intervention(visits, mecsID, supervised(father, mediator))), ase.records(contactSuspension(suspension, father))),
			when:  mecs.records(interventionChange(visits, unsupervised(father))), refused: "contact_suspended"},
		{name: "contacts with the father suspended: the mother is visited unsupervised",
			given: aCase(ase.records(contactSuspension(suspension, father))),
			when:  ase.records(intervention(visits, mecsID, unsupervised(mother))), then: domain.InterventionAgreed},
		{name: "suspension lifted: an unsupervised visit again",
			given: aCase(ase.records(contactSuspension(suspension, father)), ase.records(lifting(suspension, orderRef))),
			when:  ase.records(intervention(visits, mecsID, unsupervised(father))), then: domain.InterventionAgreed},
		{name: "suspension expired: an unsupervised visit again",
			given: aCase(ase.records(contactSuspension(suspension, father))), at: days(31),
			when: ase.records(intervention(visits, mecsID, unsupervised(father))), then: domain.InterventionAgreed},
		{name: "suspension on its last day: no unsupervised visit",
			given: aCase(ase.records(contactSuspension(suspension, father))), at: days(30).Add(-time.Minute),
			when: ase.records(intervention(visits, mecsID, unsupervised(father))), refused: "contact_suspended"},
		{name: "suspension not yet in force: an unsupervised visit",
			given: aCase(ase.records(order(suspension, domain.ContactSuspended, days(7), days(60), father))),
			when:  ase.records(intervention(visits, mecsID, unsupervised(father))), then: domain.InterventionAgreed},

		// visits_supervised.
		{name: "visits supervised: no unsupervised visit",
			given: aCase(ase.records(supervisedVisits(supervision, mediator, mother))),
			when:  ase.records(intervention(visits, mecsID, unsupervised(mother))), refused: "visits_supervised"},
		{name: "visits supervised by the mediation service: not by the MECS",
			given: aCase(ase.records(supervisedVisits(supervision, mediator, mother))),
			when:  ase.records(intervention(visits, mecsID, supervised(mother, "MECS Les Tilleuls"))), refused: "visits_supervised", field: "payload.contacts[0].thirdParty"},
		{name: "visits supervised by the mediation service: by the mediation service",
			given: aCase(ase.records(supervisedVisits(supervision, mediator, mother))),
			when:  ase.records(decision(visitsDecision, members(aseID, mecsID), nil, supervised(mother, strings.ToUpper(mediator)))), then: domain.DecisionRecorded},
		{name: "visits supervised, no third party designated: any supervision",
			given: aCase(ase.records(supervisedVisits(supervision, "", mother))),
			when:  ase.records(intervention(visits, mecsID, supervised(mother, "éducatrice de la MECS"))), then: domain.InterventionAgreed},

		// partner_excluded.
		{name: "the MECS excluded by the judge records nothing",
			given: aCase(ase.records(exclusion(exclusionOrder, mecsID))), when: mecs.records(observation()), refused: "partner_excluded"},
		{name: "the MECS excluded by the judge: the DITEP still records",
			given: aCase(ase.records(exclusion(exclusionOrder, mecsID))), when: ditep.records(observation()), then: domain.ObservationRecorded},
		{name: "exclusion lifted: the MECS records again",
			given: aCase(ase.records(exclusion(exclusionOrder, mecsID)), ase.records(lifting(exclusionOrder, orderRef))),
			when:  mecs.records(observation()), then: domain.ObservationRecorded},
		{name: "an excluded former member does not join again",
			given: aCase(ase.records(leaving(mecsID)), ase.records(exclusion(exclusionOrder, mecsID))),
			when:  ase.records(joining(mecsID)), refused: "partner_excluded"},

		// Consents.
		{name: "the ASE records the mother's consent",
			given: aCase(), when: ase.records(consent(healthConsent, mother, mecsID)), then: domain.ConsentGiven},
		{name: "the father, without parental authority, does not consent",
			given: aCase(), when: fatherSelf.records(consent(healthConsent, father, mecsID)), refused: "consent_parental_authority", field: "payload.givenBy"},
		{name: "an unrecorded relative does not consent",
			given: aCase(), when: ase.records(consent(healthConsent, grandmother, mecsID)), refused: "consent_parental_authority"},
		{name: "a consent may name an institution that is not a member: the answer tells no membership",
			given: aCase(), when: motherSelf.records(consent(healthConsent, mother, cmpID)), then: domain.ConsentGiven},
		{name: "a consent may name a kind of institution not yet a member",
			given: aCase(), when: motherSelf.records(consentToKind(healthConsent, mother, domain.KindCMP)), then: domain.ConsentGiven},
		{name: "an unknown consent is not withdrawn",
			given: aCase(), when: motherSelf.records(withdrawal(healthConsent, mother)), refused: "unknown_consent"},
		{name: "a consent is withdrawn once",
			given: aCase(ase.records(consent(healthConsent, mother, mecsID)), motherSelf.records(withdrawal(healthConsent, mother))),
			when:  motherSelf.records(withdrawal(healthConsent, mother)), refused: "unknown_consent"},
		{name: "the father, without parental authority, does not withdraw a consent",
			given: aCase(ase.records(consent(healthConsent, mother, mecsID))), when: ase.records(withdrawal(healthConsent, father)), refused: "consent_parental_authority"},

		// Orders of the juge des enfants.
		{name: "an order naming the father is recorded",
			given: aCase(), when: ase.records(contactSuspension(suspension, father)), then: domain.JudicialRestrictionImposed},
		{name: "an order does not name an unrecorded relative",
			given: aCase(), when: ase.records(contactSuspension(suspension, grandmother)), refused: "restriction_family_unknown"},
		{name: "an exclusion does not name a stranger to the case",
			given: aCase(), when: ase.records(exclusion(exclusionOrder, cmpID)), refused: "restriction_institution_unknown"},
		{name: "an exclusion may name a former member",
			given: aCase(ase.records(leaving(mecsID))), when: ase.records(exclusion(exclusionOrder, mecsID)), then: domain.JudicialRestrictionImposed},
		{name: "an order is lifted with its reference",
			given: aCase(ase.records(contactSuspension(suspension, father))), when: ase.records(lifting(suspension, orderRef)), then: domain.JudicialRestrictionLifted},
		{name: "an order is not lifted under another reference",
			given: aCase(ase.records(contactSuspension(suspension, father))), when: ase.records(lifting(suspension, "TE 24/09999")), refused: "unknown_restriction", field: "payload.orderReference"},
		{name: "an unknown order is not lifted",
			given: aCase(), when: ase.records(lifting(suspension, orderRef)), refused: "unknown_restriction"},
		{name: "an order is lifted once",
			given: aCase(ase.records(contactSuspension(suspension, father)), ase.records(lifting(suspension, orderRef))),
			when:  ase.records(lifting(suspension, orderRef)), refused: "unknown_restriction"},

		// Informing the family.
		{name: "the mother is told the DITEP joined",
			given: aCase(), when: ase.records(informed(ditepID, mother)), then: domain.FamilyInformed},
		{name: "the family is told about a member that has left since",
			given: aCase(ase.records(leaving(ditepID))), when: ase.records(informed(ditepID, mother, father)), then: domain.FamilyInformed},
		{name: "the family is not told about a stranger to the case",
			given: aCase(), when: ase.records(informed(cmpID, mother)), refused: "not_a_member"},
		{name: "an unrecorded relative is not told",
			given: aCase(), when: ase.records(informed(ditepID, grandmother)), refused: "family_member_unknown"},
		{name: "a reasoned decision not to tell the family",
			given: aCase(), when: ase.records(notInformed(ditepID)), then: domain.FamilyNotInformed},
		{name: "no decision not to tell about a stranger to the case",
			given: aCase(), when: ase.records(notInformed(cmpID)), refused: "not_a_member"},
	}
}

func TestDecide(t *testing.T) {
	for _, sp := range decideSpecs() {
		t.Run(sp.name, sp.run)
	}
}

// Every type of the catalogue has a spec where it is recorded.
func TestDecideSpecsCoverTheCatalogue(t *testing.T) {
	accepted := map[domain.EventType]bool{}
	for _, sp := range decideSpecs() {
		accepted[sp.then] = true
	}
	for _, et := range domain.EventTypes() {
		if !accepted[et] {
			t.Errorf("no spec records a %s", et)
		}
	}
}

func TestDecideFillsTheEnvelope(t *testing.T) {
	s, _ := history(t, aCase())
	occurred := days(-2)
	corr, cause := id("corrélation"), id("cause")
	cmd := asCategory(ditep.records(need(needSchool)), domain.CategoryHealth)
	cmd.OccurredAt, cmd.CorrelationID, cmd.CausationID = occurred, corr, cause

	events, err := domain.Decide(s, cmd, clock)
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	if e.Type != domain.NeedIdentified || e.Category != domain.CategoryHealth || !e.OccurredAt.Equal(occurred) ||
		e.CorrelationID != corr || e.CausationID != cause || e.Actor != ditep.Actor || e.SchemaVersion != domain.CurrentSchemaVersion {
		t.Errorf("envelope: %+v", e)
	}
	if e.ID != uuid.Nil || e.Sequence != 0 || !e.RecordedAt.IsZero() || e.Salt != nil || !e.LeafHash.IsZero() || !e.ChainHash.IsZero() {
		t.Errorf("Decide filled what Seal gives: %+v", e)
	}
	var back domain.NeedIdentifiedPayload
	if err := json.Unmarshal(e.Payload, &back); err != nil || back != *need(needSchool) {
		t.Errorf("payload %s does not decode to the command's (%v)", e.Payload, err)
	}

	// Without a business date, the event occurred now; without a category,
	// it takes the type's default.
	events, _ = domain.Decide(s, ditep.records(need(needSchool)), clock)
	if !events[0].OccurredAt.Equal(clock) || events[0].Category != domain.CategoryPlan {
		t.Errorf("defaults: occurred %v, category %s", events[0].OccurredAt, events[0].Category)
	}
}

func TestContactSuspendedMessageNamesTheOrder(t *testing.T) {
	s, _ := history(t, aCase(ase.records(contactSuspension(suspension, father))))
	_, err := domain.Decide(s, ase.records(intervention(visits, mecsID, unsupervised(father))), clock)
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != domain.ERefused {
		t.Fatalf("want a refusal, got %v", err)
	}
	for _, want := range []string{"Julien Lebrun", orderRef, court, "non accompagné"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not say %q", e.Message, want)
		}
	}
}

func TestRefusalCodes(t *testing.T) {
	codes := map[string]string{
		"role_cannot_record": domain.EForbidden, "family_records_own_consent_only": domain.EForbidden,
		"members_only": domain.EForbidden, "coordinator_only": domain.EForbidden, "partner_excluded": domain.EForbidden,
		"payload_mismatch": domain.EInvalid, "invalid_field": domain.EInvalid,
		"case_closed": domain.ERefused, "contact_suspended": domain.ERefused, "consent_parental_authority": domain.ERefused,
	}
	for _, sp := range decideSpecs() {
		want, ok := codes[sp.refused]
		if !ok || sp.name == "an excluded former member does not join again" {
			continue
		}
		s, _ := history(t, sp.given)
		_, err := domain.Decide(s, sp.when, cmp.Or(sp.at, clock))
		if got := domain.ErrorCode(err); got != want {
			t.Errorf("%s: code %q, want %q", sp.name, got, want)
		}
	}
}

func TestSealedHistoryVerifies(t *testing.T) {
	_, events := history(t, aCase(
		ase.records(contactSuspension(suspension, father)),
		ditep.records(need(needSchool)),
		motherSelf.records(consent(healthConsent, mother, mecsID)),
	))

	v := domain.NewChainVerifier(caseID)
	for _, e := range events {
		if err := v.Event(e); err != nil {
			t.Fatalf("sealed history does not verify: %v", err)
		}
	}

	// Alter one byte of the payload of event 6 (the order): verification
	// stops there.
	tampered := append([]domain.Event(nil), events...)
	payload := append([]byte(nil), tampered[5].Payload...)
	i := strings.Index(string(payload), "TE 25")
	payload[i+3] = '3' // TE 35/00123
	tampered[5].Payload = payload

	v = domain.NewChainVerifier(caseID)
	var broken *domain.ChainBreak
	for _, e := range tampered {
		if err := v.Event(e); err != nil {
			if !errors.As(err, &broken) {
				t.Fatalf("want a *ChainBreak, got %v", err)
			}
			break
		}
	}
	if broken == nil || broken.Sequence != 6 || broken.Field != "leafHash" {
		t.Fatalf("tampering not detected at sequence 6: %v", broken)
	}
}

func TestValidateRefusesBadPayloads(t *testing.T) {
	long := strings.Repeat("a", 4001)
	tests := []struct {
		name    string
		payload domain.Payload
		field   string
	}{
		{"no child reference", edit(opening(), func(p *domain.CaseOpenedPayload) { p.ChildReference = " " }), "childReference"},
		{"unknown legal frame", edit(opening(), func(p *domain.CaseOpenedPayload) { p.LegalFrame = "civil" }), "legalFrame"},
		{"unknown département", edit(opening(), func(p *domain.CaseOpenedPayload) { p.Departement = "20" }), "departement"},
		{"unknown coordinator kind", edit(opening(), func(p *domain.CaseOpenedPayload) { p.CoordinatorKind = "hospital" }), "coordinatorKind"},
		{"referent without name", edit(opening(), func(p *domain.CaseOpenedPayload) { p.Referent.Name = "" }), "referent.name"},
		{"referent with a bad e-mail", edit(opening(), func(p *domain.CaseOpenedPayload) { p.Referent.Email = "claire.legoff" }), "referent.email"},
		{"referent with a bad phone", edit(opening(), func(p *domain.CaseOpenedPayload) { p.Referent.Phone = "appeler le standard" }), "referent.phone"},
		{"full birth date", edit(opening(), func(p *domain.CaseOpenedPayload) { p.ChildBirthMonth = "2013-09-14" }), "childBirthMonth"},
		{"institution id with spaces", edit(joining(cmpID), func(p *domain.PartnerJoinedPayload) { p.Institution = "cmp rennes" }), "institution"},
		{"name on two lines", edit(joining(cmpID), func(p *domain.PartnerJoinedPayload) { p.Name = "CMP\nRennes" }), "name"},
		{"a novel as a name", edit(joining(cmpID), func(p *domain.PartnerJoinedPayload) { p.Name = long[:201] }), "name"},
		{"a novel as a reason", edit(leaving(mecsID), func(p *domain.PartnerLeftPayload) { p.Reason = long }), "reason"},
		{"handover to oneself", handover(aseID, aseID), "to"},
		{"family member without id", edit(recording(mother), func(p *domain.FamilyMemberRecordedPayload) { p.FamilyMember = uuid.Nil }), "familyMember"},
		{"objective with a nil need", objective(objSchool, uuid.Nil), "needs[0]"},
		{"objective with a need twice", objective(objSchool, needSchool, needSchool), "needs[1]"},
		{"unknown objective status", edit(review(objSchool), func(p *domain.ObjectiveReviewedPayload) { p.Status = "done" }), "status"},
		{"intervention ending before it starts", edit(intervention(visits, mecsID), func(p *domain.InterventionAgreedPayload) { e := p.Start.Add(-time.Hour); p.End = &e }), "end"},
		{"intervention without start", edit(intervention(visits, mecsID), func(p *domain.InterventionAgreedPayload) { p.Start = time.Time{} }), "start"},
		{"third party for an unsupervised contact", intervention(visits, mecsID, domain.ContactArrangement{FamilyMember: mother, ThirdParty: mediator}), "contacts[0].thirdParty"},
		{"change without reason", edit(interventionChange(visits), func(p *domain.InterventionChangedPayload) { p.Reason = "" }), "reason"},
		{"no plan", &domain.PlansArticulatedPayload{}, "plans"},
		{"unknown plan kind", edit(plans(ditepID), func(p *domain.PlansArticulatedPayload) { p.Plans[0].Kind = "PAI" }), "plans[0].kind"},
		{"plan without reference", edit(plans(ditepID), func(p *domain.PlansArticulatedPayload) { p.Plans[0].Reference = "" }), "plans[0].reference"},
		{"meeting without participants", meeting(synthesis, nil), "participants"},
		{"meeting with an empty decision", edit(meeting(synthesis, members(aseID)), func(p *domain.SynthesisMeetingHeldPayload) { p.Decisions = []string{""} }), "decisions[0]"},
		{"decision without categories", edit(decision(visitsDecision, members(aseID), nil), func(p *domain.DecisionRecordedPayload) { p.Categories = nil }), "categories"},
		{"decision with an unknown category", edit(decision(visitsDecision, members(aseID), nil), func(p *domain.DecisionRecordedPayload) { p.Categories = []domain.Category{"secret"} }), "categories[0]"},
		{"agreeing and dissenting", decision(visitsDecision, members(aseID, mecsID), members(mecsID)), "dissenting[0].institution"},
		{"dissent without reason", edit(decision(visitsDecision, members(aseID), members(mecsID)), func(p *domain.DecisionRecordedPayload) { p.Dissenting[0].Reason = "" }), "dissenting[0].reason"},
		{"crisis without anyone on call", edit(crisis(runaway, mecsID), func(p *domain.CrisisDeclaredPayload) { p.OnCall = nil }), "onCall"},
		{"on call without contact", edit(crisis(runaway, mecsID), func(p *domain.CrisisDeclaredPayload) { p.OnCall[0].Contact = "" }), "onCall[0].contact"},
		{"placement without place of life", edit(placement(), func(p *domain.PlacementChangedPayload) { p.PlaceOfLife = "" }), "placeOfLife"},
		{"unknown impact", edit(observation(), func(p *domain.ObservationRecordedPayload) { p.Impact = "neutral" }), "impact"},
		{"unknown date certainty", edit(observation(), func(p *domain.ObservationRecordedPayload) { p.DateCertainty = "week" }), "dateCertainty"},
		{"empty end of span", edit(observation(), func(p *domain.ObservationRecordedPayload) { p.OccurredUntil = &time.Time{} }), "occurredUntil"},
		{"consent naming nobody", consent(healthConsent, mother), "institutions"},
		{"consent without categories", edit(consent(healthConsent, mother, mecsID), func(p *domain.ConsentGivenPayload) { p.Categories = nil }), "categories"},
		{"consent to an unknown kind", consentToKind(healthConsent, mother, "hospital"), "kinds[0]"},
		{"consent without end", edit(consent(healthConsent, mother, mecsID), func(p *domain.ConsentGivenPayload) { p.Until = time.Time{} }), "until"},
		{"consent ending before it starts", edit(consent(healthConsent, mother, mecsID), func(p *domain.ConsentGivenPayload) { p.Until = days(-1) }), "until"},
		{"withdrawal without author", withdrawal(healthConsent, uuid.Nil), "withdrawnBy"},
		{"order without reference", edit(contactSuspension(suspension, father), func(p *domain.JudicialRestrictionImposedPayload) { p.OrderReference = "" }), "orderReference"},
		{"order of an unknown kind", edit(contactSuspension(suspension, father), func(p *domain.JudicialRestrictionImposedPayload) { p.Kind = "curfew" }), "kind"},
		{"order ending before it starts", edit(contactSuspension(suspension, father), func(p *domain.JudicialRestrictionImposedPayload) { p.Until = p.From }), "until"},
		{"suspension naming nobody", order(suspension, domain.ContactSuspended, days(0), days(30)), "familyMembers"},
		{"exclusion naming no institution", order(exclusionOrder, domain.PartnerExcluded, days(0), days(30)), "institutions"},
		{"third party outside supervised visits", edit(contactSuspension(suspension, father), func(p *domain.JudicialRestrictionImposedPayload) { p.ThirdParty = mediator }), "thirdParty"},
		{"lifting without reference", lifting(suspension, ""), "orderReference"},
		{"informing nobody", informed(ditepID), "familyMembers"},
		{"not informing without review date", edit(notInformed(ditepID), func(p *domain.FamilyNotInformedPayload) { p.ReviewOn = time.Time{} }), "reviewOn"},
		{"closing for an unknown reason", edit(closing(), func(p *domain.CaseClosedPayload) { p.Reason = "moved" }), "reason"},
		{"text with a NUL byte", edit(observation(), func(p *domain.ObservationRecordedPayload) { p.Summary = "a\x00b" }), "summary"},
		{"text not in UTF-8", edit(observation(), func(p *domain.ObservationRecordedPayload) { p.Summary = "caf\xe9" }), "summary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.payload.Validate()
			var e *domain.Error
			if !errors.As(err, &e) {
				t.Fatalf("want an invalid %s, got %v", tt.field, err)
			}
			if e.Code != domain.EInvalid || e.Field != tt.field || e.Message == "" {
				t.Errorf("got %s on %q (%s), want invalid %q", e.Code, e.Field, e.Message, tt.field)
			}
		})
	}
}

func TestValidateAcceptsMultilineText(t *testing.T) {
	p := edit(observation(), func(p *domain.ObservationRecordedPayload) { p.Summary = "lundi : calme\n\tmardi : agité" })
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDepartementCodes(t *testing.T) {
	for code, ok := range map[string]bool{
		"01": true, "35": true, "95": true, "2A": true, "2B": true, "971": true, "974": true, "976": true,
		"": false, "00": false, "1": false, "20": false, "96": false, "2C": false, "2a": false,
		"970": false, "977": false, "035": false, "+1": false, "3 5": false,
	} {
		p := edit(opening(), func(p *domain.CaseOpenedPayload) { p.Departement = code })
		if err := p.Validate(); (err == nil) != ok {
			t.Errorf("département %q: valid %v, want %v (%v)", code, err == nil, ok, err)
		}
	}
}
