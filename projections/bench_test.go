package projections

import (
	"context"
	"flag"
	"runtime"
	"testing"
	"time"
)

// The size of the rebuild benchmark; the documented 1M-event measurement is
// `maillage projections bench` (docs/projections.md), or:
//
//	go test ./projections -run '^$' -bench Rebuild -benchtime 1x -projections.events 1000000 -projections.cases 20000
var (
	benchEvents = flag.Int("projections.events", 20_000, "events generated for BenchmarkRebuild")
	benchCases  = flag.Int("projections.cases", 400, "cases generated for BenchmarkRebuild")
)

// BenchmarkRebuild loads generated cases into an embedded JetStream store
// (one append per case), then rebuilds the read models from it, reporting
// the rate and the heap the read models take.
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	store := mustStore(b)
	load, err := LoadGenerated(ctx, store, 1, *benchEvents, *benchCases, 2, nil)
	if err != nil {
		b.Fatal(err)
	}
	var (
		heap uint64
		took time.Duration
	)
	for b.Loop() {
		before := HeapInUse()
		r, err := NewRunner(store)
		if err != nil {
			b.Fatal(err)
		}
		stats, err := r.Rebuild(ctx, nil)
		if err != nil || stats.Events != load.Events {
			b.Fatalf("rebuilt %d events of %d: %v", stats.Events, load.Events, err)
		}
		took += stats.Took
		after := HeapInUse()
		heap = after - min(before, after)
		runtime.KeepAlive(r)
	}
	b.ReportMetric(float64(load.Events*b.N)/took.Seconds(), "events/s")
	b.ReportMetric(float64(heap)/(1<<20), "MiB-models")
	b.ReportMetric(float64(heap)/float64(load.Events), "B/event")
}
