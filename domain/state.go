package domain

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// State is a case folded from its events: what the decider needs to keep the
// rules, and what the policy needs to decide who sees what (the access
// state). Build it with NewState and Apply; treat its fields as read-only.
type State struct {
	ID      CaseID
	Version uint64 // sequence of the last applied event
	Head    Hash   // chain hash of the last applied event (Genesis when none)

	Opened         bool
	Closed         bool
	OpenedAt       time.Time
	ChildReference string
	LegalFrame     LegalFrame
	Departement    string
	Coordinator    InstitutionID

	// Members holds current and former members; see Member.Active.
	Members      map[InstitutionID]*Member
	Family       map[PersonID]*FamilyMember
	Consents     map[uuid.UUID]*Consent
	Restrictions map[uuid.UUID]*Restriction

	Needs         map[uuid.UUID]*Need
	Objectives    map[uuid.UUID]*Objective
	Interventions map[uuid.UUID]*Intervention
	Crises        map[uuid.UUID]*Crisis
	Meetings      map[uuid.UUID]bool
	Decisions     map[uuid.UUID]bool

	// NotInformed holds, per member, the sequence of a FamilyNotInformed
	// decision about it that no FamilyInformed followed.
	NotInformed map[InstitutionID]uint64

	// EventIDs maps every recorded event id to its sequence: the idempotency
	// check of the command path.
	EventIDs map[uuid.UUID]uint64
}

// Member is an institution that joined the case.
type Member struct {
	Institution InstitutionID
	Kind        InstitutionKind
	Name        string
	Referent    Referent
	JoinedSeq   uint64
	JoinedAt    time.Time // business date of the joining (occurred-at)
	LeftSeq     uint64    // 0 while a member
	LeftAt      time.Time // business date of the leaving (occurred-at)
}

// Active reports whether the institution is currently a member.
func (m *Member) Active() bool { return m.LeftSeq == 0 }

// FamilyMember is a recorded legal representative or parent.
type FamilyMember struct {
	ID                PersonID
	Name              string
	Relationship      string
	ParentalAuthority bool
	RecordedSeq       uint64
}

// Consent is a consent as given, and its withdrawal if any.
type Consent struct {
	ID           uuid.UUID
	GivenBy      PersonID
	Institutions []InstitutionID
	Kinds        []InstitutionKind
	Categories   []Category
	From, Until  time.Time
	GivenSeq     uint64
	WithdrawnSeq uint64    // 0 unless withdrawn
	WithdrawnAt  time.Time // recorded-at of the withdrawal
}

// ActiveAt reports whether the consent is in force at t: between From and
// Until, and not withdrawn by then.
func (c *Consent) ActiveAt(t time.Time) bool {
	return inForce(t, c.From, c.Until, c.WithdrawnSeq, c.WithdrawnAt)
}

// Covers reports whether the consent names the member (by institution or by
// kind) and the category. It does not look at time.
func (c *Consent) Covers(inst InstitutionID, kind InstitutionKind, cat Category) bool {
	return slices.Contains(c.Categories, cat) && (slices.Contains(c.Institutions, inst) || slices.Contains(c.Kinds, kind))
}

// Restriction is an order of the children's judge, and its lifting if any.
type Restriction struct {
	ID             uuid.UUID
	Kind           RestrictionKind
	OrderReference string
	Court          string
	FamilyMembers  []PersonID
	Institutions   []InstitutionID
	ThirdParty     string
	From, Until    time.Time
	ImposedSeq     uint64
	LiftedSeq      uint64    // 0 unless lifted
	LiftedAt       time.Time // recorded-at of the lifting
}

// ActiveAt reports whether the order is in force at t: between From and
// Until, and not lifted by then.
func (r *Restriction) ActiveAt(t time.Time) bool {
	return inForce(t, r.From, r.Until, r.LiftedSeq, r.LiftedAt)
}

// NamesFamilyMember reports whether the order binds this family member.
func (r *Restriction) NamesFamilyMember(p PersonID) bool { return slices.Contains(r.FamilyMembers, p) }

// NamesInstitution reports whether the order binds this institution.
func (r *Restriction) NamesInstitution(i InstitutionID) bool {
	return slices.Contains(r.Institutions, i)
}

func inForce(t, from, until time.Time, endedSeq uint64, endedAt time.Time) bool {
	if t.Before(from) || !t.Before(until) {
		return false
	}
	return endedSeq == 0 || t.Before(endedAt)
}

// Need is a need of the child in the plan.
type Need struct {
	ID          uuid.UUID
	Domain      string
	Description string
	Category    Category
}

// Objective is an objective of the plan and its latest status.
type Objective struct {
	ID       uuid.UUID
	Title    string
	Status   ObjectiveStatus
	Category Category
}

// Intervention is who does what, how and when.
type Intervention struct {
	ID          uuid.UUID
	Institution InstitutionID
	Modalities  string
	Timing      string
	Contacts    []ContactArrangement
	Ended       bool
	Category    Category
}

// Crisis is a declared crisis.
type Crisis struct {
	ID       uuid.UUID
	Resolved bool
}

// NewState returns the state of a case with no events.
func NewState(id CaseID) *State {
	return &State{
		ID:            id,
		Head:          Genesis(id),
		Members:       map[InstitutionID]*Member{},
		Family:        map[PersonID]*FamilyMember{},
		Consents:      map[uuid.UUID]*Consent{},
		Restrictions:  map[uuid.UUID]*Restriction{},
		Needs:         map[uuid.UUID]*Need{},
		Objectives:    map[uuid.UUID]*Objective{},
		Interventions: map[uuid.UUID]*Intervention{},
		Crises:        map[uuid.UUID]*Crisis{},
		Meetings:      map[uuid.UUID]bool{},
		Decisions:     map[uuid.UUID]bool{},
		NotInformed:   map[InstitutionID]uint64{},
		EventIDs:      map[uuid.UUID]uint64{},
	}
}

// Fold returns the state of a case after its events, in order.
func Fold(id CaseID, events []Event) *State {
	s := NewState(id)
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

// IsMember reports whether inst is currently a member.
func (s *State) IsMember(inst InstitutionID) bool {
	m, ok := s.Members[inst]
	return ok && m.Active()
}

// Apply evolves the state with one recorded event (evolve). Events this code
// does not understand still advance the version and the chain head.
func (s *State) Apply(e Event) {
	s.Version, s.Head = e.Sequence, e.ChainHash
	s.EventIDs[e.ID] = e.Sequence
	if stateIgnores[e.Type] {
		return // nothing of the payload is kept: spare its decoding
	}
	s.applyPayload(e)
}

// stateIgnores are the event types applyPayload does nothing with: the
// observations (most of a case's events), placement changes and plan
// articulations are read by the read models, not by the state.
var stateIgnores = map[EventType]bool{ObservationRecorded: true, PlacementChanged: true, PlansArticulated: true}

// applyPayload applies what the state keeps of e's payload.
func (s *State) applyPayload(e Event) {
	p, err := e.Decode()
	if err != nil {
		return
	}
	switch p := p.(type) {
	case *CaseOpenedPayload:
		s.Opened, s.OpenedAt = true, e.OccurredAt
		s.ChildReference, s.LegalFrame, s.Departement = p.ChildReference, p.LegalFrame, p.Departement
		s.Coordinator = p.Coordinator
		s.Members[p.Coordinator] = &Member{Institution: p.Coordinator, Kind: p.CoordinatorKind, Name: p.CoordinatorName,
			Referent: p.Referent, JoinedSeq: e.Sequence, JoinedAt: e.OccurredAt}
	case *PartnerJoinedPayload:
		s.Members[p.Institution] = &Member{Institution: p.Institution, Kind: p.Kind, Name: p.Name,
			Referent: p.Referent, JoinedSeq: e.Sequence, JoinedAt: e.OccurredAt}
	case *PartnerLeftPayload:
		if m, ok := s.Members[p.Institution]; ok {
			m.LeftSeq, m.LeftAt = e.Sequence, e.OccurredAt
		}
	case *ReferentChangedPayload:
		if m, ok := s.Members[p.Institution]; ok {
			m.Referent = p.Referent
		}
	case *CoordinationHandedOverPayload:
		s.Coordinator = p.To
	case *FamilyMemberRecordedPayload:
		s.Family[p.FamilyMember] = &FamilyMember{ID: p.FamilyMember, Name: p.Name, Relationship: p.Relationship,
			ParentalAuthority: p.ParentalAuthority, RecordedSeq: e.Sequence}
	case *NeedIdentifiedPayload:
		s.Needs[p.Need] = &Need{ID: p.Need, Domain: p.Domain, Description: p.Description, Category: e.Category}
	case *ObjectiveSetPayload:
		s.Objectives[p.Objective] = &Objective{ID: p.Objective, Title: p.Title, Status: ObjectiveInProgress, Category: e.Category}
	case *ObjectiveReviewedPayload:
		if o, ok := s.Objectives[p.Objective]; ok {
			o.Status = p.Status
		}
	case *InterventionAgreedPayload:
		s.Interventions[p.Intervention] = &Intervention{ID: p.Intervention, Institution: p.Institution,
			Modalities: p.Modalities, Timing: p.Timing, Contacts: p.Contacts, Category: e.Category}
	case *InterventionChangedPayload:
		if i, ok := s.Interventions[p.Intervention]; ok {
			i.Modalities, i.Timing, i.Contacts = p.Modalities, p.Timing, p.Contacts
		}
	case *InterventionEndedPayload:
		if i, ok := s.Interventions[p.Intervention]; ok {
			i.Ended = true
		}
	case *SynthesisMeetingHeldPayload:
		s.Meetings[p.Meeting] = true
	case *DecisionRecordedPayload:
		s.Decisions[p.Decision] = true
	case *CrisisDeclaredPayload:
		s.Crises[p.Crisis] = &Crisis{ID: p.Crisis}
	case *CrisisResolvedPayload:
		if c, ok := s.Crises[p.Crisis]; ok {
			c.Resolved = true
		}
	case *ConsentGivenPayload:
		s.Consents[p.Consent] = &Consent{ID: p.Consent, GivenBy: p.GivenBy, Institutions: p.Institutions, Kinds: p.Kinds,
			Categories: p.Categories, From: p.From, Until: p.Until, GivenSeq: e.Sequence}
	case *ConsentWithdrawnPayload:
		if c, ok := s.Consents[p.Consent]; ok && c.WithdrawnSeq == 0 {
			c.WithdrawnSeq, c.WithdrawnAt = e.Sequence, e.RecordedAt
		}
	case *JudicialRestrictionImposedPayload:
		s.Restrictions[p.Restriction] = &Restriction{ID: p.Restriction, Kind: p.Kind, OrderReference: p.OrderReference,
			Court: p.Court, FamilyMembers: p.FamilyMembers, Institutions: p.Institutions, ThirdParty: p.ThirdParty,
			From: p.From, Until: p.Until, ImposedSeq: e.Sequence}
	case *JudicialRestrictionLiftedPayload:
		if r, ok := s.Restrictions[p.Restriction]; ok && r.LiftedSeq == 0 {
			r.LiftedSeq, r.LiftedAt = e.Sequence, e.RecordedAt
		}
	case *FamilyInformedPayload:
		delete(s.NotInformed, p.Institution)
	case *FamilyNotInformedPayload:
		s.NotInformed[p.Institution] = e.Sequence
	case *CaseClosedPayload:
		s.Closed = true
	}
}
