package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventstore "github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// dataset is what fill wrote.
type dataset struct {
	events, messages int
	cases            []caseInfo // with viewers only when asked
}

// caseInfo is a generated case and who may read it.
type caseInfo struct {
	id      domain.CaseID
	events  int
	viewers []domain.Viewer
}

// fill writes a generated history of at least n events: cases from
// domain/generate (through the real decider, sealed and hash-chained), one
// generator per CPU, each case written by one of 64 writers through the
// store's Append, opts.Batch events per message (one by default, as
// commands store them). The store is reopened for the writing without an
// fsync per write (jetstream.WithUnsyncedWrites: a million fsyncs would
// take minutes, and what is measured after is reading), then reopened as
// the service runs it, fsync on every write. With viewers, each case's
// readers are listed (the auditor, every member and family member).
func fill(ctx context.Context, e *env, n int, viewers bool, what string) (*dataset, error) {
	if err := e.reopen(ctx, eventstore.WithUnsyncedWrites()); err != nil {
		return nil, err
	}
	d, err := fillUnsynced(ctx, e, n, viewers, what)
	if rerr := e.reopen(ctx); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// fillUnsynced is fill's writing, on the store reopened without fsync.
func fillUnsynced(ctx context.Context, e *env, n int, viewers bool, what string) (*dataset, error) {
	opts := e.opts
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	histories := make(chan []domain.Event, 64)
	var budget atomic.Int64
	budget.Store(int64(n))
	var gens sync.WaitGroup
	for g := range runtime.GOMAXPROCS(0) {
		gens.Go(func() {
			gen := generate.New(generate.Options{Seed: opts.Seed*1000 + int64(g), EventsPerCase: opts.EventsPerCase})
			for budget.Load() > 0 && ctx.Err() == nil {
				h := gen.Case()
				budget.Add(-int64(len(h)))
				select {
				case histories <- h:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { gens.Wait(); close(histories) }()

	d := &dataset{}
	var mu sync.Mutex
	var written, messages atomic.Int64
	start := time.Now()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				w := written.Load()
				e.progress("%s: written %d/%d events in %d messages, %s, %.0f events/s", what, w, n, messages.Load(),
					time.Since(start).Round(time.Second), float64(w)/time.Since(start).Seconds())
			}
		}
	}()
	var writers sync.WaitGroup
	for range 64 {
		writers.Go(func() {
			for h := range histories {
				msgs, err := appendHistory(ctx, e, h)
				if err != nil {
					cancel(err)
					continue
				}
				info := caseInfo{id: h[0].CaseID, events: len(h)}
				if viewers {
					info.viewers = caseViewers(h)
				}
				mu.Lock()
				d.cases = append(d.cases, info)
				mu.Unlock()
				written.Add(int64(len(h)))
				messages.Add(int64(msgs))
			}
		})
	}
	writers.Wait()
	close(done)
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	d.events, d.messages = int(written.Load()), int(messages.Load())
	e.progress("%s: %d events in %d cases, %d messages, written in %s", what, d.events, len(d.cases), d.messages, time.Since(start).Round(time.Millisecond))
	return d, nil
}

// appendHistory appends a whole case history, in one append or in appends
// of opts.Batch events.
func appendHistory(ctx context.Context, e *env, h []domain.Event) (int, error) {
	batch := e.opts.Batch
	if batch == WholeCase {
		batch = len(h)
	}
	msgs := 0
	for k := 0; k < len(h); k += batch {
		if _, err := e.store.Append(ctx, uint64(k), h[k:min(k+batch, len(h))]); err != nil {
			return msgs, fmt.Errorf("append case %s at %d: %w", h[0].CaseID, k, err)
		}
		msgs++
	}
	return msgs, nil
}

// caseViewers lists who may read a case: the auditor, every institution
// that was a member, every recorded family member.
func caseViewers(h []domain.Event) []domain.Viewer {
	st := domain.Fold(h[0].CaseID, h)
	vs := []domain.Viewer{{Role: domain.RoleAuditor}}
	for id := range st.Members {
		vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: id})
	}
	for id := range st.Family {
		vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: id})
	}
	return vs
}

// rawRead reads the whole events stream with an ordered consumer, as the
// store's ReadAll does (same consumer, same pull size), without decoding:
// the transport's rate on these very messages.
func rawRead(ctx context.Context, e *env, d *dataset) (Row, error) {
	stream, err := e.store.JetStream().Stream(ctx, e.store.StreamName())
	if err != nil {
		return Row{}, err
	}
	cpu := cpuTime()
	start := time.Now()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute})
	if err != nil {
		return Row{}, err
	}
	pending := cons.CachedInfo().NumPending
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return Row{}, err
	}
	defer it.Stop()
	var msgs, bytes uint64
	for msgs < pending {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return Row{}, err
		}
		if _, err := m.Metadata(); err != nil { // the store reads the stream sequence of every message
			return Row{}, err
		}
		bytes += uint64(len(m.Data()))
		msgs++
	}
	elapsed := time.Since(start)
	cpu = cpuTime() - cpu
	if int(msgs) != d.messages {
		return Row{}, fmt.Errorf("raw read %d messages, %d were written", msgs, d.messages)
	}
	e.progress("raw ordered read: %d messages, %d MiB in %s (%.0f msgs/s)", msgs, bytes>>20, elapsed.Round(time.Millisecond), float64(msgs)/elapsed.Seconds())
	return Row{Phase: "raw ordered read (no decoding)", Unit: "event", Ops: int64(d.events), Seconds: elapsed.Seconds(),
		Rate: float64(d.events) / elapsed.Seconds(), CPUPerOp: cpuPerOp(cpu, int64(d.events)), HeapBytes: liveHeap()}, nil
}

// overAll reads every event of the store in global order (ReadAll) and
// hands it to one of GOMAXPROCS workers, always the same for a case, so
// that each case's events reach their worker in order and the work spreads
// over the cores while this goroutine decodes. newWorker makes a worker's
// function, called from that worker only.
func overAll(ctx context.Context, e *env, d *dataset, phase string, newWorker func() func(domain.Event) error) (Row, error) {
	const batch = 512
	workers := runtime.GOMAXPROCS(0)
	queues := make([]chan []domain.Event, workers)
	var n, breaks atomic.Int64
	failed := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan []domain.Event, 16)
		fn := newWorker()
		wg.Go(func() {
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("phase", phase)))
			var werr error
			for events := range queues[w] {
				if werr != nil {
					continue
				}
				for _, ev := range events {
					if err := fn(ev); err != nil {
						var brk *domain.ChainBreak
						if !errors.As(err, &brk) {
							werr = err
							failed <- err
							break
						}
						breaks.Add(1)
					}
				}
				n.Add(int64(len(events)))
			}
		})
	}
	defer pprof.SetGoroutineLabels(ctx)
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("phase", phase+" (reading)")))
	cpu := cpuTime()
	start := time.Now()
	pending := make([][]domain.Event, workers)
	var readErr error
	for ev, err := range e.store.ReadAll(ctx, 0) {
		if err != nil {
			readErr = err
			break
		}
		w := int(ev.CaseID[15]) % workers
		pending[w] = append(pending[w], ev)
		if len(pending[w]) == batch {
			queues[w] <- pending[w]
			pending[w] = make([]domain.Event, 0, batch)
		}
	}
	for w, q := range queues {
		if len(pending[w]) > 0 {
			q <- pending[w]
		}
		close(q)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu = cpuTime() - cpu
	close(failed)
	if readErr != nil {
		return Row{}, readErr
	}
	if err := <-failed; err != nil {
		return Row{}, err
	}
	if int(n.Load()) != d.events {
		return Row{}, fmt.Errorf("%s read %d events, %d were written", phase, n.Load(), d.events)
	}
	return Row{Phase: phase, Unit: "event", Ops: n.Load(), Errors: breaks.Load(), Seconds: elapsed.Seconds(),
		Rate: float64(n.Load()) / elapsed.Seconds(), CPUPerOp: cpuPerOp(cpu, n.Load())}, nil
}
