package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// Appender is the part of the event store LoadGenerated writes with.
type Appender interface {
	Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error)
}

// LoadStats describe a load of generated data.
type LoadStats struct {
	Cases  int
	Events int
	Took   time.Duration
}

// LoadGenerated fills a store with generated case histories for rebuild
// measurements: at least `cases` cases and at least `events` events (cases
// are made, with a mean length of events/cases, until both are reached;
// some close before their target length). Each case is made by
// domain/generate (through the real decider, hash-chained) and its whole
// history stored with one Append (one message in the JetStream store). Case
// i is made by generator i mod workers, seeded seed + that number: the same
// arguments give the same data. progress, when set, is called with the
// events stored so far.
func LoadGenerated(ctx context.Context, store Appender, seed int64, events, cases, workers int, progress func(events int)) (LoadStats, error) {
	if cases < 1 || events < cases {
		return LoadStats{}, fmt.Errorf("projections: load %d events in %d cases: want at least one case and one event per case", events, cases)
	}
	workers = max(1, min(workers, cases))
	gens := make([]*generate.Generator, workers)
	for w := range gens {
		gens[w] = generate.New(generate.Options{Seed: seed + int64(w), EventsPerCase: events / cases})
	}
	start := time.Now()
	var stored atomic.Int64
	made := 0
	for made < cases || int(stored.Load()) < events {
		batch := workers // after the first cases, a case per generator at a time
		if made < cases {
			batch = cases - made
		}
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := made + (w-made%workers+workers)%workers; i < made+batch; i += workers {
					if ctx.Err() != nil {
						errs[w] = ctx.Err()
						return
					}
					history := gens[w].Case()
					if _, err := store.Append(ctx, 0, history); err != nil {
						errs[w] = fmt.Errorf("case %d: %w", i, err)
						return
					}
					n := stored.Add(int64(len(history)))
					if progress != nil {
						progress(int(n))
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return LoadStats{}, err
		}
		made += batch
	}
	return LoadStats{Cases: made, Events: int(stored.Load()), Took: time.Since(start)}, nil
}

// HeapInUse returns the bytes of heap in use after a garbage collection
// (runtime.MemStats.HeapInuse).
func HeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// ReadTimings are the mean durations of reads over the loaded models.
type ReadTimings struct {
	Samples              int
	Plan                 time.Duration
	Chronology           time.Duration
	WhoSeesWhat          time.Duration
	CaseDeadlines        time.Duration
	InstitutionDeadlines time.Duration // of the institution with the most cases
	Institution          domain.InstitutionID
	InstitutionCases     int
	Observatory          time.Duration
}

// MeasureReads times reads of `samples` cases as their coordinator, and the
// reads across cases, on a started or rebuilt runner.
func (r *Runner) MeasureReads(ctx context.Context, samples int) (ReadTimings, error) {
	m := r.m()
	ids := m.caseIDs()
	if len(ids) == 0 {
		return ReadTimings{}, errors.New("projections: no case to read")
	}
	t := ReadTimings{Samples: min(samples, len(ids))}
	var plan, chrono, who, dl time.Duration
	for i := range t.Samples {
		id := ids[i*len(ids)/t.Samples]
		c := m.get(id)
		c.mu.Lock()
		if err := m.warmLocked(c); err != nil {
			c.mu.Unlock()
			return t, err
		}
		v := domain.Viewer{Role: domain.RoleProfessional, Institution: c.state.Coordinator}
		c.mu.Unlock()
		o := ReadOptions{}
		start := time.Now()
		if _, err := r.Plan(ctx, id, v, o); err != nil {
			return t, err
		}
		plan += time.Since(start)
		start = time.Now()
		if _, err := r.Chronology(ctx, id, v, o); err != nil {
			return t, err
		}
		chrono += time.Since(start)
		start = time.Now()
		if _, err := r.WhoSeesWhat(ctx, id, v, o); err != nil {
			return t, err
		}
		who += time.Since(start)
		start = time.Now()
		if _, err := r.CaseDeadlines(ctx, id, v, o); err != nil {
			return t, err
		}
		dl += time.Since(start)
	}
	n := time.Duration(t.Samples)
	t.Plan, t.Chronology, t.WhoSeesWhat, t.CaseDeadlines = plan/n, chrono/n, who/n, dl/n
	m.mu.RLock()
	for inst, set := range m.members {
		if len(set) > t.InstitutionCases {
			t.Institution, t.InstitutionCases = inst, len(set)
		}
	}
	m.mu.RUnlock()
	start := time.Now()
	if _, err := r.InstitutionDeadlines(ctx, t.Institution, ReadOptions{}); err != nil {
		return t, err
	}
	t.InstitutionDeadlines = time.Since(start)
	start = time.Now()
	if _, err := r.Observatory(ctx, ReadOptions{}); err != nil {
		return t, err
	}
	t.Observatory = time.Since(start)
	return t, nil
}
