package domain

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// CaseID identifies a case (dossier de coopération). It never carries the
// child's identity.
type CaseID = uuid.UUID

// InstitutionID identifies a partner institution, e.g. "ase-35" or
// "mecs-les-tilleuls". It is chosen when the institution is registered in the
// directory and is stable.
type InstitutionID string

// PersonID identifies a family member (legal representative or parent). It is
// also the identity a family member authenticates as.
type PersonID = uuid.UUID

// EventType names what happened, in the past tense.
type EventType string

// The event catalogue (docs/domain.md, "What is recorded: the event catalogue").
const (
	CaseOpened                 EventType = "CaseOpened"
	PartnerJoined              EventType = "PartnerJoined"
	PartnerLeft                EventType = "PartnerLeft"
	ReferentChanged            EventType = "ReferentChanged"
	CoordinationHandedOver     EventType = "CoordinationHandedOver"
	FamilyMemberRecorded       EventType = "FamilyMemberRecorded"
	NeedIdentified             EventType = "NeedIdentified"
	ObjectiveSet               EventType = "ObjectiveSet"
	ObjectiveReviewed          EventType = "ObjectiveReviewed"
	InterventionAgreed         EventType = "InterventionAgreed"
	InterventionChanged        EventType = "InterventionChanged"
	InterventionEnded          EventType = "InterventionEnded"
	PlansArticulated           EventType = "PlansArticulated"
	SynthesisMeetingHeld       EventType = "SynthesisMeetingHeld"
	DecisionRecorded           EventType = "DecisionRecorded"
	CrisisDeclared             EventType = "CrisisDeclared"
	CrisisResolved             EventType = "CrisisResolved"
	PlacementChanged           EventType = "PlacementChanged"
	ConsentGiven               EventType = "ConsentGiven"
	ConsentWithdrawn           EventType = "ConsentWithdrawn"
	JudicialRestrictionImposed EventType = "JudicialRestrictionImposed"
	JudicialRestrictionLifted  EventType = "JudicialRestrictionLifted"
	FamilyInformed             EventType = "FamilyInformed"
	FamilyNotInformed          EventType = "FamilyNotInformed"
	CaseClosed                 EventType = "CaseClosed"
)

// Category is the information category of an event; visibility is decided
// per category and per viewer.
type Category string

// Information categories (docs/domain.md, "Information categories").
const (
	CategoryCoordination Category = "coordination"
	CategoryPlan         Category = "plan"
	CategoryDailyLife    Category = "daily_life"
	CategoryHealth       Category = "health"
	CategoryJudicial     Category = "judicial"
	CategoryConsent      Category = "consent"
)

// Categories lists every category, in a stable order.
var Categories = []Category{CategoryCoordination, CategoryPlan, CategoryDailyLife, CategoryHealth, CategoryJudicial, CategoryConsent}

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// InstitutionKind is the kind of a partner institution.
type InstitutionKind string

// Institution kinds (docs/domain.md, "Who is involved").
const (
	KindASE    InstitutionKind = "ase"
	KindMECS   InstitutionKind = "mecs"
	KindDITEP  InstitutionKind = "ditep"
	KindAEMO   InstitutionKind = "aemo"
	KindAED    InstitutionKind = "aed"
	KindCMP    InstitutionKind = "cmp"
	KindSchool InstitutionKind = "school"
	KindMDPH   InstitutionKind = "mdph"
	KindPJJ    InstitutionKind = "pjj"
	KindFoster InstitutionKind = "foster"
	KindOther  InstitutionKind = "other"
)

// InstitutionKinds lists every kind, in a stable order.
var InstitutionKinds = []InstitutionKind{KindASE, KindMECS, KindDITEP, KindAEMO, KindAED, KindCMP, KindSchool, KindMDPH, KindPJJ, KindFoster, KindOther}

// Valid reports whether k is a known institution kind.
func (k InstitutionKind) Valid() bool {
	for _, v := range InstitutionKinds {
		if k == v {
			return true
		}
	}
	return false
}

// Care reports whether institutions of this kind hold medical secrecy and
// therefore see health information without consent.
func (k InstitutionKind) Care() bool { return k == KindDITEP || k == KindCMP }

// PlaceOfLife reports whether institutions of this kind can be the child's
// place of life, so that naming them reveals where the child lives.
func (k InstitutionKind) PlaceOfLife() bool { return k == KindMECS || k == KindFoster }

// Actor is who recorded an event: an institution and one of its
// professionals, or a family member acting for themselves.
type Actor struct {
	Institution  InstitutionID `json:"institution,omitempty"`
	Professional string        `json:"professional,omitempty"`
	// FamilyMember is set when a family member acts themselves (giving or
	// withdrawing a consent).
	FamilyMember PersonID `json:"familyMember,omitzero"`
}

// Hash is a SHA-256 digest.
type Hash [32]byte

// Event is one immutable fact in a case's stream: the envelope and its
// payload. The payload is kept as the exact JSON bytes that were hashed, so
// that events of unknown types or newer schema versions are kept and shown
// as they are, never dropped or rewritten.
type Event struct {
	ID            uuid.UUID       `json:"id"`
	CaseID        CaseID          `json:"caseId"`
	Sequence      uint64          `json:"sequence"`
	Type          EventType       `json:"type"`
	SchemaVersion int             `json:"schemaVersion"`
	RecordedAt    time.Time       `json:"recordedAt"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Actor         Actor           `json:"actor"`
	Category      Category        `json:"category"`
	CorrelationID uuid.UUID       `json:"correlationId"`
	CausationID   uuid.UUID       `json:"causationId"`
	Salt          []byte          `json:"salt"`
	Payload       json.RawMessage `json:"payload"`
	// SealedPayload is the payload as stored and hashed when Payload is not:
	// a reader that opens the personal-data fields encrypted in the stored
	// payload (domain/personal) puts them, opened or erased, in Payload and
	// keeps the stored bytes here, so that the leaf hash can still be
	// recomputed. Nil when Payload is the stored payload. Never stored.
	SealedPayload json.RawMessage `json:"sealedPayload,omitempty"`
	LeafHash      Hash            `json:"leafHash"`
	ChainHash     Hash            `json:"chainHash"`
	// Position is the event's place in the store's global order. It is
	// assigned by the store, is not part of the hashed content, and is zero
	// until the event is recorded.
	Position Position `json:"position"`
}

// CurrentSchemaVersion is the schema version this code writes for every
// event type of the catalogue.
const CurrentSchemaVersion = 1

// Known reports whether this code understands the event: a type of the
// catalogue with a schema version it knows. Other events are kept and shown
// as they are.
func (e Event) Known() bool {
	_, ok := payloadFactories[e.Type]
	return ok && e.SchemaVersion >= 1 && e.SchemaVersion <= CurrentSchemaVersion
}

// Decode returns the event's typed payload. It fails with ErrUnknownEvent for
// an event this code does not understand (see Known).
func (e Event) Decode() (Payload, error) {
	if !e.Known() {
		return nil, ErrUnknownEvent
	}
	p := payloadFactories[e.Type]()
	if err := json.Unmarshal(e.Payload, p); err != nil {
		return nil, err
	}
	return p, nil
}
