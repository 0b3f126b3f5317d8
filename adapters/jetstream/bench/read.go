package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// readEvents is the default size of the read dataset.
const readEvents = 100_000

// timelinePage is the page a timeline read asks for: the API's default.
const timelinePage = 100

// Read measures timeline reads per viewer, as GET /v1/cases/{id}/timeline
// makes them (cases.Service.TimelineJSON: the case brought up to date with
// the store, the access policy evaluated now for the viewer, full, redacted
// or stub, encoded as JSON), by Readers concurrent readers, each picking a
// case and one of its readers (auditor, member, family member) at random,
// over a generated dataset held in the service's cache. Two more phases
// isolate our part: the same reads without the store's freshness check, and
// the policy with encoding/json over the views (the encoding every read did
// before TimelineJSON). It reports the memory the cache holds per event
// once the reads have run (events, states and the encoded full views).
func Read(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	if opts.Events <= 0 {
		opts.Events = readEvents
	}
	e, err := openEnv(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	d, err := fill(ctx, e, opts.Events, true, "read")
	if err != nil {
		return nil, err
	}
	store := &switchedStore{EventStore: e.store}
	load := func() (*cases.Service, error) {
		svc, err := cases.New(store, cases.WithCacheSize(len(d.cases)+1))
		if err != nil {
			return nil, err
		}
		for _, c := range d.cases {
			if _, _, err := svc.TimelineJSON(ctx, c.id, c.viewers[0], 0, 1); err != nil {
				return nil, err
			}
		}
		return svc, nil
	}
	// The memory a service holds is measured as the live heap with it less
	// the live heap once it is dropped, back to back, so that nothing else
	// moves in between (the embedded server's block cache, filled by the
	// loading, expires on its own clock).
	e.progress("read: loading %d cases, twice (the first to measure what they hold before any read)", len(d.cases))
	svc, err := load()
	if err != nil {
		return nil, err
	}
	withLoaded := liveHeap()
	svc = nil
	loaded := float64(withLoaded-min(withLoaded, liveHeap())) / float64(d.events)
	if svc, err = load(); err != nil {
		return nil, err
	}

	access := "embedded store, sole writer: reads trust the heads it learnt"
	if opts.Listen {
		access = "embedded store listening (--listen): every read asks it whether the case moved"
	}
	r := newReport("read", fmt.Sprintf("%d readers, %d generated events in %d cases, pages of %d events, %s, %s",
		opts.Readers, d.events, len(d.cases), timelinePage, opts.Duration, access))
	rnd := make([]*rand.Rand, opts.Readers)
	for w := range rnd {
		rnd[w] = rand.New(rand.NewPCG(uint64(opts.Seed), uint64(w)))
	}
	bufs := make([][]byte, opts.Readers) // as the HTTP handler reuses its buffers
	read := func(ctx context.Context, w, _ int) error {
		c := d.cases[rnd[w].IntN(len(d.cases))]
		body, _, err := svc.AppendTimelineJSON(ctx, bufs[w][:0], c.id, c.viewers[rnd[w].IntN(len(c.viewers))], 0, timelinePage)
		bufs[w] = body
		return err
	}
	e.progress("read: %d readers for %s", opts.Readers, opts.Duration)
	row, err := timed(ctx, "timeline read as JSON (cases.Service)", "read", opts.Readers, opts.Duration, read)
	if err != nil {
		return nil, err
	}
	e.progress("read: without the store's freshness check, %d readers for %s", opts.Readers, opts.Duration)
	store.skip.Store(true)
	ours, err := timed(ctx, "same, no store check (ours)", "read", opts.Readers, opts.Duration, read)
	store.skip.Store(false)
	if err != nil {
		return nil, err
	}

	// The same cases in the bench's own memory, for the encoding/json phase,
	// read from the store so that they share nothing with the service.
	type inMemory struct {
		st     *domain.State
		events []domain.Event
	}
	mem := make([]inMemory, len(d.cases))
	for i, c := range d.cases {
		events, err := e.store.ReadCase(ctx, c.id, 0)
		if err != nil {
			return nil, err
		}
		mem[i] = inMemory{domain.Fold(c.id, events), events}
	}
	e.progress("read: policy and encoding/json only, %d readers for %s", opts.Readers, opts.Duration)
	policy, err := timed(ctx, "policy + encoding/json of views", "read", opts.Readers, opts.Duration, func(ctx context.Context, w, _ int) error {
		i := rnd[w].IntN(len(d.cases))
		c, m := d.cases[i], mem[i]
		page := m.events[:min(len(m.events), timelinePage)]
		_, err := json.Marshal(domain.Timeline(m.st, c.viewers[rnd[w].IntN(len(c.viewers))], page, time.Now()))
		return err
	})
	if err != nil {
		return nil, err
	}
	clear(bufs) // the readers' buffers are not what the cache holds
	withService := liveHeap()
	svc, read = nil, nil
	perEvent := float64(withService-min(withService, liveHeap())) / float64(d.events)
	runtime.KeepAlive(mem) // measured in both figures
	row.BytesPerEvent = perEvent
	r.Rows = append(r.Rows, row, ours, policy)
	r.Ratios = append(r.Ratios,
		ratio("timeline read p99 ms", row.P99, 5, true),
		ratio("memory per event held, bytes", perEvent, 2048, true))
	r.Notes = append(r.Notes, fmt.Sprintf("memory per event held by the service once the cases are loaded, before the reads encoded their views: %.0f bytes", loaded))
	return r, nil
}

// switchedStore is the store, whose ReadCase finds nothing new while skip is
// set: the service then serves reads from its cache alone.
type switchedStore struct {
	domain.EventStore
	skip atomic.Bool
}

func (s *switchedStore) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	if s.skip.Load() {
		return nil, nil
	}
	return s.EventStore.ReadCase(ctx, id, after)
}
