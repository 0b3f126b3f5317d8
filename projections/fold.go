package projections

import (
	"context"
	"time"

	"github.com/maillage/maillage/domain"
)

// history is a case as one viewer's read sees it: the events up to the
// read's date that the viewer may know of, the access state and date the
// policy decides them with, and the date the read is as of.
type history struct {
	id      domain.CaseID
	current *domain.State // the case now: decides who may know it
	policy  *domain.State // the access state the policy is evaluated against
	// policyAt is the date the policy is evaluated at: now, except for an
	// auditor's read as of a past date (domain.PolicyAt).
	policyAt time.Time
	events   []domain.Event
	version  uint64    // the last sequence shown: the read's version
	at       time.Time // the date the read is as of (now, or asOf)
	asOf     bool
}

// read runs fn on a case's history as viewer v may see it now, or as of a
// past time when asOf is not zero: then the events recorded at or before
// asOf (the longest such prefix of the case's sequence), decided by the
// policy as domain.PolicyAt says (as it stands now for everyone but
// auditors). The events stop at what the viewer may know of
// (domain.KnownVersion). A read now that needs only some types of events may
// name them (types; nil for all). The case is locked while fn runs; fn must
// not keep the events. domain.ErrNotFound for a case the models do not hold
// or the viewer may not know.
func (m *models) read(ctx context.Context, id domain.CaseID, v domain.Viewer, now, asOf time.Time, types map[domain.EventType]bool, fn func(h *history) error) error {
	c := m.get(id)
	if c == nil {
		return domain.ErrNotFound
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := m.warmLocked(c); err != nil {
		return err
	}
	if !domain.MayKnow(c.state, v) {
		return domain.ErrNotFound
	}
	past := !asOf.IsZero() && asOf.Before(now)
	if past {
		types = nil // the version as of then is counted from every event
	}
	events, err := c.log.events(id, &m.zones, types)
	if err != nil {
		return err
	}
	known := domain.KnownVersion(c.state, v)
	if n := len(events); n > 0 && events[n-1].Sequence > known {
		cut := 0
		for cut < n && events[cut].Sequence <= known {
			cut++
		}
		events = events[:cut]
	}
	if m.open != nil {
		if events, err = m.open(ctx, id, events); err != nil {
			return err
		}
	}
	h := &history{id: id, current: c.state, policy: c.state, policyAt: now, events: events, version: known, at: now}
	if past {
		n := 0
		for n < len(events) && !events[n].RecordedAt.After(asOf) {
			n++
		}
		h.events, h.version, h.at, h.asOf = events[:n], uint64(n), asOf, true
		if at, historical := domain.PolicyAt(v, asOf, now); historical {
			h.policy, h.policyAt = domain.Fold(id, h.events), at
		}
	}
	return fn(h)
}

// currentMembersOnly lets auditors and current members through, and refuses
// family members and former members (who read the plan and the chronology).
func (h *history) currentMembersOnly(v domain.Viewer, rule, what string) error {
	return domain.CurrentMembersOnly(h.current, v, rule,
		what+" est réservé(e) aux membres actuels du dossier ; consultez le projet partagé et la chronologie")
}

// visible calls fn for each event of the history the viewer may see, in
// sequence order, as the policy lets them see it: hidden events are left
// out; redacted ones come without the removed payload fields (and without
// their actor when "actor" is removed), so that no read model can tell what
// the policy withholds.
func (h *history) visible(v domain.Viewer, fn func(e domain.Event, d domain.Decision)) {
	h.visibleOf(v, nil, fn)
}

// visibleOf is visible for the events of the given types only (all when
// types is nil): a read that needs few types skips the policy and the
// decoding of the others.
func (h *history) visibleOf(v domain.Viewer, types map[domain.EventType]bool, fn func(e domain.Event, d domain.Decision)) {
	sight := domain.SightOf(h.policy, v, h.policyAt)
	for _, e := range h.events {
		if types != nil && !types[e.Type] {
			continue
		}
		d := sight.See(e)
		switch d.Visibility {
		case domain.Full:
		case domain.Redacted:
			view := domain.View(e, d)
			e.Payload = view.Payload
			if view.Actor == nil {
				e.Actor = domain.Actor{}
			}
		default:
			continue
		}
		fn(e, d)
	}
}

// seenState folds the access state from the events the viewer sees in full:
// what who-sees-what and the deadlines are computed from, so they never tell
// more than the viewer's timeline.
func (h *history) seenState(v domain.Viewer) *domain.State {
	seen := domain.NewState(h.id)
	h.visibleOf(v, accessTypes, func(e domain.Event, d domain.Decision) {
		if d.Visibility == domain.Full {
			seen.Apply(e)
		}
	})
	return seen
}

// accessTypes are the events that change who sees what (members, family,
// consents, orders, who the family is not informed of) and the deadlines'
// other inputs (the opening, synthesis meetings, closing).
var accessTypes = map[domain.EventType]bool{
	domain.CaseOpened: true, domain.PartnerJoined: true, domain.PartnerLeft: true, domain.ReferentChanged: true,
	domain.CoordinationHandedOver: true, domain.FamilyMemberRecorded: true, domain.SynthesisMeetingHeld: true,
	domain.ConsentGiven: true, domain.ConsentWithdrawn: true, domain.JudicialRestrictionImposed: true,
	domain.JudicialRestrictionLifted: true, domain.FamilyInformed: true, domain.FamilyNotInformed: true, domain.CaseClosed: true,
}

// decode returns a visible event's payload, nil when it has none this code
// can read (unknown type, or the payload removed).
func decode(e domain.Event) domain.Payload {
	if len(e.Payload) == 0 {
		return nil
	}
	p, err := e.Decode()
	if err != nil {
		return nil
	}
	return p
}

// names are the names of institutions and family members as the viewer's
// visible events tell them.
type names struct {
	institutions map[domain.InstitutionID]string
	kinds        map[domain.InstitutionID]domain.InstitutionKind
	family       map[domain.PersonID]string
}

func newNames() *names {
	return &names{institutions: map[domain.InstitutionID]string{}, kinds: map[domain.InstitutionID]domain.InstitutionKind{},
		family: map[domain.PersonID]string{}}
}

func (n *names) learn(p domain.Payload) {
	switch p := p.(type) {
	case *domain.CaseOpenedPayload:
		if p.Coordinator != "" && p.CoordinatorName != "" {
			n.institutions[p.Coordinator], n.kinds[p.Coordinator] = p.CoordinatorName, p.CoordinatorKind
		}
	case *domain.PartnerJoinedPayload:
		if p.Institution != "" && p.Name != "" {
			n.institutions[p.Institution], n.kinds[p.Institution] = p.Name, p.Kind
		}
	case *domain.FamilyMemberRecordedPayload:
		if p.Name != "" {
			n.family[p.FamilyMember] = p.Name
		}
	}
}

// institution names an institution: its name when known, else its id; ""
// when the id itself was withheld.
func (n *names) institution(id domain.InstitutionID) string {
	if id == "" {
		return ""
	}
	if name, ok := n.institutions[id]; ok {
		return name
	}
	return string(id)
}

func (n *names) person(id domain.PersonID) string {
	if name, ok := n.family[id]; ok {
		return name
	}
	return "un membre de la famille"
}

// redactedFields returns the fields the decision removed, nil when none.
func redactedFields(d domain.Decision) []string {
	if d.Visibility != domain.Redacted {
		return nil
	}
	return append([]string(nil), d.Fields...)
}

// timePtr returns a pointer to t, nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
