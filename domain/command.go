package domain

import (
	"time"

	"github.com/google/uuid"
)

// Role is what an authenticated principal is, system-wide. Whether an
// institution coordinates a case is read from the case, not from the role.
type Role string

// Roles.
const (
	RoleProfessional Role = "professional" // a professional of a partner institution
	RoleFamily       Role = "family"       // a recorded family member
	RoleAuditor      Role = "auditor"      // inspection or data protection: reads everything, every read logged
	RoleAdmin        Role = "admin"        // runs the directory and credentials; no access to cases
)

// Command asks to record one event of the catalogue on a case. Commands are
// named after the event they ask for (a command "PartnerJoined" asks that a
// partner join).
type Command struct {
	Type     EventType
	Category Category // "" for the type's default (AllowedCategories(Type)[0])
	Actor    Actor
	Role     Role
	// OccurredAt is the business date (the meeting's, the order's); zero
	// means "now".
	OccurredAt    time.Time
	Payload       Payload
	CorrelationID uuid.UUID
	CausationID   uuid.UUID
}

// Seal completes decided events so they can be appended: it gives them the
// ids (one per event, from the caller: derived from an idempotency key so a
// retried request records nothing twice), their sequences after the state's
// version, the recorded-at time, a random salt each, and the leaf and chain
// hashes continuing the state's chain head.
func Seal(s *State, events []Event, ids []uuid.UUID, salts [][]byte, recordedAt time.Time) []Event {
	out := make([]Event, len(events))
	head := s.Head
	for i, e := range events {
		e.ID = ids[i]
		e.CaseID = s.ID
		e.Sequence = s.Version + uint64(i) + 1
		e.RecordedAt = recordedAt
		if e.OccurredAt.IsZero() {
			e.OccurredAt = recordedAt
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = CurrentSchemaVersion
		}
		e.Salt = salts[i]
		e.LeafHash = Leaf(e)
		e.ChainHash = Chain(head, e.LeafHash)
		head = e.ChainHash
		out[i] = e
	}
	return out
}
