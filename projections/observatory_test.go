package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// obsNow is the observatory tests' reading time: September 2025 is the
// current month, August the last closed one; the generated territories
// are recorded from January 2024 on.
var obsNow = time.Date(2025, 9, 15, 12, 0, 0, 0, time.UTC)

var (
	september = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	october   = september.AddDate(0, 1, 0)
)

// recordedBefore returns each history's events recorded before t (a case's
// recording times do not go back, so a prefix), without the cases opened
// after it.
func recordedBefore(histories [][]domain.Event, t time.Time) [][]domain.Event {
	var out [][]domain.Event
	for _, h := range histories {
		n := 0
		for n < len(h) && h[n].RecordedAt.Before(t) {
			n++
		}
		if n > 0 {
			out = append(out, slices.Clone(h[:n]))
		}
	}
	return out
}

// decided returns the events cmd records on a case (whose events so far are
// given), decided by the real decider and sealed, recorded at the time at.
func decided(t testing.TB, id domain.CaseID, events []domain.Event, cmd domain.Command, at time.Time) []domain.Event {
	t.Helper()
	st := domain.Fold(id, events)
	if cmd.Role == "" {
		cmd.Role = domain.RoleProfessional
	}
	if cmd.Type == "" {
		cmd.Type = cmd.Payload.EventType()
	}
	out, err := domain.Decide(st, cmd, at)
	if err != nil {
		t.Fatalf("deciding %s: %v", cmd.Type, err)
	}
	ids, salts := make([]uuid.UUID, len(out)), make([][]byte, len(out))
	for i := range out {
		ids[i] = uuid.New()
		salt := uuid.New()
		salts[i] = salt[:]
	}
	sealed := domain.Seal(st, out, ids, salts, at)
	for i := range sealed {
		sealed[i].Position = domain.Position(1<<50 | uint64(sealed[i].Sequence))
	}
	return sealed
}

// opening returns a new case of dep, opened by its département's ASE.
func opening(t testing.TB, dep string, at time.Time) []domain.Event {
	t.Helper()
	ase := domain.InstitutionID("ase-" + dep)
	return decided(t, uuid.New(), nil, domain.Command{Actor: domain.Actor{Institution: ase, Professional: "Référent ASE"},
		Payload: &domain.CaseOpenedPayload{ChildReference: "OBS-" + dep + "-" + uuid.NewString()[:6], LegalFrame: domain.FrameJudicial,
			Departement: dep, Coordinator: ase, CoordinatorKind: domain.KindASE, CoordinatorName: "ASE " + dep,
			Referent: domain.Referent{Name: "Référent ASE"}}}, at)
}

// observedCase is the case the observatory tests record on: open, shared
// with no care service, without a synthesis meeting yet, and with a
// partner other than the coordinator, which an order then excludes.
type observedCase struct {
	index   int // in the territory
	st      *domain.State
	partner domain.InstitutionID
}

func findObservedCase(t testing.TB, territory [][]domain.Event) observedCase {
	t.Helper()
	for i, events := range territory {
		st := domain.Fold(events[0].CaseID, events)
		if !st.Opened || st.Closed || len(st.Meetings) > 0 || len(st.Restrictions) > 0 || shared(st) {
			continue
		}
		for inst, mb := range st.Members {
			if mb.Active() && inst != st.Coordinator && !mb.Kind.Care() {
				return observedCase{index: i, st: st, partner: inst}
			}
		}
	}
	t.Fatal("no case of the territory fits the observatory tests")
	return observedCase{}
}

// TestObservatoryANewEventMovesNoPublishedFigure records, in the current
// month, each kind of event the observatory counts, on a case where it is
// hidden from an excluded partner: the observatory's answer is
// byte-for-byte the one before, up to the month's closing; once the month
// is closed the event counts in it (so the equality is not vacuous), and
// every earlier month is as it was.
func TestObservatoryANewEventMovesNoPublishedFigure(t *testing.T) {
	t.Parallel()
	territory := recordedBefore(generated(t, 100, 60, 20, "35"), obsNow)
	oc := findObservedCase(t, territory)
	id, coord := oc.st.ID, oc.st.Coordinator
	asCoordinator := domain.Actor{Institution: coord, Professional: "Référent ASE"}
	// The partner is excluded from the 14th: what is recorded from then on
	// reaches it as a stub.
	excluded := append(slices.Clone(territory[oc.index]), decided(t, id, territory[oc.index], domain.Command{Actor: asCoordinator,
		Category: domain.CategoryJudicial, Payload: &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(),
			Kind: domain.PartnerExcluded, OrderReference: "TPE 35 25/00042", Court: "Tribunal pour enfants",
			Institutions: []domain.InstitutionID{oc.partner}, From: obsNow.AddDate(0, 0, -2), Until: obsNow.AddDate(1, 0, 0)}},
		obsNow.AddDate(0, 0, -1))...)
	base := slices.Clone(territory)
	base[oc.index] = excluded
	rupture := func(occurred time.Time) domain.Command {
		return domain.Command{Actor: asCoordinator, OccurredAt: occurred, Payload: &domain.PlacementChangedPayload{
			Reason: "fugue et changement de lieu d'accueil", PlaceOfLife: "Lieu d'accueil d'urgence"}}
	}
	onCase := func(cmd domain.Command, at time.Time) func(testing.TB) []domain.Event {
		return func(t testing.TB) []domain.Event { return decided(t, id, excluded, cmd, at) }
	}
	tests := []struct {
		name   string
		record func(testing.TB) []domain.Event
		hidden bool // from the excluded partner
		// counted: the event counts in September once closed; a clock
		// behind records it in August, already published.
		counted, late bool
	}{
		{name: "an unplanned placement change", record: onCase(rupture(time.Time{}), obsNow), hidden: true, counted: true},
		{name: "a crisis declared", hidden: true, counted: true, record: onCase(domain.Command{Actor: asCoordinator,
			Payload: &domain.CrisisDeclaredPayload{Crisis: uuid.New(), Description: "Fugue de 24 h",
				OnCall: []domain.OnCall{{Institution: coord, Contact: "astreinte"}}, Protocol: "protocole de crise"}}, obsNow)},
		{name: "a first synthesis meeting", hidden: true, counted: true, record: onCase(domain.Command{Actor: asCoordinator,
			Payload: &domain.SynthesisMeetingHeldPayload{Meeting: uuid.New(), Participants: []domain.InstitutionID{coord}}}, obsNow)},
		{name: "a care service joins", hidden: true, counted: true, record: onCase(domain.Command{Actor: asCoordinator,
			Payload: &domain.PartnerJoinedPayload{Institution: "cmp-35-99", Kind: domain.KindCMP, Name: "CMP",
				Referent: domain.Referent{Name: "Dr B"}, Reason: "soins"}}, obsNow)},
		{name: "the case closed", hidden: true, counted: true, record: onCase(domain.Command{Actor: asCoordinator,
			Payload: &domain.CaseClosedPayload{Reason: "end_of_measure"}}, obsNow)},
		{name: "another case opened", counted: true, record: func(t testing.TB) []domain.Event { return opening(t, "35", obsNow) }},
		{name: "a rupture dated back to July", record: onCase(rupture(time.Date(2025, 7, 10, 9, 0, 0, 0, time.UTC)), obsNow),
			hidden: true, counted: true},
		{name: "a rupture recorded by a clock behind, in August", record: onCase(rupture(time.Time{}), september.Add(-time.Hour)),
			late: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModels(nil)
			mustApply(t, m, base)
			before := m.observatory(obsNow)
			if before.ClosedThrough != "2025-08" || len(before.Periods) != publishedMonths {
				t.Fatalf("before: closed through %s, %d periods", before.ClosedThrough, len(before.Periods))
			}
			events := tt.record(t)
			mustApply(t, m, [][]domain.Event{events})
			if tt.hidden {
				st := domain.Fold(id, append(slices.Clone(excluded), events...))
				partner := domain.Viewer{Role: domain.RoleProfessional, Institution: oc.partner}
				if d := domain.See(st, partner, events[0], obsNow); d.Visibility != domain.Hidden {
					t.Fatalf("the partner sees the event: %+v", d)
				}
			}
			for _, now := range []time.Time{obsNow, obsNow.Add(time.Minute), october.Add(closeGrace - time.Nanosecond)} {
				if a, b := mustJSON(t, m.observatory(now)), mustJSON(t, before); a != b {
					t.Fatalf("at %s the answer moved:\n got %s\nwant %s", now, a, b)
				}
			}

			closed := m.observatory(october.Add(closeGrace))
			if closed.ClosedThrough != "2025-09" || closed.Periods[len(closed.Periods)-1].Month != "2025-09" {
				t.Fatalf("once September closed: through %s, last period %s", closed.ClosedThrough, closed.Periods[len(closed.Periods)-1].Month)
			}
			if a, b := mustJSON(t, closed.Periods[:publishedMonths-1]), mustJSON(t, before.Periods[1:]); a != b {
				t.Fatalf("closing September changed earlier months:\n got %s\nwant %s", a, b)
			}
			without := newModels(nil)
			mustApply(t, without, base)
			with := newModels(nil) // rebuilt: what a restart computes
			mustApply(t, with, append(slices.Clone(base), events))
			months := []time.Time{september.AddDate(0, -2, 0), september.AddDate(0, -1, 0), september}
			w0, w1 := without.monthTotals(months), with.monthTotals(months)
			if moved := !reflect.DeepEqual(w0[2], w1[2]); moved != tt.counted {
				t.Fatalf("the event counts in September: %v, want %v", moved, tt.counted)
			}
			if !tt.late && !reflect.DeepEqual(w0[:2], w1[:2]) {
				t.Fatal("the event changed July or August")
			}
			if tt.late && reflect.DeepEqual(w0[1], w1[1]) {
				t.Fatal("a rebuild does not count the late event in August: the case proves nothing")
			}
		})
	}
}

var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	dayPattern  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
	refPattern  = regexp.MustCompile(`\d{2}-\d{6}`) // generated child references: "35-000012"
)

// TestObservatoryShowsNoSmallCountNorAnythingIdentifying runs the
// observatory over generated territories of many sizes: no count below the
// threshold, no case id, no pseudonym, no date finer than a month in the
// periods, and every count it shows is the one computed directly from the
// events recorded up to the month's end.
func TestObservatoryShowsNoSmallCountNorAnythingIdentifying(t *testing.T) {
	t.Parallel()
	pool := generated(t, 100, 40, 20, "35", "22", "2A")
	shown := 0
	for seed := range int64(12) {
		// A territory of 1 to 40 cases drawn from the pool.
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		histories := slices.Clone(pool)
		r.Shuffle(len(histories), func(i, j int) { histories[i], histories[j] = histories[j], histories[i] })
		histories = histories[:1+r.IntN(len(pool))]
		m := newModels(nil)
		mustApply(t, m, histories)
		o := m.observatory(obsNow)
		b := mustJSON(t, o.Periods)
		for _, p := range []*regexp.Regexp{uuidPattern, dayPattern, refPattern} {
			if s := p.FindString(b); s != "" {
				t.Fatalf("seed %d: the observatory shows %q: %s", seed, s, b)
			}
		}
		var raw []struct {
			Month        string           `json:"month"`
			Departements []map[string]any `json:"departements"`
		}
		if err := json.Unmarshal([]byte(b), &raw); err != nil {
			t.Fatal(err)
		}
		for _, period := range raw {
			start, err := time.Parse("2006-01", period.Month)
			if err != nil {
				t.Fatal(err)
			}
			truth := trueCounts(histories, start, start.AddDate(0, 1, 0))
			if len(period.Departements) != len(truth) {
				t.Fatalf("seed %d, %s: %d départements, want %d", seed, period.Month, len(period.Departements), len(truth))
			}
			for _, d := range period.Departements {
				dep := d["departement"].(string)
				for key, v := range d {
					switch v := v.(type) {
					case float64:
						if isCount(key) && v < SuppressionThreshold {
							t.Fatalf("seed %d, %s, département %s: %s = %v is shown", seed, period.Month, dep, key, v)
						}
						if isCount(key) && int(v) != truth[dep][key] {
							t.Fatalf("seed %d, %s, département %s: %s = %v, the truth is %d", seed, period.Month, dep, key, v, truth[dep][key])
						}
						if isCount(key) {
							shown++
						}
					case string:
						if key != "departement" && v != "<5" {
							t.Fatalf("seed %d: %s = %q", seed, key, v)
						}
					}
				}
				if d["openCases"] != "<5" && d["sharedChildWelfareCare"] != "<5" {
					if rest := truth[dep]["openCases"] - truth[dep]["sharedChildWelfareCare"]; rest > 0 && rest < SuppressionThreshold {
						t.Fatalf("seed %d: open and shared cases tell a count of %d", seed, rest)
					}
				}
			}
		}
	}
	if shown == 0 {
		t.Fatal("no count was shown: the comparison with the truth proves nothing")
	}
}

// TestObservatorySuppressionOverRandomFigures checks the suppression on
// random figures, many more than generated territories can give: no shown
// count below the threshold, no shown count whose complement in a shown
// total is, no rate or median from too few.
func TestObservatorySuppressionOverRandomFigures(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		tot := depTotals{cases: r.IntN(12), ruptures: r.IntN(12), crises: r.IntN(12), followedSeconds: r.Int64N(10 * 365 * 24 * 3600)}
		tot.open = r.IntN(tot.cases + 1)
		tot.shared = r.IntN(tot.open + 1)
		for range r.IntN(12) {
			tot.firstSynthesisDays = append(tot.firstSynthesisDays, r.IntN(400))
		}
		st := tot.stats("35")
		for _, c := range []Count{st.OpenCases, st.SharedChildWelfareCare, st.UnplannedPlacementChanges, st.FirstSynthesisCases, st.Crises} {
			if n, shown := c.Value(); shown && n < SuppressionThreshold {
				t.Fatalf("%+v: a count of %d is shown", tot, n)
			}
		}
		open, openShown := st.OpenCases.Value()
		shared, sharedShown := st.SharedChildWelfareCare.Value()
		if openShown && sharedShown && open-shared > 0 && open-shared < SuppressionThreshold {
			t.Fatalf("%+v: open %d and shared %d tell %d", tot, open, shared, open-shared)
		}
		if st.PerChildYear != nil && (tot.cases < SuppressionThreshold || tot.ruptures < SuppressionThreshold) {
			t.Fatalf("%+v: a rate from too few", tot)
		}
		if st.MedianDaysToFirstMeeting != nil && len(tot.firstSynthesisDays) < SuppressionThreshold {
			t.Fatalf("%+v: a median from too few", tot)
		}
	}
}

func isCount(key string) bool {
	switch key {
	case "openCases", "sharedChildWelfareCare", "unplannedPlacementChanges", "firstSynthesisCases", "crises":
		return true
	}
	return false
}

// trueCounts computes the observatory's counts of the month [start, end)
// from the events, directly: each case folded from what was recorded before
// end, its flows from what was recorded in the month.
func trueCounts(histories [][]domain.Event, start, end time.Time) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, events := range recordedBefore(histories, end) {
		st := domain.Fold(events[0].CaseID, events)
		c := out[st.Departement]
		if c == nil {
			c = map[string]int{}
			out[st.Departement] = c
		}
		if !st.Closed {
			c["openCases"]++
			if shared(st) {
				c["sharedChildWelfareCare"]++
			}
		}
		first := true
		for _, e := range events {
			in := !e.RecordedAt.Before(start)
			switch p := decode(e).(type) {
			case *domain.PlacementChangedPayload:
				if !p.Planned && in {
					c["unplannedPlacementChanges"]++
				}
			case *domain.CrisisDeclaredPayload:
				if in {
					c["crises"]++
				}
			case *domain.SynthesisMeetingHeldPayload:
				if first && in {
					c["firstSynthesisCases"]++
				}
				first = false
			}
		}
	}
	return out
}

// testClock is a clock a test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestObservatoryShowsAMonthOnceClosedAndTheSameAfterARestart runs a
// runner on a real store with a clock the test moves: events recorded in
// the current month show nowhere until the month is closed (its end plus
// the grace), then in that month only; the closed months read the same
// from a runner restarted from the snapshot and from one rebuilt from the
// store.
func TestObservatoryShowsAMonthOnceClosedAndTheSameAfterARestart(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	clk := &testClock{t: obsNow}
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	territory := recordedBefore(generated(t, 101, 30, 20, "35", "22"), obsNow)
	last := appendInterleaved(t, store, territory)
	live := mustRunner(t, store, WithClock(clk.now), WithSnapshot(snapshot), WithSnapshotInterval(0))
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	read := func(r *Runner) Observatory {
		t.Helper()
		o, err := r.Observatory(wait, ReadOptions{MinPosition: last})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	before := read(live)
	if before.ClosedThrough != "2025-08" || len(before.Periods) != publishedMonths || before.Periods[0].Month != "2024-09" ||
		!before.PublishedAt.Equal(september.Add(closeGrace)) {
		t.Fatalf("the answer covers %s to %s (%d periods), published at %s", before.Periods[0].Month, before.ClosedThrough,
			len(before.Periods), before.PublishedAt)
	}
	if !strings.Contains(mustJSON(t, before), `"openCases":`) {
		t.Fatal("no département in the periods: the test proves little")
	}

	// Six cases open in Corsica in September, and a rupture is recorded.
	for range 6 {
		res, err := store.Append(ctx, 0, positionless(opening(t, "2B", obsNow)))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	oc := findObservedCase(t, territory)
	rupture := decided(t, oc.st.ID, territory[oc.index], domain.Command{Actor: domain.Actor{Institution: oc.st.Coordinator, Professional: "Référent"},
		Payload: &domain.PlacementChangedPayload{Reason: "rupture", PlaceOfLife: "Accueil d'urgence"}}, obsNow)
	res, err := store.Append(ctx, oc.st.Version, positionless(rupture))
	if err != nil {
		t.Fatal(err)
	}
	last = res.Position
	for _, now := range []time.Time{obsNow, october.Add(closeGrace - time.Second)} {
		clk.set(now)
		if a, b := mustJSON(t, read(live)), mustJSON(t, before); a != b {
			t.Fatalf("at %s, after September's events:\n got %s\nwant %s", now, a, b)
		}
	}

	clk.set(october.Add(closeGrace))
	closed := read(live)
	sept := closed.Periods[len(closed.Periods)-1]
	if closed.ClosedThrough != "2025-09" || sept.Month != "2025-09" {
		t.Fatalf("closed through %s, last period %s", closed.ClosedThrough, sept.Month)
	}
	if a, b := mustJSON(t, closed.Periods[:publishedMonths-1]), mustJSON(t, before.Periods[1:]); a != b {
		t.Fatalf("closing September changed earlier months:\n got %s\nwant %s", a, b)
	}
	corsica := slices.IndexFunc(sept.Departements, func(d DepartementStats) bool { return d.Departement == "2B" })
	if corsica < 0 {
		t.Fatalf("September does not list the cases opened in it: %s", mustJSON(t, sept))
	}
	if n, shown := sept.Departements[corsica].OpenCases.Value(); !shown || n != 6 {
		t.Fatalf("September's open cases in 2B: %s", mustJSON(t, sept.Departements[corsica]))
	}
	for _, p := range closed.Periods[:publishedMonths-1] {
		if strings.Contains(mustJSON(t, p), `"2B"`) {
			t.Fatalf("%s lists cases opened in September", p.Month)
		}
	}
	want := mustJSON(t, closed)

	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	restored := mustRunner(t, store, WithClock(clk.now), WithSnapshot(snapshot))
	if err := restored.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rebuilt := mustRunner(t, store, WithClock(clk.now))
	if _, err := rebuilt.Rebuild(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*Runner{"restored from the snapshot": restored, "rebuilt": rebuilt} {
		if got := mustJSON(t, read(r)); got != want {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// positionless returns events as given to a store's Append.
func positionless(events []domain.Event) []domain.Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].Position = 0
	}
	return out
}

// A territory with no case yet: the answer says which month it is closed
// through, and lists no period.
func ExampleObservatory() {
	b, _ := json.Marshal(newModels(nil).observatory(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)))
	fmt.Println(string(b))
	// Output: {"threshold":5,"publishedAt":"2026-12-01T01:00:00Z","closedThrough":"2026-11","periods":[]}
}
