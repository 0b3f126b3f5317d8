package domain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/google/uuid"
)

// Position is an event's place in the store's global order. Positions only
// grow: an event appended after another has a greater position. They are not
// contiguous (an adapter may encode a message sequence and an index in it),
// so callers compare them and never count with them. Zero is "before
// everything".
type Position uint64

// Errors an EventStore returns. Adapters wrap them with %w so callers check
// them with errors.Is.
var (
	// ErrVersionConflict: the case stream is not at the expected version
	// (another command was recorded first). Nothing was written.
	ErrVersionConflict = errors.New("version conflict")
	// ErrInvalidBatch: the batch is empty, mixes cases, or its sequences do
	// not follow the expected version one by one. Nothing was written.
	ErrInvalidBatch = errors.New("invalid batch")
	// ErrIdempotencyMismatch: the batch reuses the id of an event that is
	// already recorded with different content or at a different place.
	// Nothing was written.
	ErrIdempotencyMismatch = errors.New("event id already recorded with other content")
	// ErrStoreUnavailable: the store could not be reached or did not answer;
	// the outcome of an append is unknown and the caller may retry it (it is
	// idempotent).
	ErrStoreUnavailable = errors.New("event store unavailable")
	// ErrStorageFull: the disk the store writes to is full (or its storage
	// budget is spent). Nothing was written; the same request succeeds once
	// space is freed. Errors wrapping it also wrap ErrStoreUnavailable.
	ErrStorageFull = errors.New("storage full")
	// ErrCaseDamaged: the store holds less of the case than was
	// acknowledged and signed (events lost or altered on disk), so the case
	// is read-only: appending would record a different event at a signed
	// sequence, forking its history. Nothing was written; the data
	// directory is to be restored from a backup (docs/operations.md).
	ErrCaseDamaged = errors.New("case damaged: the store lost acknowledged events")
)

// AppendResult is what a successful Append recorded: the case's new version
// (the sequence of the batch's last event) and the global position of the
// batch's last event.
type AppendResult struct {
	Version  uint64   `json:"version"`
	Position Position `json:"position"`
	// Duplicate is true when the batch had already been recorded by an
	// earlier call; the result is then the original one.
	Duplicate bool `json:"-"`
}

// EventStore records case streams and reads them back. Implementations:
// adapters/jetstream (NATS JetStream, the default) and adapters/kurrentdb.
// Both pass the conformance suite in adapters/storetest.
type EventStore interface {
	// Append records events, all of one case, atomically: all or nothing.
	// expectedVersion is the case's current version (0 for a new case); the
	// events must carry sequences expectedVersion+1, +2, ... in order.
	//
	// Outcomes:
	//   - success: the AppendResult of the batch;
	//   - the same batch (same event ids, same expected version) was already
	//     recorded, whenever that was, also after a restart: the original
	//     AppendResult with Duplicate set, and nothing new is recorded;
	//   - the case moved on: ErrVersionConflict;
	//   - a bad batch: ErrInvalidBatch;
	//   - an event id already recorded with other content: ErrIdempotencyMismatch;
	//   - the store failed: ErrStoreUnavailable (or another wrapped error),
	//     outcome unknown, safe to retry.
	Append(ctx context.Context, expectedVersion uint64, events []Event) (AppendResult, error)

	// ReadCase returns the events of one case with a sequence greater than
	// after, in sequence order, with their positions. An unknown case has no
	// events (no error).
	ReadCase(ctx context.Context, id CaseID, after uint64) ([]Event, error)

	// ReadAll yields every event of every case with a position greater than
	// after, in global order, until the end of what is recorded now. It stops
	// at the first error, which it yields.
	ReadAll(ctx context.Context, after Position) iter.Seq2[Event, error]

	// Follow calls handle for every event with a position greater than
	// after, in global order, then waits for new ones, until ctx ends
	// (returning ctx.Err()) or handle returns an error (returned as is).
	Follow(ctx context.Context, after Position, handle func(Event) error) error

	// Close releases the store's resources.
	Close() error
}

// CheckBatch verifies what every adapter must check before appending: a
// non-empty batch of one case whose sequences follow expectedVersion.
func CheckBatch(expectedVersion uint64, events []Event) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidBatch)
	}
	for i, e := range events {
		if e.CaseID != events[0].CaseID {
			return fmt.Errorf("%w: events of several cases", ErrInvalidBatch)
		}
		if e.Sequence != expectedVersion+uint64(i)+1 {
			return fmt.Errorf("%w: event %d has sequence %d, want %d", ErrInvalidBatch, i, e.Sequence, expectedVersion+uint64(i)+1)
		}
	}
	return nil
}

// MatchRecorded applies the port's exact-idempotency rule to a batch and
// the events a case holds after expectedVersion (read back after a
// conflict or an uncertain append): the same events first means the batch
// was already recorded (ok, with the original result marked Duplicate); its
// ids with other content, or at other places, is ErrIdempotencyMismatch;
// otherwise the batch was not recorded (not ok, nil error).
func MatchRecorded(expectedVersion uint64, events, recorded []Event) (AppendResult, bool, error) {
	if len(recorded) > 0 && len(events) > 0 && recorded[0].ID == events[0].ID {
		if len(recorded) < len(events) {
			return AppendResult{}, false, fmt.Errorf("%w: event %s", ErrIdempotencyMismatch, events[0].ID)
		}
		for i, e := range events {
			if !sameRecordedEvent(e, recorded[i]) {
				return AppendResult{}, false, fmt.Errorf("%w: event %s (sequence %d)", ErrIdempotencyMismatch, e.ID, e.Sequence)
			}
		}
		last := recorded[len(events)-1]
		return AppendResult{Version: expectedVersion + uint64(len(events)), Position: last.Position, Duplicate: true}, true, nil
	}
	ids := make(map[uuid.UUID]struct{}, len(events))
	for _, e := range events {
		ids[e.ID] = struct{}{}
	}
	for _, r := range recorded {
		if _, ok := ids[r.ID]; ok {
			return AppendResult{}, false, fmt.Errorf("%w: event %s is recorded at sequence %d", ErrIdempotencyMismatch, r.ID, r.Sequence)
		}
	}
	return AppendResult{}, false, nil
}

// sameRecordedEvent reports whether two events have the same content and
// hashes.
func sameRecordedEvent(a, b Event) bool {
	return a.ID == b.ID && a.LeafHash == b.LeafHash && a.ChainHash == b.ChainHash &&
		bytes.Equal(CanonicalEncoding(a), CanonicalEncoding(b))
}
