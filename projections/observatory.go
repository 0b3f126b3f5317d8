package projections

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maillage/maillage/domain"
)

// SuppressionThreshold is the smallest count the observatory shows: any
// count below it is shown as "<5", and so is any figure computed from
// fewer cases or events.
const SuppressionThreshold = 5

// Observatory is the inter-sector observatory (charter art. 4): anonymised
// aggregates per département. It holds no case id, no pseudonym, no date
// finer than a month, and no count below SuppressionThreshold.
type Observatory struct {
	Month        string             `json:"month"` // when computed: "2026-11"
	Threshold    int                `json:"threshold"`
	Departements []DepartementStats `json:"departements"`
}

// DepartementStats are one département's figures.
type DepartementStats struct {
	Departement string `json:"departement"`
	// OpenCases are the cases not closed.
	OpenCases Count `json:"openCases"`
	// SharedChildWelfareCare are the open cases where a child-welfare
	// institution (ASE, MECS, foster care, AEMO, AED) and a care service
	// (DITEP, CMP) are both current members.
	SharedChildWelfareCare Count `json:"sharedChildWelfareCare"`
	// UnplannedPlacementChanges are the ruptures recorded (placement changes
	// not planned), over all cases and all time; PerChildYear divides them
	// by the years the cases have been followed (from opening to closing or
	// now), shown when both the ruptures and the cases reach the threshold.
	UnplannedPlacementChanges Count    `json:"unplannedPlacementChanges"`
	PerChildYear              *float64 `json:"unplannedPlacementChangesPerChildYear,omitempty"`
	// FirstSynthesis: the cases that held a synthesis meeting, and the
	// median number of days from their opening to the first one.
	FirstSynthesisCases      Count `json:"firstSynthesisCases"`
	MedianDaysToFirstMeeting *int  `json:"medianDaysToFirstSynthesis,omitempty"`
	// Crises are the crises declared, over all cases and all time.
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

// depTotals are a département's raw figures, before suppression.
type depTotals struct {
	cases, open, shared, ruptures, crises int
	childYears                            float64
	firstSynthesisDays                    []int
}

func (m *models) observatory(now time.Time) Observatory {
	totals := map[string]*depTotals{}
	for _, id := range m.caseIDs() {
		c := m.get(id)
		c.mu.Lock()
		f, st := c.facts, c.state
		if !st.Opened {
			c.mu.Unlock()
			continue
		}
		t := totals[f.departement]
		if t == nil {
			t = &depTotals{}
			totals[f.departement] = t
		}
		t.cases++
		t.ruptures += f.ruptures
		t.crises += f.crises
		end := now
		if !f.closedAt.IsZero() {
			end = f.closedAt
		}
		if end.After(f.openedAt) {
			t.childYears += end.Sub(f.openedAt).Hours() / 24 / 365.25
		}
		if !f.firstSynthesis.IsZero() {
			t.firstSynthesisDays = append(t.firstSynthesisDays, max(0, int(f.firstSynthesis.Sub(f.openedAt).Hours()/24)))
		}
		if !st.Closed {
			t.open++
			if shared(st) {
				t.shared++
			}
		}
		c.mu.Unlock()
	}
	o := Observatory{Month: now.Format("2006-01"), Threshold: SuppressionThreshold, Departements: []DepartementStats{}}
	for dep, t := range totals {
		o.Departements = append(o.Departements, t.stats(dep))
	}
	slices.SortFunc(o.Departements, func(a, b DepartementStats) int { return strings.Compare(a.Departement, b.Departement) })
	return o
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
	if t.cases >= SuppressionThreshold && t.ruptures >= SuppressionThreshold && t.childYears > 0 {
		rate := math.Round(float64(t.ruptures)/t.childYears*100) / 100
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
