package feeds

import (
	"testing"
	"time"

	"github.com/maillage/maillage/domain"
)

// Given a consent that let the children's home see a health observation,
// when the consent runs out and nothing else is recorded on the case, then
// the relay retracts the observation from the home's feed on its own (the
// policy evaluated again at the consent's end), also when it was restarted
// in between and knows the case only from its boundary bucket.
func TestAConsentThatRunsOutIsRetractedWithoutANewEvent(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay(WithBoundaryEvery(20 * time.Millisecond))
	id, mother := e.openCase(mecs, ditep)
	e.giveConsent(id, mother, mecs, time.Hour)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.wait(r)
	health := e.healthSequence(id)
	if v := e.held(mecs, id, health); v != domain.Full {
		t.Fatalf("under consent the home holds the observation as %s", v)
	}

	e.clock.Advance(2 * time.Hour)
	e.waitHeld(mecs, id, health, domain.Hidden)
	e.checkFeed(mecs, id)

	// A second consent, relayed; the relay stops; the consent runs out; a
	// new relay (nothing to relay: its checkpoint is past every event) is
	// told by the bucket.
	e.giveConsent(id, mother, mecs, time.Hour)
	e.wait(r)
	e.waitHeld(mecs, id, health, domain.Full)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	e.startRelay(WithBoundaryEvery(20 * time.Millisecond))
	e.waitHeld(mecs, id, health, domain.Hidden)
	e.checkFeed(mecs, id)
}

// healthSequence returns the sequence of the case's health observation.
func (e *env) healthSequence(id domain.CaseID) uint64 {
	e.t.Helper()
	_, events, err := e.svc.Load(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Category == domain.CategoryHealth {
			return ev.Sequence
		}
	}
	e.t.Fatal("no health event")
	return 0
}

// held returns how inst holds sequence seq of a case after applying its feed.
func (e *env) held(inst domain.InstitutionID, id domain.CaseID, seq uint64) domain.Visibility {
	return holds(e.feed(inst))[id][seq].Visibility
}

// waitHeld waits until inst holds sequence seq of a case as want.
func (e *env) waitHeld(inst domain.InstitutionID, id domain.CaseID, seq uint64, want domain.Visibility) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := e.held(inst, id, seq)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s holds sequence %d as %s, want %s", inst, seq, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
