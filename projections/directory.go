package projections

import (
	"cmp"
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
func (m *models) memberCases(inst domain.InstitutionID, now time.Time) ([]MemberCase, error) {
	v := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
	out := []MemberCase{}
	for _, id := range m.memberOf(inst) {
		c := m.get(id)
		if c == nil {
			continue
		}
		c.mu.Lock()
		mc, ok, err := memberCase(c, &m.zones, v, now)
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

// memberCase reads only the case's first event; the caller holds c.mu.
func memberCase(c *caseModel, zones *zoneCache, v domain.Viewer, now time.Time) (MemberCase, bool, error) {
	mb, ok := c.state.Members[v.Institution]
	if !ok || !mb.Active() {
		return MemberCase{}, false, nil
	}
	mc := MemberCase{CaseID: c.id, Coordinator: c.state.Coordinator == v.Institution, Referent: mb.Referent,
		JoinedAt: mb.JoinedAt, Closed: c.state.Closed}
	r := &logReader{b: c.log.b, zones: zones}
	first, err := r.next()
	if err != nil {
		return MemberCase{}, false, err
	}
	first.CaseID = c.id
	if domain.See(c.state, v, first, now).Visibility == domain.Full {
		if p, ok := decode(first).(*domain.CaseOpenedPayload); ok {
			mc.ChildReference, mc.Departement = p.ChildReference, p.Departement
		}
	}
	return mc, true, nil
}
