package feeds

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// tailer runs the reference subscriber of one partner in the background.
type tailer struct {
	t      *testing.T
	e      *env
	inst   domain.InstitutionID
	mu     sync.Mutex
	got    []Delivery
	cancel context.CancelFunc
	ended  chan error
}

func (e *env) tail(inst domain.InstitutionID) *tailer {
	e.t.Helper()
	nc, _ := e.dialPartner(inst)
	tl, err := NewTail(nc, inst)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	tr := &tailer{t: e.t, e: e, inst: inst, cancel: cancel, ended: make(chan error, 1)}
	go func() {
		for {
			err := tl.Run(ctx, func(d Delivery) error {
				tr.mu.Lock()
				defer tr.mu.Unlock()
				tr.got = append(tr.got, d)
				return nil
			})
			if errors.Is(err, ErrNoFeed) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			tr.ended <- err
			return
		}
	}()
	e.t.Cleanup(tr.stop)
	return tr
}

// stop stops the subscriber and waits until the server dropped its pull
// request: until then the server can still deliver new messages to it,
// which nobody reads, and a subscriber started next receives them only
// when their acknowledgement times out (seen: "resumed with 4
// deliveries, want the 6 new ones").
func (tr *tailer) stop() {
	if tr.cancel == nil {
		return
	}
	tr.cancel()
	if err := <-tr.ended; err != nil {
		tr.t.Error(err)
	}
	tr.cancel = nil
	js, err := njs.New(tr.e.feeds.Conn())
	if err != nil {
		tr.t.Error(err)
		return
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		cons, err := js.Consumer(tr.e.ctx, StreamName(tr.inst), PartnerConsumer)
		if err == nil {
			var info *njs.ConsumerInfo
			if info, err = cons.Info(tr.e.ctx); err == nil && info.NumWaiting == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			tr.t.Errorf("%s: the stopped subscriber's pull request is still waiting at the server (%v)", tr.inst, err)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// until waits until the subscriber received the feed's last message.
func (tr *tailer) until(e *env, inst domain.InstitutionID) []Delivery {
	tr.t.Helper()
	last := lastSeq(tr.t, e, inst)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		n := len(tr.got)
		done := n > 0 && tr.got[n-1].StreamSeq >= last
		got := append([]Delivery(nil), tr.got...)
		tr.mu.Unlock()
		if done {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatalf("%s: the subscriber did not reach message %d", inst, last)
	return nil
}

// Given two partner systems tailing their feeds while commands are
// recorded, then each sees only what the policy allows, in case order, each
// sequence once; a consent reveals health information to the children's
// home and its withdrawal retracts it; both chains verify to the same head.
// When the home's subscriber stops and starts again, it resumes where it
// stopped and still verifies.
func TestTwoPartnersTailTheirFeeds(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	r := e.startRelay()
	home, care := e.tail(mecs), e.tail(ditep)

	id, mother := e.openCase(mecs, ditep, school)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.observe(id, mecs, domain.CategoryDailyLife, "Semaine calme.")
	consent := e.giveConsent(id, mother, mecs, 30*24*time.Hour)
	e.observe(id, ditep, domain.CategoryHealth, "Traitement ajusté.")
	// The home's system is up to date when the consent is withdrawn (a
	// system that is behind never receives what was retracted meanwhile:
	// the retract notice stands in for it).
	e.wait(r)
	home.until(e, mecs)
	e.withdrawConsent(id, mother, consent)
	e.observe(id, school, domain.CategoryDailyLife, "Absences.")
	e.wait(r)

	st, _, err := e.svc.Load(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	byKind := func(ds []Delivery, k Kind) (seqs []uint64) {
		for _, d := range ds {
			if d.Kind == k {
				seqs = append(seqs, d.Sequence)
			}
		}
		return seqs
	}
	for inst, tr := range map[domain.InstitutionID]*tailer{mecs: home, ditep: care} {
		got := tr.until(e, inst)
		events := byKind(got, KindEvent)
		for i, seq := range events {
			if seq != uint64(i+1) {
				t.Fatalf("%s: event deliveries %v, want 1..%d in order", inst, events, st.Version)
			}
		}
		if uint64(len(events)) != st.Version {
			t.Fatalf("%s: %d event deliveries, want %d", inst, len(events), st.Version)
		}
		for _, d := range got {
			if d.Break != nil || d.Duplicate {
				t.Fatalf("%s: delivery %d: break %v, duplicate %v", inst, d.StreamSeq, d.Break, d.Duplicate)
			}
			if inst == ditep && d.Kind != KindEvent {
				t.Errorf("the DITEP got a %s", d.Kind)
			}
		}
		last := got[len(got)-1]
		if last.Verified != st.Version || last.Head != st.Head {
			t.Fatalf("%s: verified up to %d, head %s; want %d, %s", inst, last.Verified, last.Head, st.Version, st.Head)
		}
	}
	got := home.until(e, mecs)
	if reveals, retracts := byKind(got, KindReveal), byKind(got, KindRetract); len(reveals) != 1 || reveals[0] != 6 ||
		len(retracts) != 2 || retracts[0] != 6 || retracts[1] != 9 {
		t.Fatalf("the home got reveals %v and retracts %v, want [6] and [6 9]", reveals, retracts)
	}
	for _, d := range got {
		if d.Kind == KindEvent && d.Sequence == 9 && d.View.Visibility != domain.Full {
			t.Errorf("health recorded under consent delivered as %s", d.View.Visibility)
		}
	}

	// The home's system stops; more is recorded; it starts again.
	home.stop()
	seen := len(got)
	e.observe(id, mecs, domain.CategoryDailyLife, "Retour de week-end.")
	e.observe(id, ditep, domain.CategoryHealth, "Séance de groupe.")
	e.wait(r)
	again := e.tail(mecs)
	resumed := again.until(e, mecs)
	if len(resumed) != 2 || resumed[0].StreamSeq <= got[seen-1].StreamSeq {
		t.Fatalf("resumed with %d deliveries from message %d, want the 2 new ones after %d", len(resumed), resumed[0].StreamSeq, got[seen-1].StreamSeq)
	}
	st, _, _ = e.svc.Load(e.ctx, id)
	if last := resumed[len(resumed)-1]; last.Break != nil || last.Verified != st.Version || last.Head != st.Head {
		t.Fatalf("after resuming: verified up to %d (break %v), want %d", last.Verified, last.Break, st.Version)
	}
	if care := care.until(e, ditep); care[len(care)-1].Head != resumed[len(resumed)-1].Head {
		t.Fatal("the two partners' chains end at different heads")
	}
}

// Given a message that does not continue the case's chain (forged into the
// feed), the subscriber says so.
func TestTailReportsABrokenLink(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	r := e.startRelay()
	id, _ := e.openCase(mecs)
	e.wait(r)
	st, events, _ := e.svc.Load(e.ctx, id)
	forged := domain.View(events[len(events)-1], domain.Decision{Visibility: domain.Hidden})
	forged.Sequence = st.Version + 1
	msg, err := EncodeMessage(Subject(mecs, id), Message{Kind: KindEvent, CaseID: id, Sequence: forged.Sequence, Cause: forged.Sequence, View: forged})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := njs.New(e.feeds.Conn())
	if _, err := js.PublishMsg(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	got := e.tail(mecs).until(e, mecs)
	last := got[len(got)-1]
	var brk *domain.ChainBreak
	if !errors.As(last.Break, &brk) || brk.Sequence != forged.Sequence || brk.Field != "chainHash" {
		t.Fatalf("forged link reported as %v, want a chainHash break at %d", last.Break, forged.Sequence)
	}
	for _, d := range got[:len(got)-1] {
		if d.Break != nil {
			t.Fatalf("genuine message %d reported broken: %v", d.StreamSeq, d.Break)
		}
	}
}

// Given a subscriber that stops while two cases move, their messages
// interleaved on the feed, when it starts again, then it checks what it
// acknowledged before of each case (reading the feed before the first new
// message), and reports neither a duplicate nor a break.
func TestTailResumesWithInterleavedCases(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	r := e.startRelay()
	home := e.tail(mecs)
	a, _ := e.openCase(mecs)
	b, _ := e.openCase(mecs)
	for i := range 3 {
		e.observe(a, mecs, domain.CategoryDailyLife, fmt.Sprintf("a %d", i))
		e.observe(b, mecs, domain.CategoryDailyLife, fmt.Sprintf("b %d", i))
	}
	e.wait(r)
	home.until(e, mecs)
	home.stop()
	for i := range 3 {
		e.observe(a, mecs, domain.CategoryDailyLife, fmt.Sprintf("a again %d", i))
		e.observe(b, mecs, domain.CategoryDailyLife, fmt.Sprintf("b again %d", i))
	}
	e.wait(r)
	resumed := e.tail(mecs).until(e, mecs)
	if len(resumed) != 6 {
		t.Fatalf("resumed with %d deliveries, want the 6 new ones", len(resumed))
	}
	for _, d := range resumed {
		st, _, _ := e.svc.Load(e.ctx, d.CaseID)
		if d.Break != nil || d.Duplicate || d.Verified != d.Sequence || d.Sequence > st.Version {
			t.Fatalf("case %s, sequence %d: break %v, duplicate %v, verified up to %d", d.CaseID, d.Sequence, d.Break, d.Duplicate, d.Verified)
		}
	}
}
