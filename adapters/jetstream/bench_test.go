package jetstream

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/storetest"
)

// fill appends msgs one-event messages over 16 cases, the cases in
// parallel.
func fill(b *testing.B, s *Store, msgs int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			c := storetest.NewCase()
			for range msgs / 16 {
				events := c.Next(1)
				if _, err := s.Append(ctx, c.Version, events); err != nil {
					b.Error(err)
					return
				}
				c.Commit(events)
			}
		})
	}
	wg.Wait()
}

func openBench(b *testing.B) *Store {
	s, err := Open(context.Background(), WithEmbedded(b.TempDir()), WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkReadAll reads 20k one-event messages with ReadAll.
func BenchmarkReadAll(b *testing.B) {
	const msgs = 20_000 / 16 * 16
	s := openBench(b)
	fill(b, s, msgs)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for _, err := range s.ReadAll(ctx, 0) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != msgs {
			b.Fatalf("read %d events, want %d", n, msgs)
		}
	}
	b.ReportMetric(float64(msgs*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReadAllRaw reads the same messages without decoding them: the
// ceiling of the transport.
func BenchmarkReadAllRaw(b *testing.B) {
	const msgs = 20_000 / 16 * 16
	s := openBench(b)
	fill(b, s, msgs)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := s.consume(ctx, "", 1, false, func(jetstream.Msg, uint64) error { n++; return nil })
		if err != nil || n != msgs {
			b.Fatalf("read %d msgs, %v", n, err)
		}
	}
	b.ReportMetric(float64(msgs*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppend appends one event at a time to one case (fsync included).
func BenchmarkAppend(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	c := storetest.NewCase()
	for b.Loop() {
		events := c.Next(1)
		if _, err := s.Append(ctx, c.Version, events); err != nil {
			b.Fatal(err)
		}
		c.Commit(events)
	}
}

// BenchmarkReadCase reads a case of 100 events in 50 messages.
func BenchmarkReadCase(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	c := storetest.NewCase()
	for range 50 {
		events := c.Next(2)
		if _, err := s.Append(ctx, c.Version, events); err != nil {
			b.Fatal(err)
		}
		c.Commit(events)
	}
	b.ResetTimer()
	for b.Loop() {
		events, err := s.ReadCase(ctx, c.ID, 0)
		if err != nil || len(events) != 100 {
			b.Fatal(len(events), err)
		}
	}
}
