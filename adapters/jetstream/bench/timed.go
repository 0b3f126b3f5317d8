package bench

import (
	"context"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// meter measures an operation over one or more timed runs.
type meter struct {
	phase, unit string
	ops, errs   int64
	elapsed     time.Duration
	cpu         time.Duration
	lat         []latencies
}

// run runs op from workers goroutines for d (each finishes the op it is
// in), adding to the meter. op gets the worker's number and a per-worker
// counter. Errors are counted, not returned; run fails only when ctx ends.
func (m *meter) run(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, worker, i int) error) error {
	lat := make([]latencies, workers)
	var ops, errs atomic.Int64
	cpu := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		// Labelled, so that a profile (--cpuprofile) can be cut by phase:
		// go tool pprof -tagfocus phase=... .
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels("phase", m.phase), func(ctx context.Context) { m.work(ctx, w, deadline, op, lat, &ops, &errs) })
		})
	}
	wg.Wait()
	m.elapsed += time.Since(start)
	m.cpu += cpuTime() - cpu
	m.ops += ops.Load()
	m.errs += errs.Load()
	m.lat = append(m.lat, lat...)
	return ctx.Err()
}

// work is one of run's workers.
func (m *meter) work(ctx context.Context, w int, deadline time.Time, op func(ctx context.Context, worker, i int) error, lat []latencies, ops, errs *atomic.Int64) {
	l := make(latencies, 0, 1024)
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		t := time.Now()
		if err := op(ctx, w, i); err != nil {
			errs.Add(1)
			continue
		}
		l = append(l, time.Since(t))
		ops.Add(1)
	}
	lat[w] = l
}

// row is the meter's measurements.
func (m *meter) row() Row {
	row := Row{Phase: m.phase, Unit: m.unit, Ops: m.ops, Errors: m.errs, Seconds: m.elapsed.Seconds()}
	if m.elapsed > 0 {
		row.Rate = float64(m.ops) / m.elapsed.Seconds()
	}
	row.P50, row.P95, row.P99 = percentiles(m.lat)
	row.CPUPerOp = cpuPerOp(m.cpu, m.ops)
	row.HeapBytes = liveHeap()
	return row
}

// timed measures op in one run of d.
func timed(ctx context.Context, phase, unit string, workers int, d time.Duration, op func(ctx context.Context, worker, i int) error) (Row, error) {
	m := &meter{phase: phase, unit: unit}
	if err := m.run(ctx, workers, d, op); err != nil {
		return Row{}, err
	}
	return m.row(), nil
}
