package feeds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// feedHistories is how many generated histories the feeds' differential
// test relays (MAILLAGE_FEED_DIFFERENTIAL_HISTORIES overrides it).
func feedHistories(t *testing.T) int {
	if s := os.Getenv("MAILLAGE_FEED_DIFFERENTIAL_HISTORIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MAILLAGE_FEED_DIFFERENTIAL_HISTORIES=%q: want a positive number", s)
		}
		return n
	}
	return 30
}

// TestDifferentialNoFeedMessageShowsWhatThePartnersTimelineHides is the differential
// test of the partner feeds (the read paths have theirs in internal/reads):
// generated histories (joins, leavings and rejoins, family not informed,
// consents and orders whose bounds fall inside the run) with a unique canary
// token in every free-text field, relayed by a real relay to a real feed
// server as they are recorded (and some cases caught up after the run, as
// a relay that was stopped finds them). Then, at three times
// (an hour after the last event of the run, six months on, eighteen months
// on, when every consent and order has ended; the relay's boundary sweep
// evaluates the cases again in between), every message stored on the feed
// of every institution that was ever a member of a case, in effect or
// superseded, is searched (body and every header) for the tokens of the
// case that the institution's timeline now hides: none may be found, since
// a retract erases what it supersedes. Besides: a stub carries no rule,
// type or redacted fields and its body is sequence and hashes only; no
// header names an event id; a former member has no message of a sequence
// after its leaving, nor caused by one, and nothing but retracts published
// after its leaving; what a current member holds is what its timeline
// shows (a former member may hold less, never more). Some cases are erased
// after the first check: their feeds then hold the erase notice only. At
// the end the feed server's files hold no token of an erased case and no
// token that every member's timeline hides.
func TestDifferentialNoFeedMessageShowsWhatThePartnersTimelineHides(t *testing.T) {
	e := newEnv(t)
	n := feedHistories(t)
	gen := generate.New(generate.Options{Seed: 20261205, EventsPerCase: 60, Canaries: true})
	var all [][]domain.Event
	for range n {
		all = append(all, gen.Case())
	}
	lastAt := func(events []domain.Event) time.Time { return events[len(events)-1].RecordedAt }
	last := time.Time{}
	for _, events := range all {
		if lastAt(events).After(last) {
			last = lastAt(events)
		}
	}

	// Most cases are relayed as a running server would: their batches of
	// events (those recorded together) appended in the order of the run,
	// three days of the run at a time with the clock at the last one's
	// recording time, and relayed before the next three days (a relay
	// never more than three days behind; relaying each batch on its own
	// takes four times as long and finds the same). One case in five is
	// appended whole once the run is over, as a relay catching up after a
	// stop would find it, past many of its bounds.
	var live, later [][]domain.Event
	for k, events := range all {
		if k%5 == 4 {
			later = append(later, events)
			continue
		}
		for i := 0; i < len(events); {
			j := i + 1
			for j < len(events) && events[j].RecordedAt.Equal(events[i].RecordedAt) {
				j++
			}
			live = append(live, events[i:j])
			i = j
		}
	}
	slices.SortStableFunc(live, func(a, b []domain.Event) int { return a[0].RecordedAt.Compare(b[0].RecordedAt) })
	started := time.Now()
	e.clock.Set(live[0][0].RecordedAt)
	r := e.startRelay(WithBoundaryEvery(20 * time.Millisecond))
	appendAt := func(at time.Time, batches ...[]domain.Event) {
		t.Helper()
		e.clock.Set(at)
		for _, events := range batches {
			res, err := e.store.Append(e.ctx, events[0].Sequence-1, events)
			if err != nil {
				t.Fatal(err)
			}
			e.last = max(e.last, res.Position)
		}
		e.wait(r)
	}
	for i := 0; i < len(live); {
		j := i + 1
		for j < len(live) && live[j][0].RecordedAt.Before(live[i][0].RecordedAt.Add(3*24*time.Hour)) {
			j++
		}
		appendAt(live[j-1][0].RecordedAt, live[i:j]...)
		i = j
	}
	appendAt(last.Add(time.Hour), later...)

	t.Logf("relayed live and caught up in %s", time.Since(started).Round(time.Millisecond))
	d := &feedDifferential{t: t, e: e, erased: map[domain.CaseID]bool{}}
	for _, events := range all {
		d.cases = append(d.cases, feedCase{events: events, state: domain.Fold(events[0].CaseID, events), tokens: canaries(events)})
	}
	for i, at := range []time.Time{last.Add(time.Hour), last.AddDate(0, 6, 0), last.AddDate(1, 6, 0)} {
		e.clock.Set(at)
		d.waitBoundaries(at)
		checked := time.Now()
		d.check(at)
		t.Logf("checked at %s in %s", at.Format(time.DateOnly), time.Since(checked).Round(time.Millisecond))
		if i == 0 {
			// Erase one case in eight: from now on its feeds hold the
			// notice only, whatever the boundary sweep does.
			for k, c := range d.cases {
				if k%8 == 3 {
					if err := r.Erase(e.ctx, c.state.ID); err != nil {
						t.Fatal(err)
					}
					d.erased[c.state.ID] = true
				}
			}
		}
	}
	d.checkFiles()
	t.Logf("%d histories (%s), %d erased after the first check", n, historyStats(all), len(d.erased))
	t.Logf("%d (history, partner) feeds read at 3 times (%d of former members): %d (history, partner, message) checks (%d in effect, %d superseded); %d distinct messages, by kind %v; %d leaks",
		d.feeds, d.formers, d.checks, d.inEffect, d.superseded, len(d.seen), d.kinds, d.leaks)
	if d.kinds[KindReveal] == 0 || d.kinds[KindRetract] == 0 || d.kinds[KindErase] == 0 || d.superseded == 0 || d.formers == 0 {
		t.Errorf("the histories gave messages by kind %v, %d superseded, %d former members' feeds: the test proves little", d.kinds, d.superseded, d.formers)
	}
}

// feedCase is a generated case: its events, its final state, the canary
// tokens of its events.
type feedCase struct {
	events []domain.Event
	state  *domain.State
	tokens map[string]bool
}

type feedDifferential struct {
	t      *testing.T
	e      *env
	cases  []feedCase
	erased map[domain.CaseID]bool
	// counts over every check
	feeds, checks, inEffect, superseded, formers, leaks int
	// seen holds the messages read (institution and stream sequence),
	// kinds counts them by kind, each once.
	seen  map[string]bool
	kinds map[Kind]int
}

// historyStats says what the histories hold that changes what partners
// may see.
func historyStats(all [][]domain.Event) string {
	count := map[domain.EventType]int{}
	events, health, rejoins := 0, 0, 0
	for _, evs := range all {
		events += len(evs)
		joined := map[domain.InstitutionID]bool{}
		for _, ev := range evs {
			count[ev.Type]++
			if ev.Category == domain.CategoryHealth {
				health++
			}
			if ev.Type != domain.PartnerJoined {
				continue
			}
			if p, err := ev.Decode(); err == nil {
				inst := p.(*domain.PartnerJoinedPayload).Institution
				if joined[inst] {
					rejoins++
				}
				joined[inst] = true
			}
		}
	}
	return fmt.Sprintf("%d events, %d health, %d consents given and %d withdrawn, %d orders imposed and %d lifted, %d leavings, %d rejoins, %d family not informed",
		events, health, count[domain.ConsentGiven], count[domain.ConsentWithdrawn], count[domain.JudicialRestrictionImposed],
		count[domain.JudicialRestrictionLifted], count[domain.PartnerLeft], rejoins, count[domain.FamilyNotInformed])
}

// canaryTokens returns the canary tokens in b.
func canaryTokens(b []byte) [][]byte {
	if !bytes.Contains(b, []byte("⟦c")) {
		return nil // most messages, stubs: the pattern need not run
	}
	return generate.CanaryPattern.FindAll(b, -1)
}

// canaries returns the canary tokens of events.
func canaries(events []domain.Event) map[string]bool {
	out := map[string]bool{}
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		for _, tok := range generate.CanaryPattern.FindAll(b, -1) {
			out[string(tok)] = true
		}
	}
	return out
}

// waitBoundaries waits until the relay's boundary sweep has evaluated
// every case whose consent or order bound is at or before now: the relay
// deletes or moves a case's key in BoundaryBucket once it has published
// what the bound makes due.
func (d *feedDifferential) waitBoundaries(now time.Time) {
	t := d.t
	ctx, cancel := context.WithTimeout(d.e.ctx, 60*time.Second)
	defer cancel()
	js, err := njs.New(d.e.feeds.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, BoundaryBucket)
	if err != nil {
		t.Fatal(err)
	}
	for {
		due := 0
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for key := range keys.Keys() {
			entry, err := kv.Get(ctx, key)
			if err != nil {
				continue // deleted meanwhile
			}
			at, err := time.Parse(time.RFC3339Nano, string(entry.Value()))
			if err != nil {
				t.Fatalf("boundary of %s: %q: %v", key, entry.Value(), err)
			}
			if !at.After(now) {
				due++
			}
		}
		if due == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d cases still due for a boundary at %s", due, now)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// check reads the feed of every institution that was ever a member of a
// case, and checks each case's messages on it against the institution's
// timeline at now.
func (d *feedDifferential) check(now time.Time) {
	t := d.t
	if d.kinds == nil {
		d.seen, d.kinds = map[string]bool{}, map[Kind]int{}
	}
	byCase := map[domain.CaseID]*feedCase{}
	insts := map[domain.InstitutionID]bool{}
	for i := range d.cases {
		c := &d.cases[i]
		byCase[c.state.ID] = c
		for inst := range c.state.Members {
			insts[inst] = true
		}
	}
	for inst := range insts {
		msgs := map[domain.CaseID][]rawMsg{}
		for _, m := range d.rawFeed(inst) {
			id, err := parseCaseID(m.Header.Get(HeaderCase))
			if err != nil {
				t.Fatalf("%s, message %d: %v", inst, m.seq, err)
			}
			c := byCase[id]
			if c == nil || c.state.Members[inst] == nil {
				t.Fatalf("%s holds message %d of case %s, of which it never was a member", inst, m.seq, id)
			}
			msgs[id] = append(msgs[id], m)
		}
		for id := range msgs {
			d.checkCase(now, inst, byCase[id], msgs[id])
		}
		for _, c := range byCase {
			if c.state.Members[inst] != nil && len(msgs[c.state.ID]) == 0 {
				t.Errorf("%s was a member of case %s and holds nothing of it", inst, c.state.ID)
			}
		}
	}
}

// rawFeed reads inst's whole feed as stored, every header included, in
// stream order, by batched direct gets (as the relay reads a subject).
func (d *feedDifferential) rawFeed(inst domain.InstitutionID) []rawMsg {
	d.t.Helper()
	var out []rawMsg
	err := readSubject(d.e.ctx, d.e.feeds.Conn(), StreamName(inst), subjects(inst), 1, 0, func(seq uint64, m *nats.Msg) error {
		out = append(out, rawMsg{Msg: m, seq: seq})
		return nil
	})
	if err != nil {
		d.t.Fatalf("feed of %s: %v", inst, err)
	}
	return out
}

func parseCaseID(s string) (domain.CaseID, error) {
	var id domain.CaseID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// checkCase checks inst's messages of one case, in stream order.
func (d *feedDifferential) checkCase(now time.Time, inst domain.InstitutionID, c *feedCase, msgs []rawMsg) {
	t := d.t
	d.feeds++
	st := c.state
	id := st.ID
	v := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
	known := domain.KnownVersion(st, v)
	timeline := domain.Timeline(st, v, c.events[:known], now)
	tl, _ := json.Marshal(timeline)
	visible := map[string]bool{}
	for _, tok := range generate.CanaryPattern.FindAll(tl, -1) {
		visible[string(tok)] = true
	}
	ids := make(map[string]bool, len(c.events))
	for _, ev := range c.events {
		ids[ev.ID.String()] = true
	}
	member := st.Members[inst]
	former := !member.Active()
	if former {
		d.formers++
	}

	// What is in effect: the last message of each sequence; an erase
	// notice clears the case.
	parsed := make([]Message, len(msgs))
	effect := map[uint64]int{} // sequence -> index in msgs
	erasedAt := -1
	for i, m := range msgs {
		msg, err := ParseMessage(m.Header, m.Data)
		if err != nil {
			t.Fatalf("%s, case %s, message %d: %v", inst, id, m.seq, err)
		}
		parsed[i] = msg
		if msg.Kind == KindErase {
			effect, erasedAt = map[uint64]int{}, i
			continue
		}
		effect[msg.Sequence] = i
	}
	if d.erased[id] {
		// The notice is a stub of the last sequence it may know of.
		if len(msgs) != 1 || erasedAt != 0 || parsed[0].Sequence != known || parsed[0].View.ChainHash != c.events[known-1].ChainHash {
			t.Errorf("%s, case %s, erased: the feed holds %d messages (erase notice at %d, of %d), want the notice of %d only", inst, id, len(msgs), erasedAt,
				parsed[0].Sequence, known)
		}
	} else if erasedAt >= 0 {
		t.Errorf("%s, case %s: an erase notice in the feed of a case not erased", inst, id)
	}

	// Where the former member's last event was sent: after it, only
	// retracts (docs/feeds.md, Kinds: leaving).
	leftAt := len(msgs)
	if former {
		for i, msg := range parsed {
			if msg.Sequence == member.LeftSeq {
				leftAt = i
				break
			}
		}
	}

	for i, m := range msgs {
		msg := parsed[i]
		d.checks++
		if key := string(inst) + ":" + strconv.FormatUint(m.seq, 10); !d.seen[key] {
			d.seen[key] = true
			d.kinds[msg.Kind]++
		}
		k, ok := effect[msg.Sequence]
		inEffect := ok && k == i || msg.Kind == KindErase && i == erasedAt
		if inEffect {
			d.inEffect++
		} else {
			d.superseded++
		}
		where := fmt.Sprintf("%s, case %s, message %d (%s of %d, cause %d, %s, in effect: %v)", inst, id, m.seq, msg.Kind, msg.Sequence, msg.Cause,
			msg.View.Visibility, inEffect)

		// Every token of body and headers must be one the timeline shows.
		raw := m.raw()
		for _, tok := range canaryTokens(raw) {
			if !visible[string(tok)] || d.erased[id] {
				d.leaks++
				t.Errorf("%s holds %s, which the institution's timeline hides: %s", where, tok, clipBytes(raw))
			}
		}
		var headers strings.Builder
		for k, vs := range m.Header {
			headers.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		if m.Header.Get("Nats-Msg-Id") == "" && msg.Kind != KindErase {
			t.Errorf("%s: no de-duplication id to search", where)
		}
		if u := anyOf(headers.String(), ids); u != "" {
			t.Errorf("%s: a header names event %s: %s", where, u, headers.String())
		}
		if msg.View.Visibility == domain.Hidden {
			for _, h := range []string{HeaderRule, HeaderType, HeaderRedacted} {
				if got := m.Header.Get(h); got != "" {
					t.Errorf("%s: a stub carries %s: %q", where, h, got)
				}
			}
			stub := fmt.Sprintf(`{"sequence":%d,"leafHash":"%s","chainHash":"%s","visibility":"hidden"}`, msg.Sequence,
				m.Header.Get(HeaderLeafHash), m.Header.Get(HeaderChainHash))
			if string(m.Data) != stub {
				t.Errorf("%s: stub body %s, want %s", where, m.Data, stub)
			}
		}
		if msg.Sequence > known || msg.Cause > known {
			t.Errorf("%s: names a sequence after %d, the last it may know of", where, known)
		}
		if former && i > leftAt && msg.Kind != KindRetract && msg.Kind != KindErase {
			t.Errorf("%s: published after its leaving at %d, and not a retract", where, member.LeftSeq)
		}
	}

	if d.erased[id] {
		return
	}
	// What it holds is what its timeline shows, or for a former member no
	// more than that.
	if len(effect) != int(known) {
		t.Errorf("%s, case %s: holds %d sequences, want %d", inst, id, len(effect), known)
	}
	for _, w := range timeline {
		k, ok := effect[w.Sequence]
		if !ok {
			continue
		}
		got := parsed[k].View
		gotKey, wantKey := viewKey(got.Visibility, got.RedactedFields), viewKey(w.Visibility, w.RedactedFields)
		if got.LeafHash != w.LeafHash || got.ChainHash != w.ChainHash {
			t.Errorf("%s, case %s, sequence %d: holds other hashes than the timeline's", inst, id, w.Sequence)
		}
		if former && gotKey != wantKey && shows(wantKey, gotKey) {
			continue
		}
		if gotKey != wantKey || !bytes.Equal(got.Payload, w.Payload) {
			t.Errorf("%s, case %s, sequence %d (former member: %v): holds a %s view (payload %s), its timeline shows %s (payload %s)", inst, id, w.Sequence, former,
				gotKey, clipBytes(got.Payload), wantKey, clipBytes(w.Payload))
		}
	}
}

// checkFiles searches the feed server's files for the tokens of erased
// cases, and for those hidden from every institution that was ever a
// member of their case.
func (d *feedDifferential) checkFiles() {
	t := d.t
	now := d.e.clock.Now()
	files := feedFiles(t, d.e)
	found := map[string]bool{}
	for _, tok := range generate.CanaryPattern.FindAll(files, -1) {
		found[string(tok)] = true
	}
	for _, c := range d.cases {
		seen := map[string]bool{}
		if !d.erased[c.state.ID] {
			for inst := range c.state.Members {
				v := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
				b, _ := json.Marshal(domain.Timeline(c.state, v, c.events[:domain.KnownVersion(c.state, v)], now))
				for _, tok := range generate.CanaryPattern.FindAll(b, -1) {
					seen[string(tok)] = true
				}
			}
		}
		for tok := range c.tokens {
			if found[tok] && !seen[tok] {
				d.leaks++
				t.Errorf("the feed server's files hold %s of case %s (erased: %v), which no member's timeline shows", tok, c.state.ID, d.erased[c.state.ID])
			}
		}
	}
}

// anyOf returns the first UUID of ids (text form) found in s, or "".
func anyOf(s string, ids map[string]bool) string {
	for i := 0; i+36 <= len(s); i++ {
		if s[i+8] == '-' && s[i+13] == '-' && s[i+18] == '-' && s[i+23] == '-' && ids[s[i:i+36]] {
			return s[i : i+36]
		}
	}
	return ""
}

func clipBytes(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
