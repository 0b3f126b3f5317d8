package personal

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/maillage/maillage/domain"
)

// Store is a domain.EventStore whose reads open the personal-data fields of
// the events of the store it wraps (Open), with their case's key, or show
// them Erased once the key is destroyed. Appends pass through: the events
// must be sealed already (see Seal); an opened event (SealedPayload set) is
// stored in its sealed form.
type Store struct {
	next domain.EventStore
	keys Keys
}

var _ domain.EventStore = (*Store)(nil)

// NewStore returns a store opening the events of next with keys.
func NewStore(next domain.EventStore, keys Keys) *Store { return &Store{next: next, keys: keys} }

// Append records events as next does, in their sealed form.
func (s *Store) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	for i, e := range events {
		if e.SealedPayload != nil {
			if i == 0 {
				events = append([]domain.Event(nil), events...)
			}
			events[i].Payload, events[i].SealedPayload = e.SealedPayload, nil
		}
	}
	return s.next.Append(ctx, expectedVersion, events)
}

// ReadCase reads the case from next and opens its events.
func (s *Store) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	events, err := s.next.ReadCase(ctx, id, after)
	if err != nil {
		return nil, err
	}
	var key []byte
	looked := false
	for i, e := range events {
		if !Sealed(e.Payload) {
			continue
		}
		if !looked {
			if key, err = s.key(ctx, id); err != nil {
				return nil, err
			}
			looked = true
		}
		if events[i], err = Open(e, key); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// ReadAll reads next in global order and opens each event.
func (s *Store) ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error] {
	return func(yield func(domain.Event, error) bool) {
		for e, err := range s.next.ReadAll(ctx, after) {
			if err == nil {
				e, err = s.open(ctx, e)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// Follow follows next and hands each event opened.
func (s *Store) Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error {
	var openErr error
	err := s.next.Follow(ctx, after, func(e domain.Event) error {
		opened, err := s.open(ctx, e)
		if err != nil {
			openErr = err
			return err
		}
		return handle(opened)
	})
	if openErr != nil && errors.Is(err, openErr) {
		return openErr
	}
	return err
}

// Close closes next.
func (s *Store) Close() error { return s.next.Close() }

func (s *Store) open(ctx context.Context, e domain.Event) (domain.Event, error) {
	if !Sealed(e.Payload) {
		return e, nil
	}
	key, err := s.key(ctx, e.CaseID)
	if err != nil {
		return domain.Event{}, err
	}
	return Open(e, key)
}

// key returns the case key, nil when it was erased.
func (s *Store) key(ctx context.Context, id domain.CaseID) ([]byte, error) {
	key, err := s.keys.Key(ctx, id, false)
	switch {
	case errors.Is(err, ErrErased):
		return nil, nil
	case errors.Is(err, ErrNoKey):
		// Sealed fields without a key: the key was lost, not erased (an
		// erasure leaves its record). Fail rather than show them erased.
		return nil, fmt.Errorf("personal: case %s holds sealed fields and no key: %w", id, err)
	case err != nil:
		return nil, fmt.Errorf("personal: key of case %s: %w", id, err)
	}
	return key, nil
}
