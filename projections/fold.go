package projections

import (
	"context"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// history is a case as one read sees it: the access state the policy is
// evaluated against, the events up to then, and when.
type history struct {
	id      domain.CaseID
	current *domain.State // the case now: decides who may know it
	state   *domain.State // the case at `at`: decides what each event shows
	events  []domain.Event
	at      time.Time
	asOf    bool
}

// read runs fn on a case's history now, or as of a past time when asOf is
// not zero: then the events recorded at or before asOf (the longest such
// prefix of the case's sequence), their state, and the policy evaluated at
// asOf. A read now that needs only some types of events may name them
// (types; nil for all). The case is locked while fn runs; fn must not keep
// the events. cases.ErrNotFound for a case the models do not hold.
func (m *models) read(ctx context.Context, id domain.CaseID, now, asOf time.Time, types map[domain.EventType]bool, fn func(h *history) error) error {
	c := m.get(id)
	if c == nil {
		return cases.ErrNotFound
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !asOf.IsZero() {
		types = nil // the state as of then is folded from every event
	}
	events, err := c.log.events(id, &m.zones, types)
	if err != nil {
		return err
	}
	if m.open != nil {
		if events, err = m.open(ctx, id, events); err != nil {
			return err
		}
	}
	h := &history{id: id, current: c.state, state: c.state, events: events, at: now}
	if !asOf.IsZero() && asOf.Before(now) {
		n := 0
		for n < len(events) && !events[n].RecordedAt.After(asOf) {
			n++
		}
		h.events = events[:n]
		h.state = domain.Fold(id, h.events)
		h.at, h.asOf = asOf, true
	}
	return fn(h)
}

// mayKnow applies the timeline's rule: whoever may not know the case is
// answered as if it did not exist.
func (h *history) mayKnow(v domain.Viewer) error {
	if !cases.MayKnow(h.current, v) {
		return cases.ErrNotFound
	}
	return nil
}

// currentMembersOnly lets auditors and current members through, and refuses
// family members and former members (who read the plan and the chronology).
func (h *history) currentMembersOnly(v domain.Viewer, rule, what string) error {
	if err := h.mayKnow(v); err != nil {
		return err
	}
	if v.Role == domain.RoleAuditor || v.Role == domain.RoleProfessional && h.current.IsMember(v.Institution) {
		return nil
	}
	return &domain.Error{Code: domain.EForbidden, Rule: rule,
		Message: what + " est réservé(e) aux membres actuels du dossier ; consultez le projet partagé et la chronologie"}
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
	sight := domain.SightOf(h.state, v, h.at)
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
