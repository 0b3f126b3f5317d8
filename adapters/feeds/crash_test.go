package feeds

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// workload records, on three cases, what makes the relay do all it does:
// first deliveries, stubs, back-fills, reveals, retracts (with erasure),
// a member leaving, and changes of access after a member left (a retract
// naming its leaving, a reveal it does not get). part 0 and part 1 are
// recorded at different times.
type workload struct {
	e       *env
	cases   []domain.CaseID
	mothers []domain.PersonID
	consent []uuid.UUID
}

func (w *workload) part(n int) {
	e := w.e
	switch n {
	case 0:
		for i := range 3 {
			id, mother := e.openCase(mecs, ditep)
			w.cases, w.mothers = append(w.cases, id), append(w.mothers, mother)
			e.observe(id, ditep, domain.CategoryHealth, fmt.Sprintf("Bilan %d.", i))
			e.observe(id, mecs, domain.CategoryDailyLife, "Semaine calme.")
			w.consent = append(w.consent, e.giveConsent(id, mother, mecs, 30*24*time.Hour))
			e.observe(id, ditep, domain.CategoryHealth, "Traitement ajusté.")
		}
	case 1:
		for i, id := range w.cases {
			e.join(id, school)
			if i == 2 {
				// Leaves holding health under the consent.
				e.record(id, ase, "", &domain.PartnerLeftPayload{Institution: mecs, Reason: "fin d'accueil"})
			}
			e.withdrawConsent(id, w.mothers[i], w.consent[i])
			e.observe(id, school, domain.CategoryDailyLife, "Absences.")
			if i == 1 {
				e.record(id, ase, "", &domain.PartnerLeftPayload{Institution: mecs, Reason: "fin d'accueil"})
			}
			e.observe(id, ditep, domain.CategoryHealth, "Nouveau bilan.")
			if i == 2 {
				e.giveConsent(id, w.mothers[i], mecs, 30*24*time.Hour) // no reveal for a former member
				e.observe(id, school, domain.CategoryDailyLife, "Retour en classe.")
			}
		}
	}
}

var workloadMembers = []domain.InstitutionID{ase, mecs, ditep, school}

func (w *workload) check() {
	for _, id := range w.cases {
		for _, inst := range workloadMembers {
			w.e.checkFeed(inst, id)
		}
	}
}

// sameAs checks that every member's feed holds, case by case, the same
// messages as in the reference run (same kinds, sequences, causes and
// views), and that as many messages were ever published to it (a
// duplicate erased later would still count).
func (w *workload) sameAs(t *testing.T, ref *workload) {
	t.Helper()
	for _, inst := range workloadMembers {
		got, want := w.e.feed(inst), ref.e.feed(inst)
		if gl, wl := lastSeq(t, w.e, inst), lastSeq(t, ref.e, inst); gl != wl {
			t.Errorf("%s: %d messages published, %d without crashes", inst, gl, wl)
		}
		for i := range w.cases {
			g, r := summary(got, w.cases[i]), summary(want, ref.cases[i])
			if g != r {
				t.Errorf("%s, case %d:\n got %s\nwant %s", inst, i, g, r)
			}
		}
	}
}

func summary(msgs []feedMsg, id domain.CaseID) string {
	s := ""
	for _, m := range msgs {
		if m.CaseID == id {
			s += fmt.Sprintf("%s:%d/%d/%s ", m.Kind, m.Sequence, m.Cause, m.View.Visibility)
		}
	}
	return s
}

func lastSeq(t *testing.T, e *env, inst domain.InstitutionID) uint64 {
	t.Helper()
	js, _ := njs.New(e.feeds.Conn())
	stream, err := js.Stream(e.ctx, StreamName(inst))
	if err != nil {
		t.Fatal(err)
	}
	return stream.CachedInfo().State.LastSeq
}

// runUntilCaughtUp runs relays that stop dead the n-th time they reach
// point, starting a new one after each crash, until one relays everything
// recorded. n is every for the first relay and grows by every with each
// crash, so that relays that crash before their first checkpoint still get
// further each time. It returns how many crashed.
func runUntilCaughtUp(t *testing.T, e *env, point crashPoint, every int64, opts ...Option) int {
	t.Helper()
	crashes := 0
	for {
		var reached atomic.Int64
		at := every * int64(crashes+1)
		r := e.newRelay(append(opts, withCrash(func(p crashPoint, _ domain.Event) bool {
			return p == point && reached.Add(1) == at
		}))...)
		ctx, cancel := context.WithCancel(e.ctx)
		ended := make(chan error, 1)
		go func() { ended <- r.Run(ctx) }()
		caught := make(chan error, 1)
		go func() { caught <- r.WaitFor(ctx, e.last) }()
		select {
		case err := <-ended:
			cancel()
			if !errors.Is(err, errCrashed) {
				t.Fatalf("relay ended with %v", err)
			}
			crashes++
		case err := <-caught:
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if err := <-ended; err != nil && !errors.Is(err, errCrashed) {
				t.Fatal(err)
			}
			return crashes
		case <-time.After(60 * time.Second):
			cancel()
			t.Fatalf("relay neither crashed nor caught up (at %d, want %d)", r.Done(), e.last)
		}
		if crashes > 500 {
			t.Fatal("no progress")
		}
	}
}

// Given a relay that stops dead at some point (before a publish, after a
// publish, after an event, after a checkpoint) again and again, and is
// started again each time, then every member's feed ends exactly as if it
// had never stopped: each sequence sent once, in order, reveals and
// retracts as due, retracted content erased.
func TestRelayCrashesLoseAndDuplicateNothing(t *testing.T) {
	points := []struct {
		name   string
		point  crashPoint
		everys []int64
	}{
		{"beforePublish", crashBeforePublish, []int64{3, 17}},
		{"afterPublish", crashAfterPublish, []int64{3, 17}},
		{"afterEvent", crashAfterEvent, []int64{2, 7}},
		{"afterCheckpoint", crashAfterCheckpoint, []int64{1, 3}},
	}
	// Checkpoints every millisecond, so that a relay reaches its n-th one
	// well before it catches up.
	often := WithCheckpointEvery(time.Millisecond)
	ref := &workload{e: newEnv(t)}
	ref.part(0)
	runUntilCaughtUp(t, ref.e, crashBeforePublish, 1<<40)
	ref.part(1)
	runUntilCaughtUp(t, ref.e, crashBeforePublish, 1<<40)
	ref.check()
	for _, p := range points {
		name, point := p.name, p.point
		for _, every := range p.everys {
			t.Run(fmt.Sprintf("%s/every%d", name, every), func(t *testing.T) {
				e := newEnv(t)
				w := &workload{e: e}
				w.part(0)
				crashes := runUntilCaughtUp(t, e, point, every, often)
				w.part(1)
				crashes += runUntilCaughtUp(t, e, point, every, often)
				if crashes == 0 {
					t.Fatal("the relay never crashed: the test tests nothing")
				}
				w.check()
				w.sameAs(t, ref)
			})
		}
	}
}

// Given the feed server shut down while the relay publishes, when the
// server and a relay start again on the same files, then nothing is lost
// and nothing duplicated.
func TestFeedServerKilledMidStream(t *testing.T) {
	e := newEnv(t)
	w := &workload{e: e}
	w.part(0)
	w.part(1)
	ref := &workload{e: newEnv(t)}
	ref.part(0)
	ref.part(1)
	runUntilCaughtUp(t, ref.e, crashBeforePublish, 1<<40)
	var published atomic.Int64
	killed := make(chan struct{})
	r := e.newRelay(withCrash(func(p crashPoint, _ domain.Event) bool {
		if p == crashAfterPublish && published.Add(1) == 40 {
			go func() { e.feeds.NATS().Shutdown(); close(killed) }()
		}
		return false
	}))
	r.Start()
	<-killed
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	e.feeds.Close()
	e.startFeeds()
	r = e.startRelay()
	e.wait(r)
	w.check()
	w.sameAs(t, ref)
}
