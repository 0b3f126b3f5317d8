package domain

import (
	"fmt"
	"testing"
	"time"
)

func TestChangesAccess(t *testing.T) {
	for _, c := range []struct {
		typ  EventType
		want bool
	}{
		{ConsentGiven, true},
		{ConsentWithdrawn, true},
		{JudicialRestrictionImposed, true},
		{JudicialRestrictionLifted, true},
		{PartnerJoined, true},        // a member coming back sees again what was decided while away
		{FamilyMemberRecorded, true}, // a new family viewer
		{FamilyNotInformed, true},    // the family no longer sees the member's membership events
		{FamilyInformed, true},       // ... and sees them again
		{PartnerLeft, false},         // the former member's view of what came before does not change
		{ReferentChanged, false},     // no rule reads the referent
		{CoordinationHandedOver, false},
		{CaseOpened, false},
		{ObservationRecorded, false},
		{PlacementChanged, false},
		{"SomethingNewer", false}, // the state keeps nothing of an unknown type
	} {
		if got := ChangesAccess(Event{Type: c.typ}); got != c.want {
			t.Errorf("ChangesAccess(%s) = %v, want %v", c.typ, got, c.want)
		}
	}
}

type boundaryCase struct {
	name string
	// given builds the case's consents and orders.
	given func(h *history)
	now   time.Time
	want  time.Time // NextAccessBoundary(now)
}

var (
	day        = 24 * time.Hour
	dayOne     = t0.Add(30 * day)
	dayTwo     = dayOne.Add(day)
	dayThree   = dayOne.Add(2 * day)
	healthOnly = []Category{CategoryHealth}
)

func boundaryCases() []boundaryCase {
	return []boundaryCase{
		{
			name:  "given a case without consent or order, there is no boundary",
			given: func(h *history) {},
			now:   t0, want: time.Time{},
		},
		{
			name: "given a case with a consent from day one until day three, before day one the next boundary is its start",
			given: func(h *history) {
				h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayThree)
			},
			now: t0, want: dayOne,
		},
		{
			name: "given a case with a consent from day one until day three, while in force the next boundary is its end",
			given: func(h *history) {
				h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayThree)
			},
			now: dayTwo, want: dayThree,
		},
		{
			name: "given a case with a consent from day one until day three, at its start the next boundary is its end",
			given: func(h *history) {
				h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayThree)
			},
			now: dayOne, want: dayThree,
		},
		{
			name: "given a case with a consent that ran out, there is no boundary after it",
			given: func(h *history) {
				h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayTwo)
			},
			now: dayThree, want: time.Time{},
		},
		{
			name: "given a consent withdrawn while in force, its until is no boundary any more",
			given: func(h *history) {
				c := h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, t0, dayThree)
				h.withdraw(c, mother)
			},
			now: dayOne, want: time.Time{},
		},
		{
			name: "given a consent withdrawn before its start, it never is in force: no boundary",
			given: func(h *history) {
				c := h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayThree)
				h.withdraw(c, mother)
			},
			now: t0, want: time.Time{},
		},
		{
			name: "given a consent until day three and an order from day two, the order's start comes first",
			given: func(h *history) {
				h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, t0, dayThree)
				h.restrict(PartnerExcluded, "TPE 26/1", nil, []InstitutionID{mecs}, dayTwo, dayThree.Add(day))
			},
			now: dayOne, want: dayTwo,
		},
		{
			name: "given an order lifted before its until, its until is no boundary",
			given: func(h *history) {
				id, _ := h.restrict(FamilyInformationLimited, "TPE 26/2", []PersonID{mother}, nil, t0, dayThree)
				h.lift(id, "TPE 26/2")
			},
			now: dayOne, want: time.Time{},
		},
		{
			name: "given an order in force from day one until day three, while in force its end is the next boundary",
			given: func(h *history) {
				h.restrict(PlacementAddressSecret, "TPE 26/3", []PersonID{father}, nil, dayOne, dayThree)
			},
			now: dayTwo, want: dayThree,
		},
	}
}

func TestNextAccessBoundary(t *testing.T) {
	for _, c := range boundaryCases() {
		t.Run(c.name, func(t *testing.T) {
			h := basic(t)
			c.given(h)
			if got := NextAccessBoundary(h.state, c.now); !got.Equal(c.want) {
				t.Errorf("NextAccessBoundary(%s) = %s, want %s", c.now, got, c.want)
			}
		})
	}
}

func TestAccessBoundaryPassed(t *testing.T) {
	given := func(h *history) {
		h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, dayOne, dayThree)
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     bool
	}{
		{"given a consent from day one until day three, nothing passes before day one", t0, dayOne.Add(-time.Second), false},
		{"given a consent from day one until day three, its start passes when reaching day one", t0, dayOne, true},
		{"given a consent from day one until day three, its start passed already at day one", dayOne, dayTwo, false},
		{"given a consent from day one until day three, its end passes when reaching day three", dayTwo, dayThree, true},
		{"given a consent from day one until day three, both pass over the whole span", t0, dayThree.Add(day), true},
		{"given a consent from day one until day three, nothing passes after day three", dayThree, dayThree.Add(day), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := basic(t)
			given(h)
			if got := AccessBoundaryPassed(h.state, c.from, c.to); got != c.want {
				t.Errorf("AccessBoundaryPassed(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
			}
		})
	}
}

// Between two times with no boundary passed, no viewer's timeline changes:
// the boundaries are every time-bound change the policy makes.
func TestNoViewChangesBetweenAccessBoundaries(t *testing.T) {
	for _, c := range boundaryCases() {
		t.Run(c.name, func(t *testing.T) {
			h := basic(t)
			h.observe(ditep, CategoryHealth, "bilan")
			h.placement(mecs, mecs)
			c.given(h)
			h.observe(ase, CategoryHealth, "hospitalisation")
			h.observe(mecs, CategoryDailyLife, "semaine calme")
			viewers := []Viewer{professional(mecs), professional(ditep), professional(ase), parent(mother), parent(father)}
			times := []time.Time{t0}
			for at := t0; at.Before(dayThree.Add(2 * day)); at = at.Add(day) {
				times = append(times, at)
			}
			for _, b := range []time.Time{dayOne, dayTwo, dayThree} {
				times = append(times, b.Add(-time.Nanosecond), b, b.Add(time.Nanosecond))
			}
			for _, from := range times {
				for _, to := range times {
					if !to.After(from) || AccessBoundaryPassed(h.state, from, to) {
						continue
					}
					for _, v := range viewers {
						if a, b := sightKey(h, v, from), sightKey(h, v, to); a != b {
							t.Fatalf("%v's timeline changed between %s and %s with no boundary passed", v, from, to)
						}
					}
				}
			}
		})
	}
}

// sightKey is what viewer v sees of the whole case at time now: each
// event's visibility, redacted fields and rule.
func sightKey(h *history, v Viewer, now time.Time) string {
	key := ""
	for _, e := range h.events {
		d := See(h.state, v, e, now)
		key += fmt.Sprintf("%d:%s:%v:%s ", e.Sequence, d.Visibility, d.Fields, d.Rule)
	}
	return key
}

func TestTellingOf(t *testing.T) {
	stranger := PersonID{7}
	for _, c := range []struct {
		name  string
		given func(h *history)
		v     Viewer
		want  Telling
	}{
		{"a current member is told everything, shown more when the policy shows more", func(h *history) {
			h.observe(ase, CategoryDailyLife, "un")
			h.observe(ase, CategoryDailyLife, "deux")
		}, professional(mecs), Telling{Through: 7, ShowMore: true}},
		{"a former member is told nothing after its leaving, and shown nothing more", func(h *history) {
			h.leave(mecs)
			h.observe(ase, CategoryDailyLife, "après")
		}, professional(mecs), Telling{Through: 6}},
		{"a former member is not shown more by a consent given after its leaving", func(h *history) {
			h.leave(mecs)
			h.consent(mother, []InstitutionID{mecs}, nil, healthOnly, t0, dayThree)
		}, professional(mecs), Telling{Through: 6}},
		{"a member that comes back is told again like any member", func(h *history) {
			h.leave(mecs)
			h.observe(ase, CategoryDailyLife, "après")
			h.join(mecs, KindMECS, "MECS Les Tilleuls")
		}, professional(mecs), Telling{Through: 8, ShowMore: true}},
		{"an institution that never was a member is told nothing", func(h *history) {}, professional(school), Telling{}},
		{"a recorded parent is told everything the policy lets them see", func(h *history) {}, parent(mother), Telling{Through: 5, ShowMore: true}},
		{"a person not recorded as family is told nothing", func(h *history) {}, parent(stranger), Telling{}},
		{"an auditor is told everything", func(h *history) {}, Viewer{Role: RoleAuditor}, Telling{Through: 5, ShowMore: true}},
		{"an admin is told nothing of cases", func(h *history) {}, Viewer{Role: RoleAdmin}, Telling{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := basic(t)
			c.given(h)
			if got := TellingOf(h.state, c.v); got != c.want {
				t.Errorf("TellingOf = %+v, want %+v (case at %d)", got, c.want, h.state.Version)
			}
		})
	}
}
