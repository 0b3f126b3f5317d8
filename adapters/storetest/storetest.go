// Package storetest is the conformance suite of domain.EventStore: every
// adapter (adapters/jetstream, adapters/kurrentdb) runs the very same tests
// from its own test file:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Harness { ... })
//	}
//
// The suite checks what the port documents: atomic appends with optimistic
// concurrency, exact idempotent retries (also after a restart and beyond any
// de-duplication window), reads by case and in global order, follow, and
// persistence across a restart of the store and its server.
package storetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Harness is a store under test, on storage of its own.
type Harness struct {
	// Store is the store to test.
	Store domain.EventStore
	// Restart, when not nil, closes everything (the store and its server)
	// and reopens the same storage, returning the new store; the old one is
	// not used again. Tests of persistence and of retries after a restart
	// are skipped without it.
	Restart func(t *testing.T) domain.EventStore
	// DedupWindow, when not zero, is the server's de-duplication window:
	// the suite waits past it to check that retries are still recognised.
	// Keep it short (about a second).
	DedupWindow time.Duration
}

// Opener opens a store on fresh storage for one test. It registers with
// t.Cleanup whatever closes the store (the latest one after restarts) and
// its server.
type Opener func(t *testing.T) Harness

// Run runs the conformance suite, each test on a fresh store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"AppendRead", testAppendRead},
		{"Conflicts", testConflicts},
		{"AllOrNothing", testAllOrNothing},
		{"IdempotentRetry", testIdempotentRetry},
		{"GlobalOrder", testGlobalOrder},
		{"Follow", testFollow},
		{"Persistence", testPersistence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// testContext bounds a test, so that a stuck store fails it instead of
// hanging the run.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// appendNew appends n new events to c at its version, checks the result and
// commits them.
func appendNew(t *testing.T, ctx context.Context, s domain.EventStore, c *Case, n int) ([]domain.Event, domain.AppendResult) {
	t.Helper()
	events := c.Next(n)
	res, err := s.Append(ctx, c.Version, events)
	if err != nil {
		t.Fatalf("append %d events to case %s at version %d: %v", n, c.ID, c.Version, err)
	}
	if want := c.Version + uint64(n); res.Version != want || res.Duplicate || res.Position == 0 {
		t.Fatalf("append to case %s at version %d: got %+v, want version %d, a position, not a duplicate", c.ID, c.Version, res, want)
	}
	c.Commit(events)
	return events, res
}

func readCase(t *testing.T, ctx context.Context, s domain.EventStore, id domain.CaseID, after uint64) []domain.Event {
	t.Helper()
	events, err := s.ReadCase(ctx, id, after)
	if err != nil {
		t.Fatalf("ReadCase(%s, %d): %v", id, after, err)
	}
	return events
}

func readAll(t *testing.T, ctx context.Context, s domain.EventStore, after domain.Position) []domain.Event {
	t.Helper()
	var events []domain.Event
	for e, err := range s.ReadAll(ctx, after) {
		if err != nil {
			t.Fatalf("ReadAll(%d) after %d events: %v", after, len(events), err)
		}
		events = append(events, e)
	}
	return events
}

// checkSame fails unless got are the want events, in order.
func checkSame(t *testing.T, what string, want, got []domain.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d (got %s, want %s)", what, len(got), len(want), describe(got), describe(want))
	}
	for i := range want {
		if d := DiffEvent(want[i], got[i]); d != "" {
			t.Fatalf("%s: event %d: %s", what, i, d)
		}
	}
}

// checkPositions fails unless got have the given positions.
func checkPositions(t *testing.T, what string, want, got []domain.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].Position != want[i].Position {
			t.Fatalf("%s: event %d (%s): position %d, want %d", what, i, want[i].ID, got[i].Position, want[i].Position)
		}
	}
}

// checkIncreasing fails unless positions are set and strictly increasing.
func checkIncreasing(t *testing.T, what string, events []domain.Event) {
	t.Helper()
	var last domain.Position
	for i, e := range events {
		if e.Position <= last {
			t.Fatalf("%s: event %d (%s, case %s sequence %d) has position %d after %d", what, i, e.ID, e.CaseID, e.Sequence, e.Position, last)
		}
		last = e.Position
	}
}

// checkChain verifies the hash chain of one case's events from its start.
func checkChain(t *testing.T, id domain.CaseID, events []domain.Event) {
	t.Helper()
	v := domain.NewChainVerifier(id)
	for _, e := range events {
		if err := v.Event(e); err != nil {
			t.Fatalf("hash chain of case %s: %v", id, err)
		}
	}
}

func describe(events []domain.Event) string {
	if len(events) > 12 {
		return describe(events[:12]) + "..."
	}
	s := "["
	for i, e := range events {
		if i > 0 {
			s += " "
		}
		s += e.CaseID.String()[:8] + "#" + uitoa(e.Sequence)
	}
	return s + "]"
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

func filterCase(events []domain.Event, id domain.CaseID) []domain.Event {
	var out []domain.Event
	for _, e := range events {
		if e.CaseID == id {
			out = append(out, e)
		}
	}
	return out
}

func testAppendRead(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	a, b, c := NewCase(), NewCase(), NewCase()
	plan := []struct {
		c *Case
		n int
	}{{a, 3}, {b, 1}, {a, 2}, {c, 4}, {b, 2}, {c, 1}, {c, 1}}
	var (
		all     []domain.Event
		lastPos domain.Position
		ends    = map[uuid.UUID]domain.Position{} // last event of each batch -> its result's position
	)
	for _, p := range plan {
		events, res := appendNew(t, ctx, s, p.c, p.n)
		if res.Position <= lastPos {
			t.Fatalf("append %d: position %d not after the previous append's %d", len(all), res.Position, lastPos)
		}
		lastPos = res.Position
		ends[events[len(events)-1].ID] = res.Position
		all = append(all, events...)
	}
	for _, k := range []*Case{a, b, c} {
		want := filterCase(all, k.ID)
		got := readCase(t, ctx, s, k.ID, 0)
		checkSame(t, "ReadCase", want, got)
		checkIncreasing(t, "ReadCase", got)
		checkChain(t, k.ID, got)
		for _, e := range got {
			if pos, ok := ends[e.ID]; ok && e.Position != pos {
				t.Fatalf("event %s ends its batch: position %d, but the append returned %d", e.ID, e.Position, pos)
			}
		}
		for after := uint64(1); after <= k.Version+2; after++ {
			rest := readCase(t, ctx, s, k.ID, after)
			if after >= k.Version {
				if len(rest) != 0 {
					t.Fatalf("ReadCase(%d) of a case at version %d: got %d events", after, k.Version, len(rest))
				}
				continue
			}
			checkSame(t, "ReadCase after", got[after:], rest)
			checkPositions(t, "ReadCase after", got[after:], rest)
		}
	}
	if got, err := s.ReadCase(ctx, uuid.New(), 0); err != nil || len(got) != 0 {
		t.Fatalf("ReadCase of an unknown case: got %d events, %v; want none, no error", len(got), err)
	}
	if got, err := s.ReadCase(ctx, uuid.New(), 7); err != nil || len(got) != 0 {
		t.Fatalf("ReadCase(7) of an unknown case: got %d events, %v; want none, no error", len(got), err)
	}
}

func testConflicts(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	const writers, rounds = 16, 4
	c := NewCase()
	var history []domain.Event
	for round := range rounds {
		batches := make([][]domain.Event, writers)
		for i := range batches {
			batches[i] = c.Next(1 + i%3)
		}
		results := make([]domain.AppendResult, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Append(ctx, c.Version, batches[i])
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both appended at version %d", round, winner, i, c.Version)
			case err == nil:
				winner = i
			case !errors.Is(err, domain.ErrVersionConflict):
				t.Fatalf("round %d: writer %d: got %v, want ErrVersionConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer appended at version %d", round, c.Version)
		}
		w := batches[winner]
		if res := results[winner]; res.Version != c.Version+uint64(len(w)) || res.Duplicate {
			t.Fatalf("round %d: winner's result %+v, want version %d", round, res, c.Version+uint64(len(w)))
		}
		history = append(history, w...)
		c.Commit(w)
	}
	got := readCase(t, ctx, s, c.ID, 0)
	checkSame(t, "history", history, got)
	checkIncreasing(t, "history", got)
	checkChain(t, c.ID, got)
	checkSame(t, "ReadAll", history, readAll(t, ctx, s, 0))
}

func testAllOrNothing(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	c, other := NewCase(), NewCase()

	invalid := map[string]struct {
		expected uint64
		events   []domain.Event
	}{
		"empty":               {0, nil},
		"gap in sequences":    {0, func() []domain.Event { e := c.Next(3); e[2].Sequence = 4; return e }()},
		"repeated sequence":   {0, func() []domain.Event { e := c.Next(3); e[2].Sequence = 2; return e }()},
		"not after expected":  {1, c.Next(2)},
		"starting too far":    {0, NewEvents(c.ID, 1, domain.Hash{1}, 2)},
		"several cases":       {0, append(c.Next(1), NewEvents(other.ID, 1, domain.Hash{1}, 1)...)},
		"several cases first": {0, append(other.Next(1), NewEvents(c.ID, 1, domain.Hash{1}, 1)...)},
	}
	for name, tc := range invalid {
		if res, err := s.Append(ctx, tc.expected, tc.events); !errors.Is(err, domain.ErrInvalidBatch) {
			t.Fatalf("%s: got %+v, %v; want ErrInvalidBatch", name, res, err)
		}
	}
	if got := readCase(t, ctx, s, c.ID, 0); len(got) != 0 {
		t.Fatalf("invalid batches wrote %d events", len(got))
	}
	if got := readCase(t, ctx, s, other.ID, 0); len(got) != 0 {
		t.Fatalf("invalid batches wrote %d events to the other case", len(got))
	}
	if got := readAll(t, ctx, s, 0); len(got) != 0 {
		t.Fatalf("invalid batches wrote %d events", len(got))
	}

	// A batch losing a conflict writes nothing.
	loser := c.Next(3)
	first, _ := appendNew(t, ctx, s, c, 3)
	if _, err := s.Append(ctx, 0, loser); !errors.Is(err, domain.ErrVersionConflict) {
		t.Fatalf("append at a stale version: got %v, want ErrVersionConflict", err)
	}
	checkSame(t, "after a conflict", first, readCase(t, ctx, s, c.ID, 0))
	checkSame(t, "after a conflict", first, readAll(t, ctx, s, 0))
	// A valid batch after the invalid ones still works.
	if _, err := s.Append(ctx, 0, other.Next(2)); err != nil {
		t.Fatalf("append to the other case: %v", err)
	}

	// Readers never see part of a batch.
	d := NewCase()
	const batches, size = 15, 3
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		reads := 0
		for {
			select {
			case <-done:
				if reads > 0 {
					return
				}
			default:
			}
			reads++
			got, err := s.ReadCase(ctx, d.ID, 0)
			if err != nil {
				t.Errorf("ReadCase while appending: %v", err)
				return
			}
			if len(got)%size != 0 {
				t.Errorf("ReadCase while appending 3-event batches: saw %d events", len(got))
				return
			}
			for i, e := range got {
				if e.Sequence != uint64(i)+1 {
					t.Errorf("ReadCase while appending: event %d has sequence %d", i, e.Sequence)
					return
				}
			}
			n := 0
			for e, err := range s.ReadAll(ctx, 0) {
				if err != nil {
					t.Errorf("ReadAll while appending: %v", err)
					return
				}
				if e.CaseID == d.ID {
					n++
				}
			}
			if n%size != 0 {
				t.Errorf("ReadAll while appending 3-event batches: saw %d events of the case", n)
				return
			}
		}
	})
	for range batches {
		appendNew(t, ctx, s, d, size)
	}
	close(done)
	wg.Wait()
	if got := readCase(t, ctx, s, d.ID, 0); len(got) != batches*size {
		t.Fatalf("got %d events, want %d", len(got), batches*size)
	}
}

func testIdempotentRetry(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	c := NewCase()
	b1, r1 := appendNew(t, ctx, s, c, 2)

	retry := func(when string, expected uint64, batch []domain.Event, want domain.AppendResult) {
		t.Helper()
		res, err := s.Append(ctx, expected, batch)
		if err != nil {
			t.Fatalf("%s: retry of the batch at version %d: %v", when, expected, err)
		}
		if res.Version != want.Version || res.Position != want.Position || !res.Duplicate {
			t.Fatalf("%s: retry of the batch at version %d: got %+v, want %+v with Duplicate", when, expected, res, want)
		}
	}
	// The first event's id with other content at the same place.
	mismatch := NewEvents(c.ID, 0, domain.Hash{}, 2)
	mismatch[0].ID = b1[0].ID
	mismatch[0].LeafHash = domain.Leaf(mismatch[0])
	mismatch[0].ChainHash = domain.Chain(domain.Genesis(c.ID), mismatch[0].LeafHash)
	mismatch[1].ChainHash = domain.Chain(mismatch[0].ChainHash, mismatch[1].LeafHash)
	// The same ids, the second event with other content.
	mismatch2 := NewEvents(c.ID, 0, domain.Hash{}, 2)
	mismatch2[0] = b1[0]
	mismatch2[1].ID = b1[1].ID
	mismatch2[1].LeafHash = domain.Leaf(mismatch2[1])
	mismatch2[1].ChainHash = domain.Chain(b1[0].ChainHash, mismatch2[1].LeafHash)
	mismatches := func(when string) {
		t.Helper()
		for i, m := range [][]domain.Event{mismatch, mismatch2} {
			if res, err := s.Append(ctx, 0, m); !errors.Is(err, domain.ErrIdempotencyMismatch) {
				t.Fatalf("%s: batch %d reusing recorded ids with other content: got %+v, %v; want ErrIdempotencyMismatch", when, i, res, err)
			}
		}
		// New ids at a taken place: a plain conflict.
		if _, err := s.Append(ctx, 0, NewEvents(c.ID, 0, domain.Hash{}, 2)); !errors.Is(err, domain.ErrVersionConflict) {
			t.Fatalf("%s: new events at a taken place: got %v, want ErrVersionConflict", when, err)
		}
	}

	retry("at once", 0, b1, r1)
	checkSame(t, "after a retry", b1, readCase(t, ctx, s, c.ID, 0))
	checkSame(t, "after a retry", b1, readAll(t, ctx, s, 0))

	b2, r2 := appendNew(t, ctx, s, c, 3)
	retry("after the case moved on", 0, b1, r1)
	retry("at once", 2, b2, r2)
	mismatches("before a restart")
	want := append(slices.Clone(b1), b2...)
	checkSame(t, "after retries", want, readCase(t, ctx, s, c.ID, 0))
	checkSame(t, "after retries", want, readAll(t, ctx, s, 0))

	if h.Restart != nil {
		s = h.Restart(t)
		retry("after a restart", 0, b1, r1)
		retry("after a restart", 2, b2, r2)
		mismatches("after a restart")
	}
	if h.DedupWindow > 0 {
		time.Sleep(h.DedupWindow + h.DedupWindow/2 + 100*time.Millisecond)
		retry("beyond the de-duplication window", 2, b2, r2)
		retry("beyond the de-duplication window", 0, b1, r1)
		mismatches("beyond the de-duplication window")
	}
	checkSame(t, "after retries", want, readCase(t, ctx, s, c.ID, 0))
	checkSame(t, "after retries", want, readAll(t, ctx, s, 0))
	_, r3 := appendNew(t, ctx, s, c, 1)
	if r3.Version != 6 || r3.Position <= r2.Position {
		t.Fatalf("append after retries: got %+v, want version 6 after position %d", r3, r2.Position)
	}
}

func testGlobalOrder(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	rng := rand.New(rand.NewPCG(1, 2))
	cases := make([]*Case, 6)
	for i := range cases {
		cases[i] = NewCase()
	}
	var all []domain.Event
	for range 30 {
		c := cases[rng.IntN(len(cases))]
		events, res := appendNew(t, ctx, s, c, 1+rng.IntN(3))
		if len(all) > 0 && res.Position <= all[len(all)-1].Position {
			t.Fatalf("append: position %d not after %d", res.Position, all[len(all)-1].Position)
		}
		events[len(events)-1].Position = res.Position
		all = append(all, events...)
	}
	got := readAll(t, ctx, s, 0)
	checkSame(t, "ReadAll(0)", all, got)
	checkIncreasing(t, "ReadAll(0)", got)
	for i, e := range all {
		if e.Position != 0 && got[i].Position != e.Position {
			t.Fatalf("event %d ends a batch: ReadAll gives position %d, the append returned %d", i, got[i].Position, e.Position)
		}
	}
	for _, c := range cases {
		checkPositions(t, "ReadCase and ReadAll", filterCase(got, c.ID), readCase(t, ctx, s, c.ID, 0))
	}
	for k := range got {
		rest := readAll(t, ctx, s, got[k].Position)
		checkSame(t, "ReadAll(position of event "+uitoa(uint64(k))+")", all[k+1:], rest)
		checkPositions(t, "ReadAll(position of event "+uitoa(uint64(k))+")", got[k+1:], rest)
		// A position between events.
		between := got[k].Position + 1
		var want []domain.Event
		for _, e := range got {
			if e.Position > between {
				want = append(want, e)
			}
		}
		checkPositions(t, "ReadAll(a position after event "+uitoa(uint64(k))+")", want, readAll(t, ctx, s, between))
	}

	// Stopping early.
	n := 0
	for _, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}
	checkPositions(t, "ReadAll after a stopped one", got, readAll(t, ctx, s, 0))

	// Concurrent appends to many cases.
	const writers, appends = 8, 8
	own := make([]*Case, writers)
	var wg sync.WaitGroup
	for i := range own {
		own[i] = NewCase()
		wg.Go(func() {
			for j := range appends {
				events := own[i].Next(1 + j%2)
				if _, err := s.Append(ctx, own[i].Version, events); err != nil {
					t.Errorf("concurrent append: %v", err)
					return
				}
				own[i].Commit(events)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	got2 := readAll(t, ctx, s, 0)
	checkIncreasing(t, "ReadAll after concurrent appends", got2)
	checkPositions(t, "ReadAll after concurrent appends", got, got2[:len(got)])
	total := len(got)
	for _, c := range own {
		events := filterCase(got2, c.ID)
		total += len(events)
		checkSame(t, "a case in ReadAll", readCase(t, ctx, s, c.ID, 0), events)
		for i, e := range events {
			if e.Sequence != uint64(i)+1 {
				t.Fatalf("case %s: event %d in global order has sequence %d", c.ID, i, e.Sequence)
			}
		}
		if uint64(len(events)) != c.Version {
			t.Fatalf("case %s: %d events in ReadAll, want %d", c.ID, len(events), c.Version)
		}
	}
	if total != len(got2) {
		t.Fatalf("ReadAll: %d events, want %d", len(got2), total)
	}
	if rest := readAll(t, ctx, s, got2[len(got2)-1].Position); len(rest) != 0 {
		t.Fatalf("ReadAll from the last position: got %d events", len(rest))
	}
}

func testFollow(t *testing.T, h Harness) {
	s, ctx := h.Store, testContext(t)
	c, d := NewCase(), NewCase()
	var want []domain.Event
	for _, n := range []int{2, 1, 2} {
		events, _ := appendNew(t, ctx, s, c, n)
		want = append(want, events...)
	}

	type follower struct {
		events chan domain.Event
		done   chan error
		cancel context.CancelFunc
		ctx    context.Context
	}
	follow := func(after domain.Position) *follower {
		fctx, cancel := context.WithCancel(ctx)
		f := &follower{events: make(chan domain.Event, 1000), done: make(chan error, 1), cancel: cancel, ctx: fctx}
		go func() {
			f.done <- s.Follow(fctx, after, func(e domain.Event) error {
				f.events <- e
				return nil
			})
		}()
		t.Cleanup(cancel)
		return f
	}
	receive := func(f *follower, n int) []domain.Event {
		t.Helper()
		var got []domain.Event
		for len(got) < n {
			select {
			case e := <-f.events:
				got = append(got, e)
			case err := <-f.done:
				t.Fatalf("Follow returned %v after %d events, want %d", err, len(got), n)
			case <-ctx.Done():
				t.Fatalf("Follow: got %d events, want %d", len(got), n)
			}
		}
		return got
	}
	stop := func(f *follower) {
		t.Helper()
		f.cancel()
		select {
		case err := <-f.done:
			if err != context.Canceled {
				t.Fatalf("Follow after its context was cancelled: returned %v, want ctx.Err() (context.Canceled)", err)
			}
		case <-ctx.Done():
			t.Fatal("Follow did not return when its context was cancelled")
		}
		select {
		case e := <-f.events:
			t.Fatalf("Follow: unexpected event %s", describe([]domain.Event{e}))
		default:
		}
	}

	f := follow(0)
	got := receive(f, len(want))
	checkSame(t, "Follow, recorded events", want, got)
	checkIncreasing(t, "Follow, recorded events", got)

	var more []domain.Event
	for _, step := range []struct {
		c *Case
		n int
	}{{c, 3}, {d, 1}, {c, 1}, {d, 2}} {
		events, _ := appendNew(t, ctx, s, step.c, step.n)
		more = append(more, events...)
	}
	got2 := receive(f, len(more))
	checkSame(t, "Follow, new events", more, got2)
	all := append(got, got2...)
	checkIncreasing(t, "Follow", all)
	checkPositions(t, "Follow and ReadAll", readAll(t, ctx, s, 0), all)
	stop(f)

	// From a position.
	for _, k := range []int{0, 2, len(all) - 2, len(all) - 1} {
		f := follow(all[k].Position)
		if rest := all[k+1:]; len(rest) > 0 {
			checkPositions(t, "Follow from a position", rest, receive(f, len(rest)))
		}
		// Then new events only.
		events, _ := appendNew(t, ctx, s, d, 1)
		got := receive(f, 1)
		checkSame(t, "Follow from a position, new event", events, got)
		all = append(all, got...)
		stop(f)
	}

	// A handler error is returned as is.
	errStop := errors.New("handler says stop")
	calls := 0
	err := s.Follow(ctx, 0, func(domain.Event) error {
		if calls++; calls == 2 {
			return errStop
		}
		return nil
	})
	if err != errStop || calls != 2 {
		t.Fatalf("Follow with a failing handler: returned %v after %d calls, want the handler's error after 2", err, calls)
	}
	// A context already done.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Follow(done, 0, func(domain.Event) error { return nil }); err != context.Canceled {
		t.Fatalf("Follow with a cancelled context: got %v, want context.Canceled", err)
	}
}

func testPersistence(t *testing.T, h Harness) {
	if h.Restart == nil {
		t.Skip("the harness cannot restart the store")
	}
	s, ctx := h.Store, testContext(t)
	cases := []*Case{NewCase(), NewCase(), NewCase()}
	for i := range 9 {
		appendNew(t, ctx, s, cases[i%3], 1+i%3)
	}
	before := readAll(t, ctx, s, 0)
	byCase := map[domain.CaseID][]domain.Event{}
	for _, c := range cases {
		byCase[c.ID] = readCase(t, ctx, s, c.ID, 0)
	}

	for restart := range 2 {
		s = h.Restart(t)
		after := readAll(t, ctx, s, 0)
		checkSame(t, "ReadAll after a restart", before, after)
		checkPositions(t, "ReadAll after a restart", before, after)
		for _, c := range cases {
			got := readCase(t, ctx, s, c.ID, 0)
			checkSame(t, "ReadCase after a restart", byCase[c.ID], got)
			checkPositions(t, "ReadCase after a restart", byCase[c.ID], got)
		}
		// Appending goes on at the right versions.
		c := cases[restart]
		if _, err := s.Append(ctx, 0, NewEvents(cases[2].ID, 0, domain.Hash{}, 1)); !errors.Is(err, domain.ErrVersionConflict) {
			t.Fatalf("append to an existing case as a new one after a restart: got %v, want ErrVersionConflict", err)
		}
		if _, err := s.Append(ctx, c.Version-1, NewEvents(c.ID, c.Version-1, byCase[c.ID][c.Version-2].ChainHash, 1)); !errors.Is(err, domain.ErrVersionConflict) {
			t.Fatalf("append at a stale version after a restart: got %v, want ErrVersionConflict", err)
		}
		events, res := appendNew(t, ctx, s, c, 2)
		if res.Position <= before[len(before)-1].Position {
			t.Fatalf("append after a restart: position %d not after %d", res.Position, before[len(before)-1].Position)
		}
		now := readAll(t, ctx, s, 0)
		checkSame(t, "ReadAll after appending", append(slices.Clone(before), events...), now)
		before = now
		byCase[c.ID] = append(byCase[c.ID], now[len(now)-2:]...)
	}
}
