package projections

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// clock is the reading time of the tests: after every generated history.
var clock = time.Date(2028, 6, 1, 12, 0, 0, 0, time.UTC)

var testRules = deadlineRules{horizon: 30 * 24 * time.Hour, synthesisInterval: 183 * 24 * time.Hour}

// generated returns n generated case histories with positions, as a store
// would give them (one message per case).
func generated(t testing.TB, seed int64, n, eventsPerCase int, deps ...string) [][]domain.Event {
	t.Helper()
	g := generate.New(generate.Options{Seed: seed, EventsPerCase: eventsPerCase, Departements: deps})
	out := make([][]domain.Event, n)
	for i := range out {
		out[i] = g.Case()
		for j := range out[i] {
			out[i][j].Position = domain.Position(uint64(i+1)<<16 | uint64(j))
		}
	}
	return out
}

func mustApply(t testing.TB, m *models, histories [][]domain.Event) {
	t.Helper()
	for _, h := range histories {
		for _, e := range h {
			if err := m.apply(e); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// viewers returns everyone who could read a case: an auditor, every
// institution that ever was a member, every family member, and some who may
// not know it.
func viewers(events []domain.Event) []domain.Viewer {
	st := domain.Fold(events[0].CaseID, events)
	vs := []domain.Viewer{{Role: domain.RoleAuditor}, {Role: domain.RoleAdmin},
		{Role: domain.RoleProfessional, Institution: "stranger-99"}, {Role: domain.RoleFamily, FamilyMember: uuid.New()}}
	for inst := range st.Members {
		vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: inst})
	}
	for p := range st.Family {
		vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: p})
	}
	return vs
}

func TestReadModelsAgreeWithTheTimeline(t *testing.T) {
	t.Parallel()
	histories := generated(t, 11, 12, 40)
	m := newModels(nil)
	mustApply(t, m, histories)
	redacted := 0
	for _, events := range histories {
		st := domain.Fold(events[0].CaseID, events)
		// Read right after the last event, while consents and orders are in
		// force, and long after, when they have run out.
		for _, now := range []time.Time{events[len(events)-1].RecordedAt.Add(time.Hour), clock} {
			redacted += checkAgreement(t, m, events, st, now)
		}
	}
	if redacted == 0 {
		t.Fatal("no redacted event in the generated histories: the check proves little")
	}
}

// checkAgreement checks every viewer's reads of a case at time now, and
// returns how many redacted entries they had.
func checkAgreement(t *testing.T, m *models, events []domain.Event, st *domain.State, now time.Time) (redacted int) {
	t.Helper()
	id := st.ID
	for _, v := range viewers(events) {
		timeline := domain.Timeline(st, v, events, now)
		chrono, err := m.chronology(context.Background(), id, v, now, time.Time{})
		if !domain.MayKnow(st, v) {
			if !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("%v may not know case %s, yet reads its chronology: %v", v, id, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checkChronology(t, v, timeline, chrono)
		plan, err := m.plan(context.Background(), id, v, now, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, v, timeline, plan)
		checkNoRemovedValues(t, v, events, timeline, chrono, plan)
		for _, e := range chrono.Entries {
			if len(e.RedactedFields) > 0 {
				redacted++
			}
		}
	}
	return redacted
}

func checkChronology(t *testing.T, v domain.Viewer, timeline []domain.EventView, c Chronology) {
	t.Helper()
	want := map[uint64]domain.EventView{}
	for _, ev := range timeline {
		if ev.Visibility != domain.Hidden {
			want[ev.Sequence] = ev
		}
	}
	if len(c.Entries) != len(want) {
		t.Fatalf("%v: chronology has %d entries, the timeline %d visible events", v, len(c.Entries), len(want))
	}
	for i, e := range c.Entries {
		ev, ok := want[e.Sequence]
		if !ok {
			t.Fatalf("%v: chronology shows sequence %d, hidden in the timeline", v, e.Sequence)
		}
		if e.Type != ev.Type || !slices.Equal(e.RedactedFields, ev.RedactedFields) {
			t.Fatalf("%v: sequence %d: chronology %s %v, timeline %s %v", v, e.Sequence, e.Type, e.RedactedFields, ev.Type, ev.RedactedFields)
		}
		if e.What == "" || e.Date != ev.OccurredAt.Format(time.DateOnly) {
			t.Fatalf("%v: sequence %d: entry %+v", v, e.Sequence, e)
		}
		if i > 0 {
			prev := c.Entries[i-1]
			if prev.Date > e.Date || prev.Date == e.Date && (prev.Sequence > e.Sequence || prev.Rank+1 != e.Rank) {
				t.Fatalf("%v: entries out of order: %+v then %+v", v, prev, e)
			}
		}
	}
}

// checkPlan checks the plan's needs and objectives against the events of
// the timeline.
func checkPlan(t *testing.T, v domain.Viewer, timeline []domain.EventView, p Plan) {
	t.Helper()
	var needs, objectives []uuid.UUID
	for _, ev := range timeline {
		if ev.Visibility == domain.Hidden {
			continue
		}
		var ids struct {
			Need      uuid.UUID `json:"need"`
			Objective uuid.UUID `json:"objective"`
		}
		_ = json.Unmarshal(ev.Payload, &ids)
		switch ev.Type {
		case domain.NeedIdentified:
			needs = append(needs, ids.Need)
		case domain.ObjectiveSet:
			objectives = append(objectives, ids.Objective)
		}
	}
	var gotNeeds, gotObjectives []uuid.UUID
	for _, n := range p.Needs {
		gotNeeds = append(gotNeeds, n.ID)
	}
	for _, o := range p.Objectives {
		gotObjectives = append(gotObjectives, o.ID)
	}
	if !slices.Equal(needs, gotNeeds) || !slices.Equal(objectives, gotObjectives) {
		t.Fatalf("%v: plan needs %v objectives %v, timeline %v %v", v, gotNeeds, gotObjectives, needs, objectives)
	}
}

// checkNoRemovedValues checks that what the policy removed from an event for
// the viewer (the place of life, who the family is not informed of) is
// nowhere in what it reads.
func checkNoRemovedValues(t *testing.T, v domain.Viewer, events []domain.Event, timeline []domain.EventView, reads ...any) {
	t.Helper()
	var out strings.Builder
	for _, r := range reads {
		b, _ := json.Marshal(r)
		out.Write(b)
	}
	// What the viewer's timeline shows anywhere may be in the read models.
	var shown strings.Builder
	for _, ev := range timeline {
		b, _ := json.Marshal(ev)
		shown.Write(b)
	}
	for i, ev := range timeline {
		if ev.Visibility != domain.Redacted {
			continue
		}
		var payload map[string]any
		if err := json.Unmarshal(events[i].Payload, &payload); err != nil {
			t.Fatal(err)
		}
		for _, field := range ev.RedactedFields {
			for _, s := range stringsIn(payload[field]) {
				if len(s) >= 6 && strings.Contains(out.String(), s) && !strings.Contains(shown.String(), s) {
					t.Fatalf("%v: %s %q, withheld at sequence %d, is in the read models", v, field, s, ev.Sequence)
				}
			}
		}
	}
}

// stringsIn returns the strings of a decoded JSON value.
func stringsIn(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
		return out
	}
	return nil
}

// TestAsOfIsTheHistoryThenAsThePolicyLetsSeeItNow checks the two meanings
// of a read as of a past date (domain.PolicyAt): an auditor's answers what
// read models holding only the events up to then would have answered then;
// anyone else's shows the events recorded up to then that a read now shows
// them, and nothing the policy hides from them now.
func TestAsOfIsTheHistoryThenAsThePolicyLetsSeeItNow(t *testing.T) {
	t.Parallel()
	histories := generated(t, 5, 4, 40)
	m := newModels(nil)
	mustApply(t, m, histories)
	for _, events := range histories {
		id := events[0].CaseID
		for i := 0; i < len(events); i += 4 {
			// Every event recorded at or before that time: a command's
			// events share their recording time.
			at, n := events[i].RecordedAt, i+1
			for n < len(events) && !events[n].RecordedAt.After(at) {
				n++
			}
			past := newModels(nil)
			mustApply(t, past, [][]domain.Event{events[:n]})
			for _, v := range viewers(events) {
				gotChrono, err1 := m.chronology(context.Background(), id, v, clock, at)
				gotPlan, err3 := m.plan(context.Background(), id, v, clock, at)
				if errors.Is(err1, domain.ErrNotFound) {
					continue // may not know the case now; checked elsewhere
				}
				if err := errors.Join(err1, err3); err != nil {
					t.Fatal(err)
				}
				if v.Role == domain.RoleAuditor {
					wantChrono, err2 := past.chronology(context.Background(), id, v, at, time.Time{})
					wantPlan, err4 := past.plan(context.Background(), id, v, at, time.Time{})
					if err := errors.Join(err2, err4); err != nil {
						t.Fatal(err)
					}
					wantChrono.AsOf, wantPlan.AsOf = &at, &at
					if a, b := mustJSON(t, gotChrono), mustJSON(t, wantChrono); a != b {
						t.Fatalf("auditor as of sequence %d:\n got %s\nwant %s", i+1, a, b)
					}
					if a, b := mustJSON(t, gotPlan), mustJSON(t, wantPlan); a != b {
						t.Fatalf("auditor plan as of sequence %d:\n got %s\nwant %s", i+1, a, b)
					}
					continue
				}
				now, err := m.chronology(context.Background(), id, v, clock, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				var want, got []uint64
				for _, e := range now.Entries {
					if e.Sequence <= uint64(n) {
						want = append(want, e.Sequence)
					}
				}
				for _, e := range gotChrono.Entries {
					got = append(got, e.Sequence)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%v as of sequence %d shows %v, want what a read now shows of them: %v", v, n, got, want)
				}
			}
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAnEventThatCannotBeAppliedIsReportedNotSkipped(t *testing.T) {
	events := generated(t, 3, 1, 20)[0]
	m := newModels(nil)
	for _, e := range events[:5] {
		if err := m.apply(e); err != nil {
			t.Fatal(err)
		}
	}
	bad := events[5]
	bad.Type, bad.Category, bad.Payload = domain.ObservationRecorded, domain.CategoryDailyLife, json.RawMessage(`{"summary":42}`)
	err := m.apply(bad)
	var pe *ProjectionError
	if !errors.As(err, &pe) || pe.CaseID != bad.CaseID || pe.Sequence != 6 || pe.Type != domain.ObservationRecorded || pe.Position != bad.Position {
		t.Fatalf("applying an undecodable payload: %v", err)
	}
	for _, want := range []string{bad.CaseID.String(), "sequence 6", "ObservationRecorded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if c := m.get(bad.CaseID); c.state.Version != 5 || c.log.n != 5 {
		t.Fatalf("the bad event changed the case: version %d, %d logged", c.state.Version, c.log.n)
	}
	if err := m.apply(events[6]); !errors.As(err, &pe) || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("applying sequence 7 after 5: %v", err)
	}
	if err := m.apply(events[4]); err != nil {
		t.Fatalf("an event applied again is ignored, got %v", err)
	}
}

func TestUnknownEventsAreKeptAndShown(t *testing.T) {
	events := generated(t, 4, 1, 20)[0][:3]
	unknown := events[2]
	unknown.Sequence, unknown.Type, unknown.SchemaVersion, unknown.Category = 4, "SomethingNew", 1, domain.CategoryCoordination
	unknown.Payload = json.RawMessage(`{"what":"a later version's event"}`)
	m := newModels(nil)
	for _, e := range append(events, unknown) {
		if err := m.apply(e); err != nil {
			t.Fatal(err)
		}
	}
	c, err := m.chronology(context.Background(), unknown.CaseID, domain.Viewer{Role: domain.RoleAuditor}, clock, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	last := c.Entries[len(c.Entries)-1]
	if last.Sequence != 4 || last.Known || last.Type != "SomethingNew" || !strings.Contains(last.What, "SomethingNew") {
		t.Fatalf("unknown event in the chronology: %+v", last)
	}
}

func TestLogRoundTrip(t *testing.T) {
	events := generated(t, 9, 1, 30)[0]
	var l caseLog
	for _, e := range events {
		l.append(e)
	}
	got, err := l.events(events[0].CaseID, &zoneCache{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		g := got[i]
		if g.ID != e.ID || g.Sequence != e.Sequence || g.Position != e.Position || g.Type != e.Type || g.Category != e.Category ||
			g.Actor != e.Actor || !g.RecordedAt.Equal(e.RecordedAt) || !g.OccurredAt.Equal(e.OccurredAt) ||
			string(g.Payload) != string(e.Payload) || g.SchemaVersion != e.SchemaVersion {
			t.Fatalf("event %d: got %+v\nwant %+v", i, g, e)
		}
		if _, o1 := g.OccurredAt.Zone(); true {
			if _, o2 := e.OccurredAt.Zone(); o1 != o2 {
				t.Fatalf("event %d: zone offset %d, want %d", i, o1, o2)
			}
		}
	}
}

func ExampleCount_MarshalJSON() {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode([]Count{count(3), count(12)})
	// Output: ["<5",12]
}

// Given observations recorded after the fact, one known to the day, one to
// the month, one to the year and one within a span, the chronology gives
// each date as precisely as it is known, says so in words, and puts a date
// known to the month before the days of that month.
func TestUncertainDatesInTheChronology(t *testing.T) {
	events := generated(t, 4, 1, 20)[0][:3]
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	until := at(2024, 6, 30)
	observations := []struct {
		when time.Time
		p    domain.ObservationRecordedPayload
	}{
		{at(2024, 3, 10), domain.ObservationRecordedPayload{Summary: "jour connu"}},
		{at(2024, 3, 1), domain.ObservationRecordedPayload{Summary: "mois connu", UncertainDate: domain.UncertainDate{DateCertainty: domain.DateMonth}}},
		{at(2023, 1, 1), domain.ObservationRecordedPayload{Summary: "année connue", UncertainDate: domain.UncertainDate{DateCertainty: domain.DateYear}}},
		{at(2024, 4, 1), domain.ObservationRecordedPayload{Summary: "au printemps", UncertainDate: domain.UncertainDate{DateCertainty: domain.DateApproximate, OccurredUntil: &until}}},
	}
	for i, o := range observations {
		e := events[2]
		e.ID, e.Sequence, e.Type, e.Category, e.OccurredAt = uuid.New(), uint64(4+i), domain.ObservationRecorded, domain.CategoryDailyLife, o.when
		e.Actor = events[0].Actor
		e.Payload, _ = json.Marshal(o.p)
		events = append(events, e)
	}
	m := newModels(nil)
	for _, e := range events {
		if err := m.apply(e); err != nil {
			t.Fatal(err)
		}
	}
	c, err := m.chronology(context.Background(), events[0].CaseID, domain.Viewer{Role: domain.RoleAuditor}, clock, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range c.Entries {
		if e.Type == domain.ObservationRecorded {
			got = append(got, e.Date+" "+string(e.DateCertainty)+" | "+e.What)
			if e.DateCertainty == domain.DateApproximate && (e.Period == nil || !e.Period.Until.Equal(until)) {
				t.Errorf("the span is not the entry's period: %+v", e.Period)
			}
		}
	}
	want := []string{
		"2023 year | Observation : année connue (date connue à l'année près)",
		"2024-03 month | Observation : mois connu (date connue au mois près)",
		"2024-03-10  | Observation : jour connu",
		"2024-04-01 approximate | Observation : au printemps (date approximative) (entre le 01/04/2024 et le 30/06/2024)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chronology:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
