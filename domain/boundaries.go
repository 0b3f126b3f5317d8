package domain

import "time"

// The rules of this file say when what viewers may see of a case's earlier
// events can change: with an event (ChangesAccess), or with time alone, when
// a consent or an order starts or stops being in force (AccessBoundaryPassed,
// NextAccessBoundary). A reader that keeps what it showed (the partner feeds'
// relay) compares it with the policy again then, and only then.

// ChangesAccess reports whether recording e may change what some viewer sees
// of the events recorded before it:
//   - ConsentGiven, ConsentWithdrawn: health for the members a consent
//     covers (rule 4);
//   - JudicialRestrictionImposed, JudicialRestrictionLifted: what an order's
//     subjects see of its period (rules 3 and 5);
//   - PartnerJoined: a new member sees the history from the opening, and a
//     member that comes back sees again what was decided while it was away
//     (a former member is told nothing after its leaving, so a consent given
//     meanwhile reaches it only now); the family's redactions of where the
//     child lives name the members that can be a place of life;
//   - FamilyMemberRecorded: a new family viewer sees the history;
//   - FamilyNotInformed, FamilyInformed: the family's view of the membership
//     events of the member concerned, and of what mentions it (rule 5).
//
// PartnerLeft does not: the former member sees what it saw of the events up
// to its leaving, and nothing of the later ones, which is decided as they
// come (rule 2), not by comparing again. ReferentChanged,
// CoordinationHandedOver and the plan's events change no one's view of what
// came before.
func ChangesAccess(e Event) bool {
	switch e.Type {
	case ConsentGiven, ConsentWithdrawn, JudicialRestrictionImposed, JudicialRestrictionLifted,
		PartnerJoined, FamilyMemberRecorded, FamilyNotInformed, FamilyInformed:
		return true
	}
	return false
}

// AccessBoundaryPassed reports whether a consent or an order of the case
// started or stopped being in force after from and up to to (from < t ≤ to):
// what viewers may see may have changed with time alone in between.
func AccessBoundaryPassed(s *State, from, to time.Time) bool {
	passed := false
	eachAccessBoundary(s, func(t time.Time) {
		passed = passed || (t.After(from) && !t.After(to))
	})
	return passed
}

// NextAccessBoundary returns the first time after now at which a consent or
// an order of the case starts or stops being in force (zero when none).
func NextAccessBoundary(s *State, now time.Time) time.Time {
	var next time.Time
	eachAccessBoundary(s, func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	})
	return next
}

// eachAccessBoundary calls f with every time a consent or an order of the
// case starts or stops being in force, as ActiveAt decides: at its from, and
// at its until or at its withdrawal or lifting when earlier. One that ended
// before it started never is in force and has none.
func eachAccessBoundary(s *State, f func(time.Time)) {
	bound := func(from, until time.Time, endedSeq uint64, endedAt time.Time) {
		end := until
		if endedSeq != 0 && endedAt.Before(end) {
			end = endedAt
		}
		if from.Before(end) {
			f(from)
			f(end)
		}
	}
	for _, c := range s.Consents {
		bound(c.From, c.Until, c.WithdrawnSeq, c.WithdrawnAt)
	}
	for _, r := range s.Restrictions {
		bound(r.From, r.Until, r.LiftedSeq, r.LiftedAt)
	}
}

// Telling is what may still be told to a viewer on a path that pushes to it
// what changes in a case (the partner feeds), given the case's state.
type Telling struct {
	// Through is the last sequence a message to the viewer may carry or
	// name (as its cause): the case's version, or for a former member its
	// leaving.
	Through uint64
	// ShowMore is whether the viewer may be shown more than it was of what
	// it holds (a reveal).
	ShowMore bool
}

// TellingOf is rule 2 for what is pushed to viewer v: a former member is
// told nothing recorded after its leaving, in any form. No event, no stub,
// no message naming a later sequence; and nothing of what it holds is shown
// more, since a consent given or an order lifted after its leaving is
// recorded after it. What the policy now hides of what it holds is still
// withdrawn from it: a recipient must be told when what it was given may no
// longer be kept (GDPR art. 19), and the notice names its leaving as the
// cause, nothing later. A member that comes back is told again like any
// member. Whoever may not know the case is told nothing. Through is
// KnownVersion: what a viewer is told never goes beyond what it may know.
func TellingOf(s *State, v Viewer) Telling {
	through := KnownVersion(s, v)
	if through == 0 {
		return Telling{}
	}
	former := v.Role == RoleProfessional && !s.Members[v.Institution].Active()
	return Telling{Through: through, ShowMore: !former}
}
