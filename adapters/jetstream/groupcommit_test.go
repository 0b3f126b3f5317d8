package jetstream

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// TestConformanceGroupCommitFirst runs the suite with group commit at its
// most eager: any append that finds another in flight waits for a batch.
func TestConformanceGroupCommitFirst(t *testing.T) {
	storetest.Run(t, embeddedOpener(WithGroupCommit(1)))
}

// TestConformanceWithoutGroupCommit runs the suite with every append
// published alone, as group commit off does.
func TestConformanceWithoutGroupCommit(t *testing.T) {
	storetest.Run(t, embeddedOpener(WithGroupCommit(0)))
}

// appendOutcome is one successful append of the concurrent tests.
type appendOutcome struct {
	events []domain.Event
	res    domain.AppendResult
}

// concurrentAppends has writers append rounds batches each to random cases
// of cs, rereading a case after a conflict, and retrying some of their
// appends (same batch, same version). It returns the appends that were
// recorded (retries included, marked Duplicate).
func concurrentAppends(t *testing.T, s *Store, cs []domain.CaseID, writers, rounds int) []appendOutcome {
	t.Helper()
	ctx := t.Context()
	var (
		mu  sync.Mutex
		out []appendOutcome
		wg  sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				id := cs[rng.IntN(len(cs))]
				for {
					got, err := s.ReadCase(ctx, id, 0)
					if err != nil {
						errs <- err
						return
					}
					var after uint64
					var head domain.Hash
					if len(got) > 0 {
						after, head = got[len(got)-1].Sequence, got[len(got)-1].ChainHash
					}
					events := storetest.NewEvents(id, after, head, 1+rng.IntN(3))
					res, err := s.Append(ctx, after, events)
					if errors.Is(err, domain.ErrVersionConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					out = append(out, appendOutcome{events, res})
					mu.Unlock()
					if rng.IntN(4) == 0 {
						again, err := s.Append(ctx, after, events)
						if err != nil || !again.Duplicate || again.Version != res.Version || again.Position != res.Position {
							errs <- errors.New("retry: got " + describeResult(again) + ", want the original result " + describeResult(res))
							return
						}
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

func describeResult(r domain.AppendResult) string {
	return "version " + itoa(r.Version) + " position " + itoa(uint64(r.Position))
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// checkRecorded checks that the store holds exactly the recorded appends:
// each once, at the position and version its append returned, each case's
// chain whole, the global order increasing.
func checkRecorded(t *testing.T, s *Store, cs []domain.CaseID, out []appendOutcome) {
	t.Helper()
	ctx := t.Context()
	byID := make(map[uuid.UUID]domain.Event)
	var all []domain.Event
	for e, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > 0 && e.Position <= all[len(all)-1].Position {
			t.Fatalf("ReadAll: position %d after %d", e.Position, all[len(all)-1].Position)
		}
		if _, ok := byID[e.ID]; ok {
			t.Fatalf("event %s recorded twice", e.ID)
		}
		byID[e.ID] = e
		all = append(all, e)
	}
	n := 0
	for _, o := range out {
		n += len(o.events)
		last := o.events[len(o.events)-1]
		got, ok := byID[last.ID]
		if !ok {
			t.Fatalf("acknowledged event %s (case %s, sequence %d) not recorded", last.ID, last.CaseID, last.Sequence)
		}
		if got.Position != o.res.Position || got.Sequence != o.res.Version {
			t.Fatalf("event %s at position %d sequence %d, its append returned %d, %d", last.ID, got.Position, got.Sequence, o.res.Position, o.res.Version)
		}
		for _, e := range o.events {
			if d := storetest.DiffEvent(e, byID[e.ID]); d != "" {
				t.Fatal(d)
			}
		}
	}
	if n != len(all) {
		t.Fatalf("%d events recorded, %d acknowledged", len(all), n)
	}
	for _, id := range cs {
		events, err := s.ReadCase(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		v := domain.NewChainVerifier(id)
		for i, e := range events {
			if e.Sequence != uint64(i+1) {
				t.Fatalf("case %s: event %d has sequence %d", id, i, e.Sequence)
			}
			if err := v.Event(e); err != nil {
				t.Fatalf("case %s: %v", id, err)
			}
		}
	}
}

func newCases(n int) []domain.CaseID {
	cs := make([]domain.CaseID, n)
	for i := range cs {
		cs[i] = storetest.NewCase().ID
	}
	return cs
}

// TestGroupCommitConcurrentAppends has 32 writers append to 12 cases (many
// on the same case at once) with group commit at its most eager: appends
// share atomic batches, and every one is recorded once, where its result
// says, each case's conflicts found and its retries answered as the
// original.
func TestGroupCommitConcurrentAppends(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet), WithGroupCommit(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs := newCases(12)
	out := concurrentAppends(t, s, cs, 32, 15)
	checkRecorded(t, s, cs, out)
	st := s.GroupStats()
	if st.Batches == 0 || st.Appends < 2*st.Batches {
		t.Fatalf("group stats %+v: no appends shared a batch", st)
	}
	t.Logf("group stats: %+v", st)
}

// TestGroupCommitSplitsARefusedBatch makes batches fail as a whole: a
// second store appends to a case behind the first's back, so the first
// store's learnt head of it is stale and a batch holding it fails the
// server's per-subject check. Each append of a refused batch is then
// published alone: the others are recorded, the stale one finds its
// conflict.
func TestGroupCommitSplitsARefusedBatch(t *testing.T) {
	srv := startServer(t)
	a := openURL(t, srv.ClientURL(), WithGroupCommit(1))
	b := openURL(t, srv.ClientURL())
	ctx := t.Context()
	cs := newCases(16)
	known := make(map[domain.CaseID]*storetest.Case, len(cs)) // as a knows them
	for _, id := range cs {
		known[id] = &storetest.Case{ID: id, Head: domain.Genesis(id)}
	}
	var (
		mu  sync.Mutex
		out []appendOutcome
	)
	for round := 0; round < 200 && (round < 3 || a.GroupStats().Refused == 0); round++ {
		stale := cs[round%len(cs)]
		// b appends to one case behind a's back.
		got, err := b.ReadCase(ctx, stale, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := &storetest.Case{ID: stale, Head: domain.Genesis(stale)}
		if len(got) > 0 {
			c.Commit(got)
		}
		events := c.Next(1)
		res, err := b.Append(ctx, c.Version, events)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, appendOutcome{events, res})
		// a appends to every case at once, at the versions it knows.
		var wg sync.WaitGroup
		for _, id := range cs {
			k := known[id]
			wg.Go(func() {
				events := k.Next(1)
				res, err := a.Append(ctx, k.Version, events)
				switch {
				case id == stale:
					if !errors.Is(err, domain.ErrVersionConflict) {
						t.Errorf("append at a stale version: %+v, %v, want ErrVersionConflict", res, err)
					}
				case err != nil:
					t.Errorf("append: %v", err)
				default:
					k.Commit(events)
					mu.Lock()
					out = append(out, appendOutcome{events, res})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if got, err = a.ReadCase(ctx, stale, 0); err != nil {
			t.Fatal(err)
		}
		known[stale].Commit(got)
	}
	st := a.GroupStats()
	if st.Refused == 0 {
		t.Fatalf("no batch was refused in 200 rounds: %+v", st)
	}
	t.Logf("group stats: %+v", st)
	checkRecorded(t, a, cs, out)
}
