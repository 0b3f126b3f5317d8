package generate

import (
	"reflect"
	"testing"

	"github.com/maillage/maillage/domain"
)

func TestHistoriesAreValidChainedAndVaried(t *testing.T) {
	g := New(Options{Seed: 7, EventsPerCase: 60})
	types := map[domain.EventType]int{}
	categories := map[domain.Category]int{}
	for range 50 {
		evs := g.Case()
		if len(evs) < 10 {
			t.Fatalf("a case of %d events", len(evs))
		}
		v := domain.NewChainVerifier(evs[0].CaseID)
		for _, e := range evs {
			if err := v.Event(e); err != nil {
				t.Fatal(err)
			}
			types[e.Type]++
			categories[e.Category]++
		}
	}
	for _, typ := range []domain.EventType{domain.PartnerJoined, domain.ConsentGiven, domain.ConsentWithdrawn, domain.JudicialRestrictionImposed,
		domain.PlacementChanged, domain.ObservationRecorded, domain.SynthesisMeetingHeld, domain.CrisisDeclared, domain.PartnerLeft} {
		if types[typ] == 0 {
			t.Errorf("no %s in 50 generated cases: %v", typ, types)
		}
	}
	if categories[domain.CategoryHealth] == 0 {
		t.Errorf("no health event: %v", categories)
	}
}

func TestSameSeedSameHistories(t *testing.T) {
	a, b := New(Options{Seed: 3}), New(Options{Seed: 3})
	for range 5 {
		if x, y := a.Case(), b.Case(); !reflect.DeepEqual(x, y) {
			t.Fatal("two generators with one seed made different cases")
		}
	}
	if reflect.DeepEqual(New(Options{Seed: 3}).Case(), New(Options{Seed: 4}).Case()) {
		t.Fatal("two seeds made the same case")
	}
}

func BenchmarkCase(b *testing.B) {
	g := New(Options{Seed: 1})
	n := 0
	for b.Loop() {
		n += len(g.Case())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
