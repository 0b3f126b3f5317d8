package personal

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Errors of a Keys implementation.
var (
	// ErrErased: the case's key was destroyed; its personal data reads as
	// Erased and nothing more can be recorded on the case.
	ErrErased = errors.New("case personal data erased")
	// ErrNoKey: the case has no key yet (nothing personal was recorded).
	ErrNoKey = errors.New("case has no key")
)

// Erasure is the record of a case's erasure, kept where its key was.
type Erasure struct {
	CaseID    domain.CaseID `json:"caseId"`
	At        time.Time     `json:"at"`
	Principal uuid.UUID     `json:"principal,omitzero"` // who erased it (directory principal)
	Name      string        `json:"name,omitempty"`     // their name, as the directory had it
	Role      domain.Role   `json:"role"`
	Reason    string        `json:"reason"`
}

// Keys holds the per-case keys outside the event log. Implementations:
// adapters/jetstream/casekeys (a NATS KV bucket).
type Keys interface {
	// Key returns the case's key (KeySize bytes). With create, a case
	// without a key gets one; concurrent creators get the same key.
	// Outcomes: the key; ErrNoKey (no key and not create); ErrErased (the
	// key was destroyed: the error wraps it, and Erasure tells by whom);
	// another error when the key store failed.
	Key(ctx context.Context, id domain.CaseID, create bool) ([]byte, error)

	// Erase destroys the case's key for good and keeps the erasure record in
	// its place; a case without a key gets the record too, so nothing can
	// be recorded on it afterwards. It returns the record in force: rec, or
	// the earlier record when the case was already erased (nothing changes
	// then).
	Erase(ctx context.Context, id domain.CaseID, rec Erasure) (Erasure, error)

	// Erasure returns the case's erasure record, and false when the case
	// is not erased.
	Erasure(ctx context.Context, id domain.CaseID) (Erasure, bool, error)
}
