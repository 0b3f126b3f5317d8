package accesslog_test

import (
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
)

// BenchmarkRecord64 records from 64 goroutines at once, on the embedded
// server (an fsync per write): with group commit, and with one publish per
// record as before it. Reported: records/s, p50 and p99 of Record.
func BenchmarkRecord64(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []accesslog.Option
	}{{"group", nil}, {"walonly", []accesslog.Option{accesslog.WithoutIndexing()}}, {"serial", []accesslog.Option{accesslog.WithoutGroupCommit()}}} {
		b.Run(mode.name, func(b *testing.B) {
			store, err := jetstream.Open(b.Context(), jetstream.WithEmbedded(b.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			log, err := accesslog.Open(b.Context(), store.JetStream(), mode.opts...)
			if err != nil {
				b.Fatal(err)
			}
			cases := make([]uuid.UUID, 256)
			for i := range cases {
				cases[i] = uuid.New()
			}
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				i := 0
				for pb.Next() {
					i++
					r := domain.AccessRecord{Kind: domain.AccessTimeline, CaseID: cases[i%len(cases)], FromSequence: 1, ToSequence: 40,
						Principal: uuid.New(), Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: "préparation de la synthèse"}
					t0 := time.Now()
					if err := log.Record(b.Context(), r); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			el := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/el.Seconds(), "records/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
