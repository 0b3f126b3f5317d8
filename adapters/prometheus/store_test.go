package prometheus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

var quiet = slog.New(slog.DiscardHandler)

// TestInstrumentedStoreConformance runs the store conformance suite through
// the decorator: measuring changes no outcome.
func TestInstrumentedStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		dir := t.TempDir()
		const window = time.Second
		open := func(t *testing.T) *jetstream.Store {
			t.Helper()
			s, err := jetstream.Open(t.Context(), jetstream.WithEmbedded(dir), jetstream.WithDedupWindow(window), jetstream.WithLogger(quiet))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return s
		}
		wrap := func(t *testing.T, s *jetstream.Store) *Store {
			t.Helper()
			m, err := InstrumentStore(s, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		current := wrap(t, open(t))
		t.Cleanup(func() {
			if err := current.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return storetest.Harness{
			Store: current,
			Restart: func(t *testing.T) domain.EventStore {
				if err := current.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				current = wrap(t, open(t))
				return current
			},
			DedupWindow: window,
		}
	})
}

func TestStoreMetricsCountOutcomes(t *testing.T) {
	js, err := jetstream.Open(t.Context(), jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := InstrumentStore(js, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	c := storetest.NewCase()
	first := c.Next(3)
	if _, err := s.Append(ctx, 0, first); err != nil {
		t.Fatal(err)
	}
	c.Commit(first)
	if res, err := s.Append(ctx, 0, first); err != nil || !res.Duplicate {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if _, err := s.Append(ctx, 0, storetest.NewCase().Next(0)); !errors.Is(err, domain.ErrInvalidBatch) {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := s.Append(ctx, 0, storetest.NewEvents(c.ID, 0, domain.Hash{}, 1)); !errors.Is(err, domain.ErrVersionConflict) {
		t.Fatalf("stale version: %v", err)
	}
	if _, err := s.ReadCase(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	s.ReadCase(canceled, c.ID, 0) // the caller gave up: not a store error

	want := map[string]float64{
		`maillage_store_appended_events_total`:      3,
		`maillage_store_append_conflicts_total`:     1,
		`maillage_store_read_all_events_total`:      float64(n),
		`maillage_store_read_case_duration_seconds`: 2,
	}
	for name, v := range want {
		if got := sampleValue(t, reg, name, nil); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	for outcome, v := range map[string]float64{OutcomeOK: 1, OutcomeDuplicate: 1, OutcomeInvalid: 1, OutcomeConflict: 1, OutcomeUnavailable: 0} {
		if got := sampleValue(t, reg, "maillage_store_append_duration_seconds", map[string]string{"outcome": outcome}); got != v {
			t.Errorf("appends with outcome %s: %v, want %v", outcome, got, v)
		}
	}
	if got := seriesCount(t, reg, "maillage_store_errors_total"); got != 0 {
		t.Errorf("%d store error series after no store error", got)
	}

	// A closed store fails: counted as unavailable.
	js.Close()
	if _, err := s.Append(ctx, 3, c.Next(1)); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("append on a closed store: %v", err)
	}
	if got := sampleValue(t, reg, "maillage_store_errors_total", map[string]string{"operation": "append", "kind": "unavailable"}); got != 1 {
		t.Errorf("store errors after a failed append: %v, want 1", got)
	}
}

// sampleValue returns a counter's value, or a histogram's sample count, of
// the series of name with the given labels (0 when absent).
func sampleValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func seriesCount(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}
