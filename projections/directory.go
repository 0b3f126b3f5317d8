package projections

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/maillage/maillage/domain"
)

// MemberCase is a case an institution is a current member of, as that
// institution sees it.
type MemberCase struct {
	CaseID         domain.CaseID   `json:"caseId"`
	ChildReference string          `json:"childReference,omitempty"`
	Departement    string          `json:"departement,omitempty"`
	Coordinator    bool            `json:"coordinator"` // the institution coordinates the case
	Referent       domain.Referent `json:"referent"`    // the institution's referent on the case
	JoinedAt       time.Time       `json:"joinedAt"`
	Closed         bool            `json:"closed"`
}

// memberCases lists the cases inst is a current member of, newest joined
// first. What it tells of each case (its reference, its département) comes
// from the opening event, shown only when the policy lets inst see it.
func (m *models) memberCases(ctx context.Context, inst domain.InstitutionID, now time.Time) ([]MemberCase, error) {
	v := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
	out := []MemberCase{}
	for _, id := range m.memberOf(inst) {
		c := m.get(id)
		if c == nil {
			continue
		}
		c.mu.Lock()
		mc, ok, err := m.memberCase(ctx, c, v, now)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, mc)
		}
	}
	slices.SortFunc(out, func(a, b MemberCase) int {
		return cmp.Or(b.JoinedAt.Compare(a.JoinedAt), cmp.Compare(a.ChildReference, b.ChildReference))
	})
	return out, nil
}

// referentTypes are the events that name a member's referent.
var referentTypes = map[domain.EventType]bool{domain.CaseOpened: true, domain.PartnerJoined: true, domain.ReferentChanged: true}

// memberCase reads the case's opening and the events naming referents; the
// caller holds c.mu. The child's reference and the referents are personal
// data, sealed in the log and in the access state: they are read from those
// events, opened.
func (m *models) memberCase(ctx context.Context, c *caseModel, v domain.Viewer, now time.Time) (MemberCase, bool, error) {
	if err := m.warmLocked(c); err != nil {
		return MemberCase{}, false, err
	}
	mb, ok := c.state.Members[v.Institution]
	if !ok || !mb.Active() {
		return MemberCase{}, false, nil
	}
	mc := MemberCase{CaseID: c.id, Coordinator: c.state.Coordinator == v.Institution, Referent: mb.Referent,
		JoinedAt: mb.JoinedAt, Closed: c.state.Closed}
	events, err := c.log.events(c.id, &m.zones, referentTypes)
	if err != nil {
		return MemberCase{}, false, err
	}
	if m.open != nil {
		if events, err = m.open(ctx, c.id, events); err != nil {
			return MemberCase{}, false, err
		}
		if opened, ok := domain.Fold(c.id, events).Members[v.Institution]; ok {
			mc.Referent = opened.Referent
		}
	}
	if len(events) == 0 || events[0].Type != domain.CaseOpened {
		return mc, true, nil
	}
	if domain.See(c.state, v, events[0], now).Visibility == domain.Full {
		if p, ok := decode(events[0]).(*domain.CaseOpenedPayload); ok {
			mc.ChildReference, mc.Departement = p.ChildReference, p.Departement
		}
	}
	return mc, true, nil
}
