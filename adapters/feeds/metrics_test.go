package feeds

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/maillage/maillage/domain"
)

// memoryLog is an access log in memory that can be made to fail or to
// hold deliveries until released.
type memoryLog struct {
	mu      sync.Mutex
	records []domain.AccessRecord
	fail    error
	gate    chan struct{} // when not nil, Record waits for it to be closed
}

func (l *memoryLog) Record(ctx context.Context, r domain.AccessRecord) error {
	l.mu.Lock()
	gate, fail := l.gate, l.fail
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}

func (l *memoryLog) set(fail error, gate chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail, l.gate = fail, gate
}

func (l *memoryLog) byInstitution(inst domain.InstitutionID) []domain.AccessRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.AccessRecord
	for _, r := range l.records {
		if r.Institution == inst {
			out = append(out, r)
		}
	}
	return out
}

// metric returns the value of a metric with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// Given a relay held up by its access log, its lag shows the events not yet
// relayed; once released, it is caught up, has counted what it published
// and retracted per partner, and has recorded each delivery of content in
// the access log. No metric label holds a case id.
func TestRelayMetricsAndAccessLog(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	log := &memoryLog{}
	gate := make(chan struct{})
	log.set(nil, gate)
	r := e.startRelay(WithRegisterer(reg), WithAccessLog(log), withLagEvery(10*time.Millisecond))
	id, mother := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")

	deadline := time.Now().Add(20 * time.Second)
	for metric(t, reg, "maillage_feed_relay_lag_events", nil) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %v events, want at least 5 while the relay is held", metric(t, reg, "maillage_feed_relay_lag_events", nil))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := metric(t, reg, "maillage_feed_relay_lag_seconds", nil); s <= 0 {
		t.Errorf("lag %v seconds while held, want more than 0", s)
	}
	close(gate)
	consent := e.giveConsent(id, mother, mecs, 24*time.Hour)
	e.withdrawConsent(id, mother, consent)
	e.wait(r)
	for metric(t, reg, "maillage_feed_relay_lag_events", nil) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("lag does not come back to 0")
		}
		time.Sleep(5 * time.Millisecond)
	}

	for _, inst := range []domain.InstitutionID{mecs, ditep, ase} {
		mine := e.checkFeed(inst, id)
		counts := map[Kind]float64{}
		content := 0
		for _, m := range mine {
			counts[m.Kind]++
			if m.Kind != KindRetract && m.View.Visibility != domain.Hidden {
				content++
			}
		}
		// The feed no longer holds the revealed message (erased), but it was
		// published and delivered.
		if inst == mecs {
			counts[KindReveal]++
			content++
		}
		for _, k := range []Kind{KindEvent, KindReveal, KindRetract} {
			if got := metric(t, reg, "maillage_feed_published_total", map[string]string{"institution": string(inst), "kind": string(k)}); got != counts[k] {
				t.Errorf("%s: published_total{kind=%s} = %v, want %v", inst, k, got, counts[k])
			}
		}
		if got := metric(t, reg, "maillage_feed_retracted_total", map[string]string{"institution": string(inst)}); got != counts[KindRetract] {
			t.Errorf("%s: retracted_total = %v, want %v", inst, got, counts[KindRetract])
		}
		recs := log.byInstitution(inst)
		if len(recs) != content {
			t.Errorf("%s: %d access records, want %d (one per delivery of content)", inst, len(recs), content)
		}
		for _, rec := range recs {
			if rec.Kind != domain.AccessFeed || rec.CaseID != id || rec.FromSequence != rec.ToSequence || rec.Role != domain.RoleProfessional {
				t.Errorf("%s: access record %+v", inst, rec)
			}
		}
	}
	families, _ := reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), id.String()) {
					t.Errorf("metric %s has the case id in label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
}

// Given an access log that fails, the relay delivers nothing, then delivers
// everything once the log works again.
func TestNoDeliveryWithoutAccessRecord(t *testing.T) {
	e := newEnv(t)
	log := &memoryLog{}
	log.set(errors.New("access log unavailable"), nil)
	r := e.startRelay(WithAccessLog(log))
	id, _ := e.openCase(mecs)
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(ctx, e.last); err == nil {
		t.Fatal("relayed while the access log fails")
	}
	if got := e.feed(mecs); len(got) != 0 {
		t.Fatalf("%d messages delivered without access records", len(got))
	}
	log.set(nil, nil)
	e.wait(r)
	e.checkFeed(mecs, id)
	if n := len(log.byInstitution(mecs)); n != 3 {
		t.Fatalf("%d access records, want 3", n)
	}
}
