package projections

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/maillage/maillage/domain"
)

// CaseCard is one case of a viewer's list ("mes dossiers"), folded from the
// events the viewer sees in full, so that it never tells more than their
// timeline: the child's reference, the legal frame, the coordinator, and
// the badges a professional scans a list for.
type CaseCard struct {
	CaseID         domain.CaseID     `json:"caseId"`
	Version        uint64            `json:"version"` // as the viewer may know it
	ChildReference string            `json:"childReference"`
	LegalFrame     domain.LegalFrame `json:"legalFrame"`
	Departement    string            `json:"departement"`
	Coordinator    InstitutionRef    `json:"coordinator"`
	OpenedAt       time.Time         `json:"openedAt"`
	Closed         bool              `json:"closed"`
	// Member is false for a former member (the case as it was at its
	// leaving) and for family members and auditors.
	Member bool `json:"member"`
	// CrisisOngoing: a crisis the viewer sees declared and not resolved.
	CrisisOngoing bool `json:"crisisOngoing"`
	// OrderInForce: an order of the judge the viewer sees is in force.
	OrderInForce bool `json:"orderInForce"`
	// Overdue: one of the case's deadlines is past (current members only).
	Overdue bool `json:"overdue"`
	// NextDeadline is the earliest deadline (current members only).
	NextDeadline *Deadline `json:"nextDeadline,omitempty"`
}

// cardTypes are the events a case card is folded from.
var cardTypes = func() map[domain.EventType]bool {
	t := maps.Clone(accessTypes)
	t[domain.CrisisDeclared], t[domain.CrisisResolved] = true, true
	return t
}()

// knownCases returns a card for every case v may know exists.
func (m *models) knownCases(ctx context.Context, v domain.Viewer, now time.Time, rules deadlineRules) ([]CaseCard, error) {
	var cards []CaseCard
	for _, id := range m.caseIDs() {
		err := m.read(ctx, id, v, now, time.Time{}, cardTypes, func(h *history) error {
			cards = append(cards, foldCard(h, v, rules))
			return nil
		})
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return nil, err
		}
	}
	return cards, nil
}

func foldCard(h *history, v domain.Viewer, rules deadlineRules) CaseCard {
	seen := domain.NewState(h.id)
	n := newNames()
	h.visibleOf(v, cardTypes, func(e domain.Event, d domain.Decision) {
		if d.Visibility != domain.Full {
			return
		}
		seen.Apply(e)
		n.learn(decode(e))
	})
	card := CaseCard{CaseID: h.id, Version: h.version, ChildReference: seen.ChildReference, LegalFrame: seen.LegalFrame,
		Departement: seen.Departement, OpenedAt: seen.OpenedAt, Closed: seen.Closed,
		Coordinator: InstitutionRef{Institution: seen.Coordinator, Name: n.institution(seen.Coordinator), Kind: n.kinds[seen.Coordinator]}}
	for _, c := range seen.Crises {
		card.CrisisOngoing = card.CrisisOngoing || !c.Resolved
	}
	for _, r := range seen.Restrictions {
		card.OrderInForce = card.OrderInForce || r.ActiveAt(h.at)
	}
	if domain.CurrentMembersOnly(h.current, v, "", "") == nil {
		card.Member = v.Role == domain.RoleProfessional
		list, _ := foldDeadlines(h, v, rules)
		for i, d := range list {
			card.Overdue = card.Overdue || d.Overdue
			if i == 0 {
				card.NextDeadline = &list[0]
			}
		}
	}
	return card
}

// KnownCases returns a card for every case v may know exists
// (domain.MayKnow), in no particular order. ErrBehind, ErrStopped.
func (r *Runner) KnownCases(ctx context.Context, v domain.Viewer, o ReadOptions) ([]CaseCard, error) {
	if err := r.freshAll(ctx, o); err != nil {
		return nil, err
	}
	return r.m().knownCases(ctx, v, r.now(), r.rulesFor(o))
}
