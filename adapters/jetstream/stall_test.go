package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// Given a follower whose consumer receives messages and never delivers them
// (as an ordered consumer stuck recreating itself after a node loss), when
// the stream holds more than it handled for longer than the stall bound,
// then Follow gives up with ErrFollowStalled (an unavailable store), so
// that its caller starts again from its checkpoint. A follower that is idle
// (nothing more in the stream), or busy in its handler for longer than the
// bound, does not give up.
func TestFollowGivesUpWhenItStalls(t *testing.T) {
	srv := startServer(t)
	const bound = 100 * time.Millisecond
	appendEvents := func(s *Store, c *storetest.Case, n int) {
		t.Helper()
		for range n {
			events := c.Next(1)
			if _, err := s.Append(t.Context(), c.Version, events); err != nil {
				t.Fatal(err)
			}
			c.Commit(events)
		}
	}

	t.Run("stuck", func(t *testing.T) {
		s := openURL(t, srv.ClientURL(), withStallAfter(bound), withDropDelivery(func(seq uint64) bool { return seq >= 2 }))
		appendEvents(s, storetest.NewCase(), 3)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		handled := 0
		err := s.Follow(ctx, 0, func(domain.Event) error { handled++; return nil })
		if !errors.Is(err, ErrFollowStalled) || !errors.Is(err, domain.ErrStoreUnavailable) || handled != 1 {
			t.Fatalf("stuck follower: %v after %d events, want ErrFollowStalled after 1", err, handled)
		}
	})

	for _, tc := range []struct {
		name string
		slow time.Duration
	}{{"idle", 0}, {"busy", 3 * bound}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openURL(t, srv.ClientURL(), withStallAfter(bound))
			c := storetest.NewCase()
			appendEvents(s, c, 3)
			_, all, _ := readAllOf(t, s)
			ctx, cancel := context.WithCancel(t.Context())
			handled := 0
			err := s.Follow(ctx, 0, func(domain.Event) error {
				handled++
				time.Sleep(tc.slow)
				if handled == len(all) {
					// Caught up: stay idle for several bounds, then stop.
					time.AfterFunc(10*bound, cancel)
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || handled != len(all) {
				t.Fatalf("%s follower: %v after %d events, want to run until cancelled after %d", tc.name, err, handled, len(all))
			}
		})
	}
}

// readAllOf returns every event of the store.
func readAllOf(t *testing.T, s *Store) (domain.Position, []domain.Event, error) {
	t.Helper()
	var all []domain.Event
	var last domain.Position
	for e, err := range s.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
		last = e.Position
	}
	return last, all, nil
}
