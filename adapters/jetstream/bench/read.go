package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// readEvents is the default size of the read dataset.
const readEvents = 100_000

// timelinePage is the page a timeline read asks for: the API's default.
const timelinePage = 100

// Read measures timeline reads per viewer (cases.Service.Timeline: the
// case's events, the access policy evaluated now for the viewer, full,
// redacted or stub) by Readers concurrent readers, each picking a case and
// one of its readers (auditor, member, family member) at random, over a
// generated dataset held in the service's cache. It reports the memory the
// cache holds per event.
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
	svc, err := cases.New(e.store, cases.WithCacheSize(len(d.cases)+1))
	if err != nil {
		return nil, err
	}
	e.progress("read: loading %d cases", len(d.cases))
	before := liveHeap()
	for _, c := range d.cases {
		if _, err := svc.Timeline(ctx, c.id, c.viewers[0], 0, 1); err != nil {
			return nil, err
		}
	}
	held := liveHeap()
	perEvent := float64(held-min(before, held)) / float64(d.events)
	// The same cases in the bench's own memory, for the policy-only phase.
	type inMemory struct {
		st     *domain.State
		events []domain.Event
	}
	mem := make([]inMemory, len(d.cases))
	for i, c := range d.cases {
		st, events, err := svc.Load(ctx, c.id)
		if err != nil {
			return nil, err
		}
		mem[i] = inMemory{st, events}
	}

	r := newReport("read", fmt.Sprintf("%d readers, %d generated events in %d cases, pages of %d events, %s",
		opts.Readers, d.events, len(d.cases), timelinePage, opts.Duration))
	e.progress("read: %d readers for %s", opts.Readers, opts.Duration)
	rnd := make([]*rand.Rand, opts.Readers)
	for w := range rnd {
		rnd[w] = rand.New(rand.NewPCG(uint64(opts.Seed), uint64(w)))
	}
	row, err := timed(ctx, "timeline read + JSON (cases.Service)", "read", opts.Readers, opts.Duration, func(ctx context.Context, w, _ int) error {
		c := d.cases[rnd[w].IntN(len(d.cases))]
		t, err := svc.Timeline(ctx, c.id, c.viewers[rnd[w].IntN(len(c.viewers))], 0, timelinePage)
		if err != nil {
			return err
		}
		_, err = json.Marshal(t)
		return err
	})
	if err != nil {
		return nil, err
	}
	row.BytesPerEvent = perEvent
	e.progress("read: policy and JSON only, %d readers for %s", opts.Readers, opts.Duration)
	policy, err := timed(ctx, "policy + JSON only (no store read)", "read", opts.Readers, opts.Duration, func(ctx context.Context, w, _ int) error {
		i := rnd[w].IntN(len(d.cases))
		c, m := d.cases[i], mem[i]
		page := m.events[:min(len(m.events), timelinePage)]
		_, err := json.Marshal(domain.Timeline(m.st, c.viewers[rnd[w].IntN(len(c.viewers))], page, time.Now()))
		return err
	})
	if err != nil {
		return nil, err
	}
	runtime.KeepAlive(svc) // the heap measured after the phases holds them
	runtime.KeepAlive(mem)
	r.Rows = append(r.Rows, row, policy)
	r.Ratios = append(r.Ratios,
		ratio("timeline read p99 ms", row.P99, 5, true),
		ratio("memory per event held, bytes", perEvent, 2048, true))
	return r, nil
}
