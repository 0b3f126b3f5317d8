package memstore

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// TestConformance runs the store conformance suite. The harness has no
// Restart on purpose: a memory store has no storage that outlives it, and a
// second handle over the same memory would pass the persistence tests
// without testing persistence. So the suite skips Persistence ("the harness
// cannot restart the store") and the retries after a restart in
// IdempotentRetry; there is no de-duplication window to wait past either.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s := New()
		t.Cleanup(func() { s.Close() })
		return storetest.Harness{Store: s}
	})
}

// TestNoAliasing changes the caller's events after Append and the events a
// read returns: what the store holds stays as it was appended.
func TestNoAliasing(t *testing.T) {
	ctx := t.Context()
	s := New()
	defer s.Close()
	c := storetest.NewCase()
	events := c.Next(2)
	want := make([]domain.Event, len(events))
	for i, e := range events {
		want[i] = clone(e)
	}
	if _, err := s.Append(ctx, 0, events); err != nil {
		t.Fatal(err)
	}
	scribble := func(events []domain.Event) {
		for _, e := range events {
			e.Salt[0] ^= 0xff
			e.Payload[0] = 'X'
		}
	}
	scribble(events)
	got, err := s.ReadCase(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	scribble(got)
	var all []domain.Event
	for e, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	scribble(all)
	errStop := errors.New("stop")
	var followed []domain.Event
	if err := s.Follow(ctx, 0, func(e domain.Event) error {
		followed = append(followed, e)
		if len(followed) == len(want) {
			return errStop
		}
		return nil
	}); err != errStop {
		t.Fatal(err)
	}
	scribble(followed)
	got, err = s.ReadCase(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := storetest.DiffEvent(want[i], got[i]); d != "" {
			t.Fatal(d)
		}
	}
}

// TestFollowWhileAppending starts followers while writers append: each
// follower gets every event once, in order.
func TestFollowWhileAppending(t *testing.T) {
	ctx := t.Context()
	s := New()
	defer s.Close()
	const writers, appends, followers = 4, 25, 4
	total := writers * appends
	var wg sync.WaitGroup
	counts := make([]int, followers)
	for f := range followers {
		wg.Go(func() {
			fctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var last domain.Position
			err := s.Follow(fctx, 0, func(e domain.Event) error {
				if e.Position <= last {
					t.Errorf("follower %d: position %d after %d", f, e.Position, last)
				}
				last = e.Position
				if counts[f]++; counts[f] == total {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("follower %d: %v", f, err)
			}
		})
	}
	for range writers {
		wg.Go(func() {
			c := storetest.NewCase()
			for range appends {
				events := c.Next(1)
				if _, err := s.Append(ctx, c.Version, events); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				c.Commit(events)
			}
		})
	}
	wg.Wait()
	for f, n := range counts {
		if n != total {
			t.Errorf("follower %d got %d events, want %d", f, n, total)
		}
	}
}

// TestClose ends a waiting Follow, and a closed store answers
// ErrStoreUnavailable.
func TestClose(t *testing.T) {
	ctx := t.Context()
	s := New()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- s.Follow(ctx, 0, func(domain.Event) error { close(started); return nil })
	}()
	c := storetest.NewCase()
	if _, err := s.Append(ctx, 0, c.Next(1)); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("Follow on a closed store: %v", err)
	}
	if _, err := s.Append(ctx, 1, storetest.NewEvents(c.ID, 1, domain.Hash{}, 1)); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("Append on a closed store: %v", err)
	}
	if _, err := s.ReadCase(ctx, c.ID, 0); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("ReadCase on a closed store: %v", err)
	}
	var errs []error
	for _, err := range s.ReadAll(ctx, 0) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], domain.ErrStoreUnavailable) {
		t.Fatalf("ReadAll on a closed store: %v", errs)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
