package feeds

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// stubHeaders are the headers of a stub on the feed, whatever hid the event
// and whatever the message's kind: the protocol's, the case (routing), the
// sequence and the hashes; and those the server adds to a message it gives
// (Nats-Sequence, -Stream, -Subject, -Time-Stamp).
var stubHeaders = []string{"Nats-Expected-Last-Subject-Sequence", "Nats-Msg-Id", HeaderFormat, HeaderKind, HeaderCase, HeaderSequence,
	HeaderCause, HeaderVisibility, HeaderLeafHash, HeaderChainHash, "Nats-Sequence", "Nats-Stream", "Nats-Subject", "Nats-Time-Stamp"}

// Given events hidden from the children's home for different reasons (health
// without consent, a partner_excluded order, a retraction), then every stub
// on its feed has the same headers and the same body fields, none naming the
// rule or the type, and no byte of any message (headers included) holds the
// id of an event the home may not see; no de-duplication id holds an event
// id at all.
func TestAStubOnTheFeedTellsNothingOfTheHiddenEvent(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, mother := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.") // health_needs_consent
	c := e.giveConsent(id, mother, mecs, 24*time.Hour)
	e.observe(id, ditep, domain.CategoryHealth, "Traitement ajusté.") // seen under the consent
	e.withdrawConsent(id, mother, c)                                  // both retracted
	from := e.clock.Now()
	e.observe(id, ditep, domain.CategoryDailyLife, "Semaine calme.") // seen, then retracted by the order
	e.record(id, ase, "", &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.PartnerExcluded,
		OrderReference: "TPE 26/007", Court: "TPE Rennes", Institutions: []domain.InstitutionID{mecs}, From: from, Until: from.Add(90 * 24 * time.Hour)})
	e.observe(id, ditep, domain.CategoryDailyLife, "Retour en classe.") // partner_excluded
	e.wait(r)
	e.checkFeed(mecs, id)

	st, events, err := e.svc.Load(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sight := domain.SightOf(st, domain.Viewer{Role: domain.RoleProfessional, Institution: mecs}, e.clock.Now())
	var hidden []string
	rules := map[string]bool{}
	for _, ev := range events {
		if d := sight.See(ev); d.Visibility == domain.Hidden {
			hidden = append(hidden, ev.ID.String())
			rules[d.Rule] = true
		}
	}
	if len(hidden) < 4 || !rules["health_needs_consent"] || !rules["partner_excluded"] {
		t.Fatalf("the test hides %d events under %v from the home, want health and exclusion stubs", len(hidden), rules)
	}
	kinds := map[Kind]int{}
	for _, m := range rawFeed(t, e, mecs) {
		if vis := m.Header.Get(HeaderVisibility); vis != string(domain.Hidden) {
			if strings.Contains(m.Header.Get("Nats-Msg-Id"), "-") && containsAnyEventID(m.Header.Get("Nats-Msg-Id"), events) {
				t.Errorf("message %d (%s): its de-duplication id %q holds an event id", m.seq, vis, m.Header.Get("Nats-Msg-Id"))
			}
			for _, hid := range hidden {
				if bytes.Contains(m.raw(), []byte(hid)) {
					t.Errorf("message %d (%s) holds the id of an event hidden from the home", m.seq, vis)
				}
			}
			continue
		}
		kinds[Kind(m.Header.Get(HeaderKind))]++
		var names []string
		for k := range m.Header {
			names = append(names, k)
		}
		slices.Sort(names)
		want := slices.Clone(stubHeaders)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("stub %d (%s of %s): headers %v, want %v", m.seq, m.Header.Get(HeaderKind), m.Header.Get(HeaderSequence), names, want)
		}
		for _, h := range []string{HeaderRule, HeaderType, HeaderRedacted} {
			if v := m.Header.Get(h); v != "" {
				t.Errorf("stub %d carries %s: %q", m.seq, h, v)
			}
		}
		seq := m.Header.Get(HeaderSequence)
		body := `{"sequence":` + seq + `,"leafHash":"` + m.Header.Get(HeaderLeafHash) + `","chainHash":"` + m.Header.Get(HeaderChainHash) + `","visibility":"hidden"}`
		if string(m.Data) != body {
			t.Errorf("stub %d: body %s, want %s", m.seq, m.Data, body)
		}
		for _, ev := range events {
			if bytes.Contains(m.raw(), []byte(ev.ID.String())) {
				t.Errorf("stub %d (%s of %s) holds the id of event %d", m.seq, m.Header.Get(HeaderKind), seq, ev.Sequence)
			}
		}
	}
	if kinds[KindEvent] == 0 || kinds[KindRetract] == 0 {
		t.Fatalf("stubs by kind %v: the test wants stubs delivered and stubs retracting", kinds)
	}
}

// Given a member that left, when events are recorded after its leaving,
// among them a consent naming it (a reveal for a member) and the withdrawal
// of a consent whose health it held, then its feed receives no event, no
// stub and no reveal, nothing naming a sequence after its leaving; what it
// may no longer keep is retracted (cause: its leaving). When it joins
// again, it receives what it missed and what it may see now.
func TestAFormerMemberReceivesNothingAfterItsLeaving(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, mother := e.openCase(mecs, school, ditep)                                                                // 1..5
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")                                          // 6: a stub for the school
	c := e.giveConsent(id, mother, mecs, 30*24*time.Hour)                                                        // 7
	schoolConsent := e.giveConsent(id, mother, school, 30*24*time.Hour)                                          // 8: 6 revealed to the school
	e.observe(id, ditep, domain.CategoryHealth, "Traitement ajusté.")                                            // 9: the school's, under consent
	e.record(id, ase, "", &domain.PartnerLeftPayload{Institution: school, Reason: "changement d'établissement"}) // 10
	e.wait(r)
	left := uint64(10)
	before := lastSeq(t, e, school)
	heldBefore := holds(e.feed(school))[id]

	// After its leaving: an observation, a withdrawal that hides from it
	// what it holds (the mother's consent to the school), a consent naming
	// it, and later events for other members.
	e.observe(id, mecs, domain.CategoryDailyLife, "Installation dans le nouveau collège.")
	e.withdrawConsent(id, mother, schoolConsent)
	e.giveConsent(id, mother, school, 30*24*time.Hour)
	e.observe(id, ditep, domain.CategoryHealth, "Nouveau bilan.")
	e.withdrawConsent(id, mother, c) // a retract for the home, none for the school
	e.observe(id, mecs, domain.CategoryDailyLife, "Semaine calme.")
	e.wait(r)

	var after []rawMsg
	for _, m := range rawFeed(t, e, school) {
		if m.seq > before {
			after = append(after, m)
		}
	}
	for _, m := range after {
		kind, seq, cause := Kind(m.Header.Get(HeaderKind)), m.Header.Get(HeaderSequence), m.Header.Get(HeaderCause)
		if kind != KindRetract || m.Header.Get(HeaderVisibility) != string(domain.Hidden) {
			t.Errorf("after its leaving the school received a %s (%s) of %s", kind, m.Header.Get(HeaderVisibility), seq)
		}
		if n := parseUint(t, seq); n > left {
			t.Errorf("after its leaving the school received a %s of sequence %d", kind, n)
		}
		if n := parseUint(t, cause); n > left {
			t.Errorf("after its leaving the school received a %s caused by sequence %d (it left at %d)", kind, n, left)
		}
	}
	// It held 6 and 9 under its consent: both withdrawn, both retracted.
	if len(after) != 2 || heldBefore[6].Visibility != domain.Full || heldBefore[9].Visibility != domain.Full {
		t.Errorf("after its leaving the school received %d messages, want the 2 retracts of what it held in full", len(after))
	}
	e.checkFeed(school, id)
	if got := kindsOf(e.feed(mecs), KindRetract); len(got) == 0 {
		t.Errorf("the home, a member, got no retract of the withdrawn consent")
	}

	// Back in the case: the back-fill of what it missed, and the health
	// its new consent covers again (cause: its joining).
	e.join(id, school)
	e.wait(r)
	mine := e.checkFeed(school, id)
	joined := e.lastSequence(id)
	missed := 0
	for _, m := range mine {
		if m.Sequence > left && m.Kind == KindEvent {
			missed++
			if m.Cause != joined {
				t.Errorf("back in the case, the school got %d caused by %d, want its joining (%d)", m.Sequence, m.Cause, joined)
			}
		}
	}
	if missed != int(joined-left) {
		t.Errorf("back in the case, the school got %d of the %d events it missed", missed, joined-left)
	}
	if got := kindsOf(mine, KindReveal); len(got) == 0 || got[len(got)-1].Cause != joined {
		t.Errorf("back in the case, the school's reveals %+v: want the health its new consent covers, caused by its joining", got)
	}
}

// Given two consents in the future, each revealing then hiding a health
// observation with time alone, then the children's home gets both reveals
// and both retracts: the second reveal, caused by the same last event as the
// first, is not dropped as a duplicate of it.
func TestAConsentRevealedAgainByTimeAloneIsRevealedAgain(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay(WithBoundaryEvery(20 * time.Millisecond))
	id, mother := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	now := e.clock.Now()
	for _, from := range []time.Time{now.Add(time.Hour), now.Add(3 * time.Hour)} {
		e.recordAs(id, domain.Actor{FamilyMember: mother}, domain.RoleFamily, "", &domain.ConsentGivenPayload{Consent: uuid.New(), GivenBy: mother,
			Institutions: []domain.InstitutionID{mecs}, Categories: []domain.Category{domain.CategoryHealth}, From: from, Until: from.Add(time.Hour)})
	}
	e.wait(r)
	health := e.healthSequence(id)
	for i, want := range []domain.Visibility{domain.Full, domain.Hidden, domain.Full, domain.Hidden} {
		e.clock.Set(now.Add(time.Duration(i+1)*time.Hour + 30*time.Minute))
		e.waitHeld(mecs, id, health, want)
	}
	// Each retract erased the reveal before it: the notices are left.
	if got := kindsOf(e.checkFeed(mecs, id), KindRetract); len(got) != 2 {
		t.Errorf("%d retracts, want 2", len(got))
	}
}

// A stub says the same whatever hid it: EncodeMessage gives it no rule, no
// type and no redacted fields even when asked to.
func TestEncodeMessageGivesAStubNoRuleNorType(t *testing.T) {
	id := uuid.New()
	ev := domain.Event{ID: uuid.New(), CaseID: id, Sequence: 3, Type: domain.ObservationRecorded, Category: domain.CategoryHealth}
	for _, rule := range []string{"health_needs_consent", "partner_excluded", "left_case", "case_erased"} {
		view := domain.View(ev, domain.Decision{Visibility: domain.Hidden, Rule: rule})
		view.Type, view.RedactedFields = ev.Type, []string{"summary"} // a careless caller
		msg, err := EncodeMessage(Subject(mecs, id), Message{Kind: KindRetract, CaseID: id, Sequence: 3, Cause: 5, Rule: rule, View: view})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{HeaderRule, HeaderType, HeaderRedacted} {
			if v := msg.Header.Get(h); v != "" {
				t.Errorf("a stub hidden by %s carries %s: %q", rule, h, v)
			}
		}
		if bytes.Contains(msg.Data, []byte(ev.Type)) || bytes.Contains(msg.Data, []byte("summary")) {
			t.Errorf("a stub hidden by %s: body %s", rule, msg.Data)
		}
	}
}

// The de-duplication id names no event, and differs for every publish: the
// same sequence revealed and retracted several times, by the same cause
// (time alone), gets a new id each time.
func TestMsgIDNamesNoEventAndNeverRepeats(t *testing.T) {
	id := uuid.New()
	seen := map[string]bool{}
	for after := uint64(0); after < 4; after++ {
		for _, k := range []Kind{KindEvent, KindReveal, KindRetract} {
			got := msgID(id, 7, mecs, k, 9, after)
			if seen[got] {
				t.Errorf("msgID repeats %q", got)
			}
			seen[got] = true
		}
	}
	if got := msgID(id, 7, mecs, KindEvent, 7, 0); got == msgID(id, 7, ditep, KindEvent, 7, 0) || got == msgID(uuid.New(), 7, mecs, KindEvent, 7, 0) {
		t.Errorf("msgID does not tell partners or cases apart")
	}
}

// rawMsg is a feed message as stored: headers and body.
type rawMsg struct {
	*nats.Msg
	seq uint64
}

// raw returns the message's headers and body as bytes, to search.
func (m rawMsg) raw() []byte {
	var b bytes.Buffer
	for k, vs := range m.Header {
		b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	b.Write(m.Data)
	return b.Bytes()
}

// rawFeed reads inst's feed stream as stored, every header included.
func rawFeed(t *testing.T, e *env, inst domain.InstitutionID) []rawMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	stream, ok := feedStream(t, ctx, e.feeds.Conn(), inst)
	if !ok {
		return nil
	}
	var out []rawMsg
	last := stream.CachedInfo().State.LastSeq
	for seq := uint64(1); seq <= last; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, njs.ErrMsgNotFound) {
			continue // erased by a retraction
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawMsg{Msg: &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, seq: seq})
	}
	return out
}

func containsAnyEventID(s string, events []domain.Event) bool {
	for _, ev := range events {
		if strings.Contains(s, ev.ID.String()) {
			return true
		}
	}
	return false
}
