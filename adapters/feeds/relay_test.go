package feeds

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Given a case with a children's home, a DITEP (care) and a school, when the
// DITEP records health information, then each member's feed holds every
// sequence once, in order, as the policy lets it see it: the DITEP in full,
// the others as stubs; an institution that is not a member gets nothing.
func TestRelayDeliversWhatEachMemberMaySee(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, _ := e.openCase(mecs, ditep, school)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique : anxiété importante aux transitions.")
	e.observe(id, mecs, domain.CategoryDailyLife, "A repris le football le mercredi.")
	e.wait(r)

	for _, inst := range []domain.InstitutionID{ase, mecs, ditep, school, aed} {
		e.checkFeed(inst, id)
	}
	health := uint64(6) // opened, mother, three joined, then the observation
	for inst, want := range map[domain.InstitutionID]domain.Visibility{ditep: domain.Full, mecs: domain.Hidden, school: domain.Hidden, ase: domain.Hidden} {
		got := holds(e.feed(inst))[id][health]
		if got.Visibility != want {
			t.Errorf("%s holds the health observation as %s, want %s", inst, got.Visibility, want)
		}
		if want == domain.Hidden && (got.Payload != nil || got.Type != "" || got.Actor != nil) {
			t.Errorf("%s: the stub carries more than sequence and hashes: %+v", inst, got)
		}
	}
	if got := e.feed(aed); len(got) != 0 {
		t.Errorf("a non-member got %d messages", len(got))
	}
}

// Given a health observation hidden from the children's home, when the
// mother consents, then the home receives it ("reveal"); when she withdraws
// her consent, a retract notice, and its feed no longer holds the content.
func TestConsentRevealsAndWithdrawalRetracts(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, mother := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.observe(id, ditep, domain.CategoryHealth, "Traitement ajusté par le CMP.")
	consent := e.giveConsent(id, mother, mecs, 24*time.Hour)
	e.wait(r)
	mine := e.checkFeed(mecs, id)
	reveals := kindsOf(mine, KindReveal)
	if len(reveals) != 2 || reveals[0].Sequence != 5 || reveals[1].Sequence != 6 || reveals[0].View.Visibility != domain.Full {
		t.Fatalf("reveals %+v, want sequences 5 and 6 in full", reveals)
	}
	if reveals[0].Cause != 7 || reveals[0].Rule != "health_consent" {
		t.Errorf("reveal caused by %d under %q, want the consent (7) and health_consent", reveals[0].Cause, reveals[0].Rule)
	}
	e.checkFeed(ditep, id)
	if got := kindsOf(e.feed(ditep), KindReveal); len(got) != 0 {
		t.Errorf("the DITEP (care member) got reveals: %+v", got)
	}

	e.withdrawConsent(id, mother, consent)
	e.wait(r)
	mine = e.checkFeed(mecs, id)
	retracts := kindsOf(mine, KindRetract)
	if len(retracts) != 2 || retracts[0].Sequence != 5 || retracts[1].Sequence != 6 || retracts[0].View.Visibility != domain.Hidden {
		t.Fatalf("retracts %+v, want stubs for sequences 5 and 6", retracts)
	}
	for _, m := range mine {
		if (m.Sequence == 5 || m.Sequence == 6) && m.View.Visibility != domain.Hidden {
			t.Errorf("the feed still holds the content of sequence %d (%s message %d)", m.Sequence, m.Kind, m.streamSeq)
		}
	}

	// Given again, revealed again.
	e.giveConsent(id, mother, mecs, 24*time.Hour)
	e.wait(r)
	if got := kindsOf(e.checkFeed(mecs, id), KindReveal); len(got) != 2 {
		t.Errorf("%d reveals after the second consent, want 2", len(got))
	}
}

// Given a consent that runs one hour, when the next event of the case is
// relayed after it ended, then the children's home gets a retract notice.
func TestExpiredConsentIsRetractedWithTheNextEvent(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, mother := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.giveConsent(id, mother, mecs, time.Hour)
	e.wait(r)
	if got := kindsOf(e.checkFeed(mecs, id), KindReveal); len(got) != 1 {
		t.Fatalf("%d reveals, want 1", len(got))
	}
	e.clock.Advance(2 * time.Hour)
	e.observe(id, mecs, domain.CategoryDailyLife, "Week-end calme.")
	e.wait(r)
	if got := kindsOf(e.checkFeed(mecs, id), KindRetract); len(got) != 1 || got[0].Sequence != 5 {
		t.Fatalf("retracts %+v, want one for sequence 5", got)
	}
}

// Given a case with a history, when a partner joins, then it receives the
// history it may see (back-fill), in order, then what follows.
func TestJoiningPartnerReceivesTheHistory(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, _ := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.observe(id, mecs, domain.CategoryDailyLife, "Rentrée scolaire sereine.")
	e.join(id, aed)
	e.observe(id, aed, domain.CategoryDailyLife, "Première visite à domicile.")
	e.wait(r)
	mine := e.checkFeed(aed, id)
	if len(mine) != 8 {
		t.Fatalf("%d messages, want 8", len(mine))
	}
	for i, m := range mine[:7] {
		if m.Kind != KindEvent || m.Sequence != uint64(i+1) || m.Cause != 7 {
			t.Fatalf("message %d: %s of %d caused by %d, want the back-fill of %d caused by the joining (7)", i, m.Kind, m.Sequence, m.Cause, i+1)
		}
	}
	if mine[4].View.Visibility != domain.Hidden {
		t.Errorf("back-filled the health observation as %s", mine[4].View.Visibility)
	}
}

// Given a member that leaves, it receives nothing recorded after it left;
// when it joins again it receives what it missed.
func TestLeavingPartnerReceivesNothingAfter(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, _ := e.openCase(mecs, school)
	e.record(id, ase, "", &domain.PartnerLeftPayload{Institution: school, Reason: "changement d'établissement"})
	e.observe(id, mecs, domain.CategoryDailyLife, "Installation dans le nouveau collège.")
	e.wait(r)
	mine := e.checkFeed(school, id)
	if last := mine[len(mine)-1]; last.Sequence != 5 {
		t.Fatalf("the former member's last message is for sequence %d, want 5 (its leaving)", last.Sequence)
	}
	e.join(id, school)
	e.wait(r)
	e.checkFeed(school, id)
}

// Given an order excluding the children's home from a period that started
// before it was recorded, then what was recorded in that period is
// retracted from the home's feed.
func TestPartnerExclusionRetracts(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, _ := e.openCase(mecs, school)
	from := e.clock.Now()
	e.observe(id, school, domain.CategoryDailyLife, "Absences répétées.")
	e.record(id, ase, "", &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.PartnerExcluded,
		OrderReference: "TPE 26/001", Court: "TPE Rennes", Institutions: []domain.InstitutionID{mecs}, From: from, Until: from.Add(90 * 24 * time.Hour)})
	e.observe(id, school, domain.CategoryDailyLife, "Retour en classe.")
	e.wait(r)
	mine := e.checkFeed(mecs, id)
	if got := kindsOf(mine, KindRetract); len(got) != 1 || got[0].Sequence != 5 {
		t.Fatalf("retracts %+v, want one for sequence 5", got)
	}
	e.checkFeed(school, id)
}

func kindsOf(msgs []feedMsg, k Kind) []feedMsg {
	var out []feedMsg
	for _, m := range msgs {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}
