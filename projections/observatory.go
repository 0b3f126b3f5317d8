package projections

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/maillage/maillage/domain"
)

// SuppressionThreshold is the smallest count the observatory shows: any
// count below it is shown as "<5", and so is any figure computed from
// fewer cases or events.
const SuppressionThreshold = 5

// The observatory publishes closed calendar months only (UTC), by the
// month in which events were recorded. Live counts were dropped: one new
// event, even one a reader receives as a stub, moved a live figure by one
// and told the reader what it was. A closed month's figures depend only on
// the events recorded before its end, and a recording time is the server's
// clock, not a business date, so no later event (backdated or not) changes
// them.
const (
	// closeGrace is how long after a month's end the observatory waits to
	// close it: a command decided just before midnight carries that time
	// but is appended, and applied here, a moment later.
	closeGrace = time.Hour
	// publishedMonths is how many closed months an answer lists at most.
	publishedMonths = 12
)

// Observatory is the inter-sector observatory (charter art. 4): anonymised
// aggregates per département and closed month. It holds no case id, no
// pseudonym, no figure of the current month, no date of a case finer than a
// month, and no count below SuppressionThreshold.
type Observatory struct {
	Threshold int `json:"threshold"`
	// PublishedAt is when the last period closed (its end plus closeGrace):
	// the same for every reader, a function of the calendar only.
	PublishedAt time.Time `json:"publishedAt"`
	// ClosedThrough is the last closed month ("2026-11"); the current one
	// is never shown.
	ClosedThrough string `json:"closedThrough"`
	// Periods are the closed months since the first case was recorded, the
	// last publishedMonths at most, oldest first.
	Periods []ObservatoryPeriod `json:"periods"`
}

// ObservatoryPeriod is one closed month's figures.
type ObservatoryPeriod struct {
	Month        string             `json:"month"` // "2026-11"
	Departements []DepartementStats `json:"departements"`
}

// DepartementStats are one département's figures for one closed month:
// stocks at the month's end, flows recorded during it.
type DepartementStats struct {
	Departement string `json:"departement"`
	// OpenCases are the cases opened and not closed at the month's end.
	OpenCases Count `json:"openCases"`
	// SharedChildWelfareCare are the open cases where, at the month's end,
	// a child-welfare institution (ASE, MECS, foster care, AEMO, AED) and a
	// care service (DITEP, CMP) are both current members.
	SharedChildWelfareCare Count `json:"sharedChildWelfareCare"`
	// UnplannedPlacementChanges are the ruptures (placement changes not
	// planned) recorded in the month; PerChildYear divides them by the
	// years the cases were followed within the month, shown when both the
	// ruptures and the cases followed reach the threshold.
	UnplannedPlacementChanges Count    `json:"unplannedPlacementChanges"`
	PerChildYear              *float64 `json:"unplannedPlacementChangesPerChildYear,omitempty"`
	// FirstSynthesis: the cases whose first synthesis meeting was recorded
	// in the month, and the median number of days (business dates) from
	// their opening to it.
	FirstSynthesisCases      Count `json:"firstSynthesisCases"`
	MedianDaysToFirstMeeting *int  `json:"medianDaysToFirstSynthesis,omitempty"`
	// Crises are the crises declared (recorded) in the month.
	Crises Count `json:"crises"`
}

// Count is a count shown only from SuppressionThreshold on: it encodes as a
// JSON number, or as the string "<5" below the threshold.
type Count struct {
	n          int
	suppressed bool
}

func count(n int) Count { return Count{n: n, suppressed: n < SuppressionThreshold} }

// Value returns the count and whether it is shown.
func (c Count) Value() (int, bool) {
	if c.suppressed {
		return 0, false
	}
	return c.n, true
}

// MarshalJSON encodes the count, or "<5" when it is suppressed.
func (c Count) MarshalJSON() ([]byte, error) {
	if c.suppressed {
		return []byte(`"<` + strconv.Itoa(SuppressionThreshold) + `"`), nil
	}
	return strconv.AppendInt(nil, int64(c.n), 10), nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *Count) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*c = Count{n: n}
		return nil
	}
	*c = Count{suppressed: true}
	return nil
}

var childWelfareKinds = []domain.InstitutionKind{domain.KindASE, domain.KindMECS, domain.KindFoster, domain.KindAEMO, domain.KindAED}

// depTotals are a département's raw figures for one month, before
// suppression; cases are the cases followed during the month, for
// followedSeconds in all (whole seconds: a sum that does not depend on the
// order the cases are read in).
type depTotals struct {
	cases, open, shared, ruptures, crises int
	followedSeconds                       int64
	firstSynthesisDays                    []int
}

// monthCache holds the closed months computed so far (computed once: their
// figures never change), and when the first case was recorded.
type monthCache struct {
	mu     sync.Mutex
	first  time.Time                     // recording of the earliest CaseOpened; zero: none
	months map[string][]DepartementStats // by "2006-01", already suppressed
}

// opened notes a case opening recorded at t.
func (mc *monthCache) opened(t time.Time) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.first.IsZero() || t.Before(mc.first) {
		mc.first = t
	}
}

// monthOf is the first instant (UTC) of t's month.
func monthOf(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// lastClosed is the last month closed at now: the month before the one
// now falls in, once closeGrace has passed since that one began.
func lastClosed(now time.Time) time.Time {
	return monthOf(now.Add(-closeGrace)).AddDate(0, -1, 0)
}

// observatory answers the closed months at now: those already computed from
// the cache, the others computed in one pass over the cases and kept.
func (m *models) observatory(now time.Time) Observatory {
	last := lastClosed(now)
	o := Observatory{Threshold: SuppressionThreshold, PublishedAt: last.AddDate(0, 1, 0).Add(closeGrace),
		ClosedThrough: last.Format("2006-01"), Periods: []ObservatoryPeriod{}}
	mc := &m.obs
	mc.mu.Lock()
	first := mc.first
	mc.mu.Unlock()
	if first.IsZero() {
		return o
	}
	from := last.AddDate(0, 1-publishedMonths, 0)
	if f := monthOf(first); f.After(from) {
		from = f
	}
	var months []time.Time
	for t := from; !t.After(last); t = t.AddDate(0, 1, 0) {
		months = append(months, t)
	}
	mc.mu.Lock()
	var missing []time.Time
	for _, t := range months {
		if _, ok := mc.months[t.Format("2006-01")]; !ok {
			missing = append(missing, t)
		}
	}
	mc.mu.Unlock()
	// Computed without the cache's lock: a case's mutex is taken before it
	// (observe), never after. Two reads computing the same month get the
	// same figures; the first kept is served.
	computed := m.computeMonths(missing)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.months == nil {
		mc.months = map[string][]DepartementStats{}
	}
	for k, v := range computed {
		if _, ok := mc.months[k]; !ok {
			mc.months[k] = v
		}
	}
	keep := map[string]bool{}
	for _, t := range months {
		k := t.Format("2006-01")
		keep[k] = true
		o.Periods = append(o.Periods, ObservatoryPeriod{Month: k, Departements: mc.months[k]})
	}
	for k := range mc.months {
		if !keep[k] {
			delete(mc.months, k) // out of the window: never listed again
		}
	}
	return o
}

// computeMonths computes the figures of the given months, suppressed.
func (m *models) computeMonths(months []time.Time) map[string][]DepartementStats {
	if len(months) == 0 {
		return nil
	}
	out := make(map[string][]DepartementStats, len(months))
	for i, totals := range m.monthTotals(months) {
		deps := []DepartementStats{}
		for dep, t := range totals {
			deps = append(deps, t.stats(dep))
		}
		slices.SortFunc(deps, func(a, b DepartementStats) int { return strings.Compare(a.Departement, b.Departement) })
		out[months[i].Format("2006-01")] = deps
	}
	return out
}

// monthTotals computes the raw figures of each month per département, in
// one pass over the cases, reading of each only what was recorded before
// the month's end.
func (m *models) monthTotals(months []time.Time) []map[string]*depTotals {
	totals := make([]map[string]*depTotals, len(months))
	for i := range totals {
		totals[i] = map[string]*depTotals{}
	}
	for _, id := range m.caseIDs() {
		c := m.get(id)
		c.mu.Lock()
		if !c.facts.opened.IsZero() {
			for i, start := range months {
				c.facts.count(totals[i], start, start.AddDate(0, 1, 0))
			}
		}
		c.mu.Unlock()
	}
	for _, deps := range totals {
		for _, t := range deps {
			slices.Sort(t.firstSynthesisDays) // in no order of the cases
		}
	}
	return totals
}

// count adds the case to its département's totals of the month [start,
// end), as recorded before end.
func (f *caseFacts) count(totals map[string]*depTotals, start, end time.Time) {
	if !f.opened.Before(end) {
		return
	}
	t := totals[f.departement]
	if t == nil {
		t = &depTotals{}
		totals[f.departement] = t
	}
	closedBy := !f.closed.IsZero() && f.closed.Before(end)
	followedFrom, followedTo := start, end
	if f.opened.After(start) {
		followedFrom = f.opened
	}
	if closedBy {
		followedTo = f.closed
	}
	if followedTo.After(followedFrom) {
		t.cases++
		t.followedSeconds += int64(followedTo.Sub(followedFrom) / time.Second)
	}
	if !closedBy {
		t.open++
		if f.sharedAt(end) {
			t.shared++
		}
	}
	t.ruptures += countIn(f.ruptures, start, end)
	t.crises += countIn(f.crises, start, end)
	if !f.firstSynthesis.Before(start) && f.firstSynthesis.Before(end) {
		t.firstSynthesisDays = append(t.firstSynthesisDays, f.daysToSynthesis)
	}
}

// sharedAt reports whether the case was shared between child welfare and
// care as recorded before t: the last change recorded before it says.
func (f *caseFacts) sharedAt(t time.Time) bool {
	shared := false
	for _, ch := range f.sharedChanges {
		if ch.at.Before(t) {
			shared = ch.shared
		}
	}
	return shared
}

// countIn counts the times in [start, end).
func countIn(times []time.Time, start, end time.Time) int {
	n := 0
	for _, t := range times {
		if !t.Before(start) && t.Before(end) {
			n++
		}
	}
	return n
}

// shared reports whether a child-welfare institution and a care service are
// both current members.
func shared(st *domain.State) bool {
	var welfare, care bool
	for _, mb := range st.Members {
		if !mb.Active() {
			continue
		}
		welfare = welfare || slices.Contains(childWelfareKinds, mb.Kind)
		care = care || mb.Kind.Care()
	}
	return welfare && care
}

// stats applies the suppression: counts below the threshold are hidden, and
// so is a count whose complement in a shown total would be (the open cases
// not shared), and every figure computed from too few cases.
func (t *depTotals) stats(dep string) DepartementStats {
	s := DepartementStats{Departement: dep, OpenCases: count(t.open), SharedChildWelfareCare: count(t.shared),
		UnplannedPlacementChanges: count(t.ruptures), FirstSynthesisCases: count(len(t.firstSynthesisDays)), Crises: count(t.crises)}
	if rest := t.open - t.shared; rest > 0 && rest < SuppressionThreshold {
		s.SharedChildWelfareCare = Count{n: t.shared, suppressed: true}
	}
	if t.cases >= SuppressionThreshold && t.ruptures >= SuppressionThreshold && t.followedSeconds > 0 {
		childYears := float64(t.followedSeconds) / (365.25 * 24 * 3600)
		rate := math.Round(float64(t.ruptures)/childYears*100) / 100
		s.PerChildYear = &rate
	}
	if n := len(t.firstSynthesisDays); n >= SuppressionThreshold {
		days := slices.Clone(t.firstSynthesisDays)
		slices.Sort(days)
		median := days[n/2]
		if n%2 == 0 {
			median = (days[n/2-1] + days[n/2]) / 2
		}
		s.MedianDaysToFirstMeeting = &median
	}
	return s
}
