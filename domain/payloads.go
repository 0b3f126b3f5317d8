package domain

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// ErrUnknownEvent: the event's type or schema version is not one this code
// understands. Such events are kept and shown as they are.
var ErrUnknownEvent = errors.New("unknown event type or schema version")

// Payload is the typed content of an event of the catalogue.
type Payload interface {
	// EventType is the type of event this payload belongs to.
	EventType() EventType
	// Validate checks the payload on its own (required fields, known values,
	// dates in order); it returns an *Error (Code EInvalid) naming the first
	// bad field, relative to the payload ("until", "referent.name").
	// Rules that depend on the case are the decider's.
	Validate() error
}

// payloadFactories maps each catalogue type to a constructor of its payload.
var payloadFactories = map[EventType]func() Payload{
	CaseOpened:                 func() Payload { return &CaseOpenedPayload{} },
	PartnerJoined:              func() Payload { return &PartnerJoinedPayload{} },
	PartnerLeft:                func() Payload { return &PartnerLeftPayload{} },
	ReferentChanged:            func() Payload { return &ReferentChangedPayload{} },
	CoordinationHandedOver:     func() Payload { return &CoordinationHandedOverPayload{} },
	FamilyMemberRecorded:       func() Payload { return &FamilyMemberRecordedPayload{} },
	NeedIdentified:             func() Payload { return &NeedIdentifiedPayload{} },
	ObjectiveSet:               func() Payload { return &ObjectiveSetPayload{} },
	ObjectiveReviewed:          func() Payload { return &ObjectiveReviewedPayload{} },
	InterventionAgreed:         func() Payload { return &InterventionAgreedPayload{} },
	InterventionChanged:        func() Payload { return &InterventionChangedPayload{} },
	InterventionEnded:          func() Payload { return &InterventionEndedPayload{} },
	PlansArticulated:           func() Payload { return &PlansArticulatedPayload{} },
	SynthesisMeetingHeld:       func() Payload { return &SynthesisMeetingHeldPayload{} },
	DecisionRecorded:           func() Payload { return &DecisionRecordedPayload{} },
	CrisisDeclared:             func() Payload { return &CrisisDeclaredPayload{} },
	CrisisResolved:             func() Payload { return &CrisisResolvedPayload{} },
	PlacementChanged:           func() Payload { return &PlacementChangedPayload{} },
	ObservationRecorded:        func() Payload { return &ObservationRecordedPayload{} },
	ConsentGiven:               func() Payload { return &ConsentGivenPayload{} },
	ConsentWithdrawn:           func() Payload { return &ConsentWithdrawnPayload{} },
	JudicialRestrictionImposed: func() Payload { return &JudicialRestrictionImposedPayload{} },
	JudicialRestrictionLifted:  func() Payload { return &JudicialRestrictionLiftedPayload{} },
	FamilyInformed:             func() Payload { return &FamilyInformedPayload{} },
	FamilyNotInformed:          func() Payload { return &FamilyNotInformedPayload{} },
	CaseClosed:                 func() Payload { return &CaseClosedPayload{} },
}

// ObservationRecorded extends the minimum catalogue (docs/domain.md, "What is recorded: the event catalogue"): an observation
// of daily life (clinique du quotidien) or, with the health category, of the
// care path. Without it nothing in the catalogue carries daily observations.
const ObservationRecorded EventType = "ObservationRecorded"

// EventTypes lists the catalogue in a stable order.
func EventTypes() []EventType {
	return []EventType{CaseOpened, PartnerJoined, PartnerLeft, ReferentChanged, CoordinationHandedOver,
		FamilyMemberRecorded, NeedIdentified, ObjectiveSet, ObjectiveReviewed, InterventionAgreed,
		InterventionChanged, InterventionEnded, PlansArticulated, SynthesisMeetingHeld, DecisionRecorded,
		CrisisDeclared, CrisisResolved, PlacementChanged, ObservationRecorded, ConsentGiven, ConsentWithdrawn,
		JudicialRestrictionImposed, JudicialRestrictionLifted, FamilyInformed, FamilyNotInformed, CaseClosed}
}

// NewPayload returns an empty payload for a catalogue type, to decode into.
func NewPayload(t EventType) (Payload, bool) {
	f, ok := payloadFactories[t]
	if !ok {
		return nil, false
	}
	return f(), true
}

// LegalFrame is the frame of the protection measure.
type LegalFrame string

// Legal frames.
const (
	FrameAdministrative LegalFrame = "administrative"
	FrameJudicial       LegalFrame = "judicial"
)

// RestrictionKind is the kind of an order of the children's judge.
type RestrictionKind string

// Restriction kinds (docs/domain.md, "Kinds of judicial order").
const (
	PlacementAddressSecret   RestrictionKind = "placement_address_secret"
	ContactSuspended         RestrictionKind = "contact_suspended"
	VisitsSupervised         RestrictionKind = "visits_supervised"
	FamilyInformationLimited RestrictionKind = "family_information_limited"
	PartnerExcluded          RestrictionKind = "partner_excluded"
)

// RestrictionKinds lists every kind in a stable order.
var RestrictionKinds = []RestrictionKind{PlacementAddressSecret, ContactSuspended, VisitsSupervised, FamilyInformationLimited, PartnerExcluded}

// Referent is the named professional an institution designates for a case.
type Referent struct {
	Name     string `json:"name"`
	Function string `json:"function,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Email    string `json:"email,omitempty"`
}

// CaseOpenedPayload: the coordinator opens a case. The coordinator is the
// case's first member.
type CaseOpenedPayload struct {
	ChildReference  string          `json:"childReference"` // pseudonymous, chosen by the coordinator
	LegalFrame      LegalFrame      `json:"legalFrame"`
	Departement     string          `json:"departement"` // "35", "2A", "974"
	Coordinator     InstitutionID   `json:"coordinator"`
	CoordinatorKind InstitutionKind `json:"coordinatorKind"`
	CoordinatorName string          `json:"coordinatorName"`
	Referent        Referent        `json:"referent"`
	ChildBirthMonth string          `json:"childBirthMonth,omitempty"` // "2019-04": enough for deadlines, never the full date
}

// PartnerJoinedPayload: an institution joins the case.
type PartnerJoinedPayload struct {
	Institution InstitutionID   `json:"institution"`
	Kind        InstitutionKind `json:"kind"`
	Name        string          `json:"name"`
	Referent    Referent        `json:"referent"`
	Reason      string          `json:"reason"`
}

// PartnerLeftPayload: a member leaves the case.
type PartnerLeftPayload struct {
	Institution InstitutionID `json:"institution"`
	Reason      string        `json:"reason"`
}

// ReferentChangedPayload: a member names a new referent.
type ReferentChangedPayload struct {
	Institution InstitutionID `json:"institution"`
	Referent    Referent      `json:"referent"`
	Reason      string        `json:"reason,omitempty"`
}

// CoordinationHandedOverPayload: the coordinator role moves to another member.
type CoordinationHandedOverPayload struct {
	From   InstitutionID `json:"from"`
	To     InstitutionID `json:"to"`
	Reason string        `json:"reason"`
}

// FamilyMemberRecordedPayload: a legal representative or parent.
type FamilyMemberRecordedPayload struct {
	FamilyMember      PersonID `json:"familyMember"`
	Name              string   `json:"name"`
	Relationship      string   `json:"relationship"` // "mère", "père", "tuteur", ...
	ParentalAuthority bool     `json:"parentalAuthority"`
	Address           string   `json:"address,omitempty"`
}

// NeedIdentifiedPayload: a need of the child, jointly identified.
type NeedIdentifiedPayload struct {
	Need        uuid.UUID `json:"need"`
	Domain      string    `json:"domain"` // safety, health, schooling, relationships, ...
	Description string    `json:"description"`
}

// ObjectiveSetPayload: an objective of the shared plan.
type ObjectiveSetPayload struct {
	Objective   uuid.UUID   `json:"objective"`
	Needs       []uuid.UUID `json:"needs,omitempty"`
	Title       string      `json:"title"`
	Description string      `json:"description,omitempty"`
	DueDate     *time.Time  `json:"dueDate,omitempty"`
}

// ObjectiveStatus is where an objective stands.
type ObjectiveStatus string

// Objective statuses.
const (
	ObjectiveInProgress        ObjectiveStatus = "in_progress"
	ObjectiveAchieved          ObjectiveStatus = "achieved"
	ObjectivePartiallyAchieved ObjectiveStatus = "partially_achieved"
	ObjectiveNotAchieved       ObjectiveStatus = "not_achieved"
	ObjectiveAbandoned         ObjectiveStatus = "abandoned"
)

// ObjectiveReviewedPayload: an objective's status is reviewed.
type ObjectiveReviewedPayload struct {
	Objective uuid.UUID       `json:"objective"`
	Status    ObjectiveStatus `json:"status"`
	Comment   string          `json:"comment,omitempty"`
}

// ContactArrangement is a contact between the child and a family member that
// an intervention or a decision schedules.
type ContactArrangement struct {
	FamilyMember PersonID `json:"familyMember"`
	Supervised   bool     `json:"supervised"`
	ThirdParty   string   `json:"thirdParty,omitempty"` // who supervises
}

// InterventionAgreedPayload: who does what, how and when.
type InterventionAgreedPayload struct {
	Intervention uuid.UUID            `json:"intervention"`
	Institution  InstitutionID        `json:"institution"`
	Objectives   []uuid.UUID          `json:"objectives,omitempty"`
	Description  string               `json:"description"`
	Modalities   string               `json:"modalities"` // how
	Timing       string               `json:"timing"`     // when, how often
	Start        time.Time            `json:"start"`
	End          *time.Time           `json:"end,omitempty"`
	Contacts     []ContactArrangement `json:"contacts,omitempty"`
}

// InterventionChangedPayload: an intervention's modalities or timing change.
type InterventionChangedPayload struct {
	Intervention uuid.UUID            `json:"intervention"`
	Modalities   string               `json:"modalities"`
	Timing       string               `json:"timing"`
	End          *time.Time           `json:"end,omitempty"`
	Contacts     []ContactArrangement `json:"contacts,omitempty"`
	Reason       string               `json:"reason"`
}

// InterventionEndedPayload: an intervention ends.
type InterventionEndedPayload struct {
	Intervention uuid.UUID `json:"intervention"`
	Reason       string    `json:"reason"`
}

// PlanLink links the shared plan to an institution's own plan.
type PlanLink struct {
	Kind        string        `json:"kind"` // "PPE", "PPA", "PPS", "other"
	Reference   string        `json:"reference"`
	Version     string        `json:"version"`
	Institution InstitutionID `json:"institution"`
}

// PlansArticulatedPayload: the shared plan is linked to the institution
// plans it must stay coherent with.
type PlansArticulatedPayload struct {
	Plans []PlanLink `json:"plans"`
}

// SynthesisMeetingHeldPayload: a multi-agency meeting took place.
type SynthesisMeetingHeldPayload struct {
	Meeting       uuid.UUID       `json:"meeting"`
	Participants  []InstitutionID `json:"participants"`
	FamilyPresent []PersonID      `json:"familyPresent,omitempty"`
	ChildHeard    bool            `json:"childHeard"`
	Decisions     []string        `json:"decisions,omitempty"`
	NextReview    *time.Time      `json:"nextReview,omitempty"`
	Location      string          `json:"location,omitempty"`
}

// Dissent is an institution's disagreement with a decision, and why.
type Dissent struct {
	Institution InstitutionID `json:"institution"`
	Reason      string        `json:"reason"`
}

// DecisionRecordedPayload: a cooperation decision.
type DecisionRecordedPayload struct {
	Decision   uuid.UUID            `json:"decision"`
	Kind       string               `json:"kind"`
	Summary    string               `json:"summary"`
	Agreeing   []InstitutionID      `json:"agreeing"`
	Dissenting []Dissent            `json:"dissenting,omitempty"`
	Categories []Category           `json:"categories"`
	Contacts   []ContactArrangement `json:"contacts,omitempty"`
}

// OnCall is who to reach during a crisis, and how.
type OnCall struct {
	Institution InstitutionID `json:"institution"`
	Contact     string        `json:"contact"`
	Hours       string        `json:"hours,omitempty"`
}

// CrisisDeclaredPayload: shared handling of a crisis starts.
type CrisisDeclaredPayload struct {
	Crisis      uuid.UUID `json:"crisis"`
	Description string    `json:"description"`
	OnCall      []OnCall  `json:"onCall"`
	Protocol    string    `json:"protocol"`
}

// CrisisResolvedPayload: a crisis is over.
type CrisisResolvedPayload struct {
	Crisis  uuid.UUID `json:"crisis"`
	Outcome string    `json:"outcome"`
}

// PlacementChangedPayload: the child's place of life changes. PlaceOfLife,
// Address and HostInstitution are location fields.
type PlacementChangedPayload struct {
	Planned         bool          `json:"planned"` // false: a rupture
	Reason          string        `json:"reason"`
	PlaceOfLife     string        `json:"placeOfLife"`
	Address         string        `json:"address,omitempty"`
	HostInstitution InstitutionID `json:"hostInstitution,omitempty"`
	UncertainDate
}

// ObservationRecordedPayload: an observation shared between members.
type ObservationRecordedPayload struct {
	Summary     string `json:"summary"`
	Impact      string `json:"impact,omitempty"` // "positive", "negative" or empty
	ActionTaken string `json:"actionTaken,omitempty"`
	UncertainDate
}

// DateCertainty says how precisely an event's occurred-at is known, for what
// is recorded after the fact, from memory or old files ("en mars 2024",
// "vers 2019"). Empty: known to the day.
type DateCertainty string

// Date certainties.
const (
	DateMonth       DateCertainty = "month"       // the month is known, not the day
	DateYear        DateCertainty = "year"        // only the year is known
	DateApproximate DateCertainty = "approximate" // around the date given
)

// UncertainDate is part of the payloads of events that may be recorded after
// the fact (observations, placement changes): how precisely occurredAt is
// known, and, for an event known to have happened within a span, or lasting
// one, the span's end (occurredAt being its start).
type UncertainDate struct {
	DateCertainty DateCertainty `json:"dateCertainty,omitempty"`
	OccurredUntil *time.Time    `json:"occurredUntil,omitempty"`
}

// Uncertainty returns the date's uncertainty (promoted to the payloads that
// carry one).
func (u UncertainDate) Uncertainty() UncertainDate { return u }

// ConsentGivenPayload: a holder of parental authority allows sharing of some
// categories with some members (by institution or by kind), from..until.
type ConsentGivenPayload struct {
	Consent      uuid.UUID         `json:"consent"`
	GivenBy      PersonID          `json:"givenBy"`
	Institutions []InstitutionID   `json:"institutions,omitempty"`
	Kinds        []InstitutionKind `json:"kinds,omitempty"`
	Categories   []Category        `json:"categories"`
	From         time.Time         `json:"from"`
	Until        time.Time         `json:"until"`
}

// ConsentWithdrawnPayload: a consent ends before its term.
type ConsentWithdrawnPayload struct {
	Consent     uuid.UUID `json:"consent"`
	WithdrawnBy PersonID  `json:"withdrawnBy"`
	Reason      string    `json:"reason,omitempty"`
}

// JudicialRestrictionImposedPayload: an order of the juge des enfants.
type JudicialRestrictionImposedPayload struct {
	Restriction    uuid.UUID       `json:"restriction"`
	Kind           RestrictionKind `json:"kind"`
	OrderReference string          `json:"orderReference"`
	Court          string          `json:"court"`
	FamilyMembers  []PersonID      `json:"familyMembers,omitempty"` // whom it binds
	Institutions   []InstitutionID `json:"institutions,omitempty"`  // whom it binds (partner_excluded)
	ThirdParty     string          `json:"thirdParty,omitempty"`    // visits_supervised: the designated third party
	From           time.Time       `json:"from"`
	Until          time.Time       `json:"until"`
}

// JudicialRestrictionLiftedPayload: an order ends before its term.
type JudicialRestrictionLiftedPayload struct {
	Restriction    uuid.UUID `json:"restriction"`
	OrderReference string    `json:"orderReference"`
	Reason         string    `json:"reason,omitempty"`
}

// FamilyInformedPayload: the family was told that information is shared
// with a new member.
type FamilyInformedPayload struct {
	Institution   InstitutionID `json:"institution"`
	FamilyMembers []PersonID    `json:"familyMembers"`
	How           string        `json:"how"`
}

// FamilyNotInformedPayload: a reasoned, reviewable decision not to tell the
// family, because telling them is contrary to the child's interest.
type FamilyNotInformedPayload struct {
	Institution InstitutionID `json:"institution"`
	Reason      string        `json:"reason"`
	ReviewOn    time.Time     `json:"reviewOn"`
}

// CaseClosedPayload: the measure ends.
type CaseClosedPayload struct {
	Reason  string `json:"reason"` // "end_of_measure", "majority", "transfer"
	Comment string `json:"comment,omitempty"`
}

func (*CaseOpenedPayload) EventType() EventType                 { return CaseOpened }
func (*PartnerJoinedPayload) EventType() EventType              { return PartnerJoined }
func (*PartnerLeftPayload) EventType() EventType                { return PartnerLeft }
func (*ReferentChangedPayload) EventType() EventType            { return ReferentChanged }
func (*CoordinationHandedOverPayload) EventType() EventType     { return CoordinationHandedOver }
func (*FamilyMemberRecordedPayload) EventType() EventType       { return FamilyMemberRecorded }
func (*NeedIdentifiedPayload) EventType() EventType             { return NeedIdentified }
func (*ObjectiveSetPayload) EventType() EventType               { return ObjectiveSet }
func (*ObjectiveReviewedPayload) EventType() EventType          { return ObjectiveReviewed }
func (*InterventionAgreedPayload) EventType() EventType         { return InterventionAgreed }
func (*InterventionChangedPayload) EventType() EventType        { return InterventionChanged }
func (*InterventionEndedPayload) EventType() EventType          { return InterventionEnded }
func (*PlansArticulatedPayload) EventType() EventType           { return PlansArticulated }
func (*SynthesisMeetingHeldPayload) EventType() EventType       { return SynthesisMeetingHeld }
func (*DecisionRecordedPayload) EventType() EventType           { return DecisionRecorded }
func (*CrisisDeclaredPayload) EventType() EventType             { return CrisisDeclared }
func (*CrisisResolvedPayload) EventType() EventType             { return CrisisResolved }
func (*PlacementChangedPayload) EventType() EventType           { return PlacementChanged }
func (*ObservationRecordedPayload) EventType() EventType        { return ObservationRecorded }
func (*ConsentGivenPayload) EventType() EventType               { return ConsentGiven }
func (*ConsentWithdrawnPayload) EventType() EventType           { return ConsentWithdrawn }
func (*JudicialRestrictionImposedPayload) EventType() EventType { return JudicialRestrictionImposed }
func (*JudicialRestrictionLiftedPayload) EventType() EventType  { return JudicialRestrictionLifted }
func (*FamilyInformedPayload) EventType() EventType             { return FamilyInformed }
func (*FamilyNotInformedPayload) EventType() EventType          { return FamilyNotInformed }
func (*CaseClosedPayload) EventType() EventType                 { return CaseClosed }
