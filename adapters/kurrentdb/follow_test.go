package kurrentdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/kurrentdb"
	"github.com/maillage/maillage/adapters/kurrentdb/kurrentdbtest"
	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// appendRetrying appends the next n events of c, retrying while the store
// is unavailable (a bounded number of times), and commits them.
func appendRetrying(t *testing.T, s *kurrentdb.Store, c *storetest.Case, n int) []domain.Event {
	t.Helper()
	events := c.Next(n)
	var err error
	for range 200 {
		_, err = s.Append(t.Context(), c.Version, events)
		if !errors.Is(err, domain.ErrStoreUnavailable) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	c.Commit(events)
	return events
}

// TestFollowResubscribesAfterDrops follows while the server goes away and
// comes back, several times, with events recorded while the follower is
// away: every event is handled once, in order.
func TestFollowResubscribesAfterDrops(t *testing.T) {
	d := kurrentdbtest.Start(t)
	writer := open(t, kurrentdb.WithURL(d.URL()))
	follower := open(t, kurrentdb.WithURL(d.URL()), kurrentdb.WithRetryDelay(20*time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan domain.Event, 1000)
	done := make(chan error, 1)
	go func() {
		done <- follower.Follow(ctx, 0, func(e domain.Event) error { got <- e; return nil })
	}()
	receive := func(want []domain.Event) {
		t.Helper()
		for _, w := range want {
			select {
			case e := <-got:
				if e.ID != w.ID {
					t.Fatalf("followed %s#%d, want %s#%d", e.CaseID, e.Sequence, w.CaseID, w.Sequence)
				}
			case err := <-done:
				t.Fatalf("Follow returned %v", err)
			case <-time.After(30 * time.Second):
				t.Fatalf("no event %s#%d", w.CaseID, w.Sequence)
			}
		}
	}
	c := storetest.NewCase()
	var all []domain.Event
	for round := range 3 {
		events := appendRetrying(t, writer, c, 1+round)
		receive(events)
		all = append(all, events...)
		d.Stop()
		if round == 1 {
			// Long enough for the clients to give up discovering the server.
			time.Sleep(1500 * time.Millisecond)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		// Recorded while the follower is away or resubscribing.
		events = appendRetrying(t, writer, c, 2)
		receive(events)
		all = append(all, events...)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Follow after cancel: %v, want context.Canceled", err)
	}
	select {
	case e := <-got:
		t.Fatalf("event %s#%d handled twice or out of place", e.CaseID, e.Sequence)
	default:
	}
	read, err := writer.ReadCase(t.Context(), c.ID, 0)
	if err != nil || len(read) != len(all) {
		t.Fatalf("ReadCase: %d events, %v; want %d", len(read), err, len(all))
	}
}

// TestCloseWhileFollowing checks that Close ends a Follow in progress.
func TestCloseWhileFollowing(t *testing.T) {
	d := kurrentdbtest.Start(t)
	s := open(t, kurrentdb.WithURL(d.URL()))
	done := make(chan error, 1)
	got := make(chan domain.Event, 1)
	go func() {
		done <- s.Follow(context.Background(), 0, func(e domain.Event) error { got <- e; return nil })
	}()
	appendRetrying(t, s, storetest.NewCase(), 1)
	<-got
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, domain.ErrStoreUnavailable) {
			t.Fatalf("Follow after Close: %v, want ErrStoreUnavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
}

// TestReadsSkipOtherStreams records events of other applications and system
// streams between case events: ReadAll and Follow give the case events only.
func TestReadsSkipOtherStreams(t *testing.T) {
	d := kurrentdbtest.Start(t)
	s := open(t, kurrentdb.WithURL(d.URL()), kurrentdb.WithPageSize(3))
	conf, err := esdb.ParseConnectionString(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdb.NoopLogging()
	other, err := esdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	foreign := func(stream string, n int) {
		t.Helper()
		for range n {
			ev := esdb.EventData{EventID: uuid.New(), EventType: "SomethingElse", ContentType: esdb.ContentTypeJson, Data: []byte(`{"x":1}`)}
			if _, err := other.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := storetest.NewCase()
	var want []domain.Event
	for i := range 4 {
		foreign("invoices-42", i+2)
		foreign("$maillage-like-system", 1)
		want = append(want, appendRetrying(t, s, c, 1+i%2)...)
	}
	foreign("maillage-casework", 2) // another prefix sharing the start of the word
	var got []domain.Event
	for e, err := range s.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != len(want) {
		t.Fatalf("ReadAll: %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if d := storetest.DiffEvent(want[i], got[i]); d != "" {
			t.Fatal(d)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := 0
	err = s.Follow(ctx, got[1].Position, func(e domain.Event) error {
		if e.ID != want[2+n].ID {
			t.Fatalf("Follow: event %d is %s, want %s", n, e.ID, want[2+n].ID)
		}
		if n++; 2+n == len(want) {
			cancel()
		}
		return nil
	})
	if err != context.Canceled {
		t.Fatalf("Follow: %v after %d events", err, n)
	}
}

// TestPayloadBytesKept records payloads that JSON encoding would rewrite
// (spaces, HTML characters, key order): they come back byte for byte, so
// the leaf hash still verifies.
func TestPayloadBytesKept(t *testing.T) {
	d := kurrentdbtest.Start(t)
	s := open(t, kurrentdb.WithURL(d.URL()))
	c := storetest.NewCase()
	events := c.Next(3)
	payloads := []string{`{ "summary" : "a <b> & c" }`, `{"summary":"<script>&amp;"}`, `{"b":1,"a":[1, 2]}`}
	prev := domain.Genesis(c.ID)
	for i := range events {
		events[i].Payload = []byte(payloads[i])
		events[i].LeafHash = domain.Leaf(events[i])
		events[i].ChainHash = domain.Chain(prev, events[i].LeafHash)
		prev = events[i].ChainHash
	}
	if _, err := s.Append(t.Context(), 0, events); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadCase(t.Context(), c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if string(got[i].Payload) != payloads[i] || domain.Leaf(got[i]) != events[i].LeafHash {
			t.Fatalf("payload %d: got %s, want %s", i, got[i].Payload, payloads[i])
		}
	}
}

// TestUnavailableThenBack stops the server long enough for the client to
// give up: appends fail with ErrStoreUnavailable, then work again once the
// server is back, without reopening the store.
func TestUnavailableThenBack(t *testing.T) {
	d := kurrentdbtest.Start(t)
	s := open(t, kurrentdb.WithURL(d.URL()))
	c := storetest.NewCase()
	appendRetrying(t, s, c, 1)
	d.Stop()
	for range 3 {
		if _, err := s.Append(t.Context(), c.Version, c.Next(1)); !errors.Is(err, domain.ErrStoreUnavailable) {
			t.Fatalf("append with the server stopped: %v, want ErrStoreUnavailable", err)
		}
		if _, err := s.ReadCase(t.Context(), c.ID, 0); !errors.Is(err, domain.ErrStoreUnavailable) {
			t.Fatalf("read with the server stopped: %v, want ErrStoreUnavailable", err)
		}
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	appendRetrying(t, s, c, 2)
	if got, err := s.ReadCase(t.Context(), c.ID, 0); err != nil || len(got) != 3 {
		t.Fatalf("after the server came back: %d events, %v", len(got), err)
	}
}
