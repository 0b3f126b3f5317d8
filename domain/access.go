package domain

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// AccessKind is what was read or delivered.
type AccessKind string

// Access kinds.
const (
	AccessTimeline   AccessKind = "timeline"
	AccessSummary    AccessKind = "summary"
	AccessPlan       AccessKind = "plan"
	AccessChronology AccessKind = "chronology"
	AccessExport     AccessKind = "export"
	AccessFeed       AccessKind = "feed" // a delivery on a partner feed
	AccessVisibility AccessKind = "visibility"
	AccessDeadlines  AccessKind = "deadlines"
	AccessHead       AccessKind = "head"        // the signed chain head
	AccessList       AccessKind = "access_list" // who read the case
	AccessReplay     AccessKind = "replay"      // the case as it stood on a past date (audit replay)
	// AccessRefusal is a command refused for a reason withheld from its
	// author (TellRefusal): Rule names the reason, for auditors only.
	AccessRefusal AccessKind = "refusal"
)

// AccessRecord is one read of a case or one feed delivery: who, when, which
// sequences, and why. It never holds event contents.
type AccessRecord struct {
	At           time.Time     `json:"at"`
	Kind         AccessKind    `json:"kind"`
	CaseID       CaseID        `json:"caseId"`
	FromSequence uint64        `json:"fromSequence"` // first sequence read or delivered
	ToSequence   uint64        `json:"toSequence"`   // last one
	Principal    uuid.UUID     `json:"principal,omitzero"`
	Role         Role          `json:"role"`
	Institution  InstitutionID `json:"institution,omitempty"`
	FamilyMember PersonID      `json:"familyMember,omitzero"`
	Purpose      string        `json:"purpose,omitempty"` // given by the caller (X-Access-Purpose)
	// Rule is, for a refusal, the rule withheld from its author.
	Rule string `json:"rule,omitempty"`
}

// AccessLog records accesses in an append-only log kept apart from the case
// events. Record returns an error when the access could not be recorded; a
// read whose access cannot be recorded must not be served.
type AccessLog interface {
	Record(ctx context.Context, r AccessRecord) error
}
