package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/maillage/maillage/domain"
)

// historyEvents is the default size of the rebuild and verify history.
const historyEvents = 1_000_000

// Verify measures hash-chain verification of every case (a
// domain.ChainVerifier per case, fed by ReadAll in global order) against
// the raw ordered read of the same stream.
func Verify(ctx context.Context, opts Options) (*Report, error) {
	return overHistory(ctx, opts, "verify", func(ctx context.Context, e *env, d *dataset) (Row, error) {
		return overAll(ctx, e, d, "verify (ReadAll + ChainVerifier)", func() func(domain.Event) error {
			verifiers := make(map[domain.CaseID]*domain.ChainVerifier)
			return func(ev domain.Event) error {
				v := verifiers[ev.CaseID]
				if v == nil {
					v = domain.NewChainVerifier(ev.CaseID)
					verifiers[ev.CaseID] = v
				}
				return v.Event(ev)
			}
		})
	})
}

// Rebuild measures folding every case's state (domain.State.Apply, as the
// write path's cache and the read models do) over ReadAll, against the raw
// ordered read of the same stream.
func Rebuild(ctx context.Context, opts Options) (*Report, error) {
	return overHistory(ctx, opts, "rebuild", func(ctx context.Context, e *env, d *dataset) (Row, error) {
		before := liveHeap()
		var mu sync.Mutex
		var shards []map[domain.CaseID]*domain.State
		row, err := overAll(ctx, e, d, "rebuild (ReadAll + State.Apply)", func() func(domain.Event) error {
			states := make(map[domain.CaseID]*domain.State)
			mu.Lock()
			shards = append(shards, states)
			mu.Unlock()
			return func(ev domain.Event) error {
				st := states[ev.CaseID]
				if st == nil {
					st = domain.NewState(ev.CaseID)
					states[ev.CaseID] = st
				}
				st.Apply(ev)
				return nil
			}
		})
		if err != nil {
			return row, err
		}
		row.HeapBytes = liveHeap()
		row.BytesPerEvent = float64(row.HeapBytes-min(before, row.HeapBytes)) / float64(d.events)
		folded := 0
		for _, states := range shards {
			folded += len(states)
		}
		if folded != len(d.cases) {
			return row, fmt.Errorf("rebuild folded %d cases, %d were written", folded, len(d.cases))
		}
		runtime.KeepAlive(shards)
		return row, nil
	})
}

// overHistory writes the generated history, then measures the raw ordered
// read and the phase over it.
func overHistory(ctx context.Context, opts Options, scenario string, phase func(context.Context, *env, *dataset) (Row, error)) (*Report, error) {
	opts = opts.withDefaults()
	if opts.Events <= 0 {
		opts.Events = historyEvents
	}
	e, err := openEnv(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	d, err := fill(ctx, e, opts.Events, false, scenario)
	if err != nil {
		return nil, err
	}
	batch := "whole case histories in one message each"
	switch {
	case opts.Batch == 1:
		batch = "one event per message, as commands store them"
	case opts.Batch > 1:
		batch = fmt.Sprintf("at most %d events per message", opts.Batch)
	}
	r := newReport(scenario, fmt.Sprintf("%d generated events in %d cases, %d messages (%s), embedded JetStream",
		d.events, len(d.cases), d.messages, batch))
	e.progress("%s: raw ordered read", scenario)
	raw, err := rawRead(ctx, e, d)
	if err != nil {
		return nil, err
	}
	e.progress("%s: measuring", scenario)
	row, err := phase(ctx, e, d)
	if err != nil {
		return nil, err
	}
	if row.HeapBytes == 0 {
		row.HeapBytes = liveHeap()
	}
	r.Rows = append(r.Rows, raw, row)
	r.Ratios = append(r.Ratios, ratio(scenario+" / raw ordered read", row.Rate/raw.Rate, 0.5, false))
	r.Notes = append(r.Notes, fmt.Sprintf("CPU per event (all cores, embedded server included): raw read %.2f us, %s %.2f us",
		raw.CPUPerOp, scenario, row.CPUPerOp))
	return r, nil
}
