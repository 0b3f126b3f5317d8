package personal

import (
	"crypto/rand"
	"testing"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// benchEvents are generated events of every type, as decided.
func benchEvents(b *testing.B) []domain.Event {
	g := generate.New(generate.Options{Seed: 1, EventsPerCase: 50})
	var evs []domain.Event
	for len(evs) < 10_000 {
		evs = append(evs, g.Case()...)
	}
	return evs
}

// BenchmarkSeal is the write path's cost per event (events without
// personal data included, as they come).
func BenchmarkSeal(b *testing.B) {
	evs := benchEvents(b)
	key := make([]byte, KeySize)
	rand.Read(key)
	b.ResetTimer()
	for i := range b.N {
		if _, err := Seal(evs[i%len(evs)], key, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is the read path's cost per event.
func BenchmarkOpen(b *testing.B) {
	evs := benchEvents(b)
	key := make([]byte, KeySize)
	rand.Read(key)
	for i := range evs {
		evs[i], _ = Seal(evs[i], key, rand.Reader)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := Open(evs[i%len(evs)], key); err != nil {
			b.Fatal(err)
		}
	}
}
