package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Case builds the events of one test case, chaining their hashes.
type Case struct {
	ID      domain.CaseID
	Version uint64      // sequence of the last committed event, 0 for none
	Head    domain.Hash // its chain hash (the case's genesis at version 0)
}

// NewCase returns a new case with a random id at version 0.
func NewCase() *Case {
	id := uuid.New()
	return &Case{ID: id, Head: domain.Genesis(id)}
}

// Next builds n events following the case's last committed one. It does not
// commit them: several batches can be built at the same version.
func (c *Case) Next(n int) []domain.Event { return NewEvents(c.ID, c.Version, c.Head, n) }

// Commit moves the case to the last of events, once they are recorded.
func (c *Case) Commit(events []domain.Event) {
	last := events[len(events)-1]
	c.Version, c.Head = last.Sequence, last.ChainHash
}

// paris is a fixed zone, so that times with an offset are round-tripped too.
var paris = time.FixedZone("CET", 3600)

// NewEvents returns n valid events of case id with sequences after+1 ...
// after+n: random ids and 16-byte salt, an ObservationRecorded payload
// (compact JSON), an actor, times with nanoseconds (recordedAt in UTC,
// occurredAt at +01:00), and leaf and chain hashes chained from prev, the
// chain hash of event after (domain.Genesis(id) when after is 0; a zero prev
// at after 0 stands for it).
func NewEvents(id domain.CaseID, after uint64, prev domain.Hash, n int) []domain.Event {
	if after == 0 && prev.IsZero() {
		prev = domain.Genesis(id)
	}
	correlation := uuid.New()
	events := make([]domain.Event, n)
	now := time.Now().UTC().Round(0)
	for i := range events {
		seq := after + uint64(i) + 1
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			panic(err)
		}
		payload, err := json.Marshal(domain.ObservationRecordedPayload{
			Summary:     fmt.Sprintf("Observation %d : a bien dormi, « calme » au réveil.", seq),
			Impact:      "positive",
			ActionTaken: fmt.Sprintf("note %d", mrand.IntN(1000)),
		})
		if err != nil {
			panic(err)
		}
		e := domain.Event{
			ID:            uuid.New(),
			CaseID:        id,
			Sequence:      seq,
			Type:          domain.ObservationRecorded,
			SchemaVersion: domain.CurrentSchemaVersion,
			RecordedAt:    now.Add(time.Duration(i)*time.Microsecond + time.Duration(1+mrand.IntN(999))),
			OccurredAt:    time.Date(2025, 3, 14, 9, 30, i, 1+mrand.IntN(999_999_999), paris),
			Actor:         domain.Actor{Institution: "mecs-les-tilleuls", Professional: "educ-" + fmt.Sprint(mrand.IntN(100))},
			Category:      domain.CategoryDailyLife,
			CorrelationID: correlation,
			CausationID:   uuid.New(),
			Salt:          salt,
			Payload:       payload,
		}
		if seq%2 == 0 {
			e.Actor.FamilyMember = uuid.New()
		}
		e.LeafHash = domain.Leaf(e)
		e.ChainHash = domain.Chain(prev, e.LeafHash)
		prev = e.ChainHash
		events[i] = e
	}
	return events
}

// DiffEvent describes the first difference between two events, ignoring
// their positions, or returns "" when they are equal. Times are compared with
// time.Time.Equal, salt and payload byte for byte.
func DiffEvent(want, got domain.Event) string {
	type field struct {
		name      string
		equal     bool
		want, got any
	}
	fields := []field{
		{"ID", want.ID == got.ID, want.ID, got.ID},
		{"CaseID", want.CaseID == got.CaseID, want.CaseID, got.CaseID},
		{"Sequence", want.Sequence == got.Sequence, want.Sequence, got.Sequence},
		{"Type", want.Type == got.Type, want.Type, got.Type},
		{"SchemaVersion", want.SchemaVersion == got.SchemaVersion, want.SchemaVersion, got.SchemaVersion},
		{"RecordedAt", want.RecordedAt.Equal(got.RecordedAt), want.RecordedAt.Format(time.RFC3339Nano), got.RecordedAt.Format(time.RFC3339Nano)},
		{"OccurredAt", want.OccurredAt.Equal(got.OccurredAt), want.OccurredAt.Format(time.RFC3339Nano), got.OccurredAt.Format(time.RFC3339Nano)},
		{"Actor", want.Actor == got.Actor, want.Actor, got.Actor},
		{"Category", want.Category == got.Category, want.Category, got.Category},
		{"CorrelationID", want.CorrelationID == got.CorrelationID, want.CorrelationID, got.CorrelationID},
		{"CausationID", want.CausationID == got.CausationID, want.CausationID, got.CausationID},
		{"Salt", bytes.Equal(want.Salt, got.Salt) && len(want.Salt) == len(got.Salt), want.Salt, got.Salt},
		{"Payload", bytes.Equal(want.Payload, got.Payload), string(want.Payload), string(got.Payload)},
		{"LeafHash", want.LeafHash == got.LeafHash, want.LeafHash, got.LeafHash},
		{"ChainHash", want.ChainHash == got.ChainHash, want.ChainHash, got.ChainHash},
	}
	for _, f := range fields {
		if !f.equal {
			return fmt.Sprintf("event %s (sequence %d): %s: want %v, got %v", want.ID, want.Sequence, f.name, f.want, f.got)
		}
	}
	return ""
}
