// Package memstore is a domain.EventStore held in memory, for unit tests of
// the application service and the read models and for differential tests of
// the read paths. It passes the store conformance suite (adapters/storetest)
// except its persistence tests: nothing outlives the Store value, so it is
// never for production.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"sync"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// errClosed is what a closed store answers.
var errClosed = fmt.Errorf("%w: memstore closed", domain.ErrStoreUnavailable)

// Store is an in-memory event store, safe for concurrent use. An event's
// position is its index in the global log plus one. The store keeps its own
// copies of the events it is given and hands out copies, so no caller can
// change what it holds.
type Store struct {
	mu     sync.RWMutex
	log    []domain.Event          // every event, in global order; only appended to
	cases  map[domain.CaseID][]int // a case's events: indexes in log, by sequence
	ids    map[uuid.UUID]struct{}  // every recorded event id
	wake   chan struct{}           // closed and replaced by every append, and by Close
	closed bool
}

var _ domain.EventStore = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		cases: make(map[domain.CaseID][]int),
		ids:   make(map[uuid.UUID]struct{}),
		wake:  make(chan struct{}),
	}
}

// Append implements domain.EventStore.
func (s *Store) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	if err := domain.CheckBatch(expectedVersion, events); err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	id := events[0].CaseID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.AppendResult{}, errClosed
	}
	idx := s.cases[id]
	if version := uint64(len(idx)); version != expectedVersion {
		var recorded []domain.Event
		if expectedVersion < version {
			for _, i := range idx[expectedVersion:] {
				recorded = append(recorded, s.log[i])
			}
		}
		res, ok, err := domain.MatchRecorded(expectedVersion, events, recorded)
		switch {
		case err != nil:
			return domain.AppendResult{}, err
		case ok:
			return res, nil
		}
		return domain.AppendResult{}, fmt.Errorf("%w: case %s is at version %d, not %d", domain.ErrVersionConflict, id, version, expectedVersion)
	}
	// At the right place, an id recorded anywhere else is reused, not retried.
	for _, e := range events {
		if _, ok := s.ids[e.ID]; ok {
			return domain.AppendResult{}, fmt.Errorf("%w: event %s", domain.ErrIdempotencyMismatch, e.ID)
		}
	}
	for _, e := range events {
		e = clone(e)
		e.SealedPayload = nil // never stored
		e.RecordedAt, e.OccurredAt = e.RecordedAt.Round(0), e.OccurredAt.Round(0)
		e.Position = domain.Position(len(s.log) + 1)
		idx = append(idx, len(s.log))
		s.log = append(s.log, e)
		s.ids[e.ID] = struct{}{}
	}
	s.cases[id] = idx
	close(s.wake)
	s.wake = make(chan struct{})
	return domain.AppendResult{Version: expectedVersion + uint64(len(events)), Position: domain.Position(len(s.log))}, nil
}

// ReadCase implements domain.EventStore.
func (s *Store) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	idx := s.cases[id]
	if after >= uint64(len(idx)) {
		return nil, nil
	}
	out := make([]domain.Event, 0, uint64(len(idx))-after)
	for _, i := range idx[after:] {
		out = append(out, clone(s.log[i]))
	}
	return out, nil
}

// ReadAll implements domain.EventStore. It reads what is recorded when the
// iteration starts, without holding the lock while it yields, so the loop's
// body may use the store.
func (s *Store) ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error] {
	return func(yield func(domain.Event, error) bool) {
		events, _, err := s.since(after)
		if err != nil {
			yield(domain.Event{}, err)
			return
		}
		for _, e := range events {
			if err := ctx.Err(); err != nil {
				yield(domain.Event{}, err)
				return
			}
			if !yield(clone(e), nil) {
				return
			}
		}
	}
}

// Follow implements domain.EventStore. It takes the events after its
// position and the channel the next append closes under one lock, so an
// event appended meanwhile is either in what it read or wakes it.
func (s *Store) Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error {
	for {
		events, wake, err := s.since(after)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := handle(clone(e)); err != nil {
				return err
			}
			after = e.Position
		}
		if len(events) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// since returns the recorded events with a position greater than after and
// the channel the next append closes. The events are shared with the log:
// stored events are never changed, and appends only write beyond them.
func (s *Store) since(after domain.Position) ([]domain.Event, <-chan struct{}, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, nil, errClosed
	}
	n := domain.Position(len(s.log))
	return s.log[min(after, n):n:n], s.wake, nil
}

// Close implements domain.EventStore: it drops the events and ends every
// Follow with an error. Closing twice does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.log, s.cases, s.ids = nil, nil, nil
		close(s.wake)
	}
	return nil
}

// clone copies the event's byte slices, so the copy shares nothing mutable.
func clone(e domain.Event) domain.Event {
	e.Salt = bytes.Clone(e.Salt)
	e.Payload = bytes.Clone(e.Payload)
	e.SealedPayload = bytes.Clone(e.SealedPayload)
	return e
}
