package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/maillage/maillage/domain"
)

// Deadline kinds.
const (
	// DeadlinePlanReview: the plan's review the law requires (art. D223-13
	// CASF: every 12 months, every 6 months under two).
	DeadlinePlanReview = "plan_review"
	// DeadlineSynthesis: no synthesis meeting for longer than the
	// configured interval (WithSynthesisInterval).
	DeadlineSynthesis = "synthesis_meeting"
	// DeadlineConsentExpiring: a consent in force ends within the horizon.
	DeadlineConsentExpiring = "consent_expiring"
	// DeadlineOrderExpiring: an order of the children's judge in force ends
	// within the horizon.
	DeadlineOrderExpiring = "order_expiring"
	// DeadlineFamilyInformation: a member joined and the family was neither
	// informed (FamilyInformed) nor, by a reasoned decision, not informed
	// (FamilyNotInformed) since: due at the joining (art. L226-2-2 CASF: the
	// family is told beforehand).
	DeadlineFamilyInformation = "family_information"
	// DeadlineNotInformedReview: a decision not to inform the family is due
	// for review.
	DeadlineNotInformedReview = "family_not_informed_review"
)

// Deadline is something due on a case.
type Deadline struct {
	Kind    string    `json:"kind"`
	Due     time.Time `json:"due"`
	Overdue bool      `json:"overdue"`
	// What is due, in French.
	What string `json:"what"`
	// Responsible is who should act: the coordinator.
	Responsible domain.InstitutionID `json:"responsible,omitempty"`
	// Institution is the member the deadline concerns, when it concerns one.
	Institution domain.InstitutionID `json:"institution,omitempty"`
	Consent     *ConsentRef          `json:"consent,omitempty"`
	Order       *OrderRef            `json:"order,omitempty"`
	// Sequence is the event the deadline runs from.
	Sequence uint64 `json:"sequence"`
	// CaseID and ChildReference are set in an institution's list.
	CaseID         *domain.CaseID `json:"caseId,omitempty"`
	ChildReference string         `json:"childReference,omitempty"`
}

// CaseDeadlines are the deadlines of one case.
type CaseDeadlines struct {
	CaseID      domain.CaseID `json:"caseId"`
	Version     uint64        `json:"version"`
	At          time.Time     `json:"at"`
	HorizonDays int           `json:"horizonDays"`
	Deadlines   []Deadline    `json:"deadlines"`
}

// InstitutionDeadlines are the deadlines, overdue or due within the horizon,
// of the open cases an institution is a member of.
type InstitutionDeadlines struct {
	Institution domain.InstitutionID `json:"institution"`
	At          time.Time            `json:"at"`
	HorizonDays int                  `json:"horizonDays"`
	Position    domain.Position      `json:"position"` // the read models' checkpoint
	Deadlines   []Deadline           `json:"deadlines"`
}

// deadlineRules are the configurable parts of the deadlines.
type deadlineRules struct {
	horizon           time.Duration
	synthesisInterval time.Duration
}

func (m *models) caseDeadlines(ctx context.Context, id domain.CaseID, v domain.Viewer, now time.Time, rules deadlineRules) (CaseDeadlines, error) {
	var out CaseDeadlines
	err := m.read(ctx, id, v, now, time.Time{}, accessTypes, func(h *history) error {
		if err := h.currentMembersOnly(v, "deadlines_members_only", "Le tableau des échéances"); err != nil {
			return err
		}
		list, _ := foldDeadlines(h, v, rules)
		out = CaseDeadlines{CaseID: id, Version: h.version, At: h.at, HorizonDays: days(rules.horizon), Deadlines: list}
		return nil
	})
	return out, err
}

func (m *models) institutionDeadlines(ctx context.Context, inst domain.InstitutionID, now time.Time, rules deadlineRules) (InstitutionDeadlines, error) {
	v := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
	out := InstitutionDeadlines{Institution: inst, At: now, HorizonDays: days(rules.horizon), Deadlines: []Deadline{}}
	limit := now.Add(rules.horizon)
	for _, id := range m.memberOf(inst) {
		err := m.read(ctx, id, v, now, time.Time{}, accessTypes, func(h *history) error {
			if domain.CurrentMembersOnly(h.current, v, "", "") != nil {
				return nil // left since the index was read
			}
			list, childRef := foldDeadlines(h, v, rules)
			for _, d := range list {
				if d.Due.After(limit) {
					continue
				}
				d.CaseID, d.ChildReference = &id, childRef
				out.Deadlines = append(out.Deadlines, d)
			}
			return nil
		})
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return InstitutionDeadlines{}, err
		}
	}
	slices.SortFunc(out.Deadlines, func(a, b Deadline) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.ChildReference, b.ChildReference), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Institution, b.Institution), cmp.Compare(a.CaseID.String(), b.CaseID.String()))
	})
	return out, nil
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }

// foldDeadlines computes a case's deadlines from the events the viewer sees
// in full, and returns the child's reference as the viewer knows it.
func foldDeadlines(h *history, v domain.Viewer, rules deadlineRules) ([]Deadline, string) {
	seen := domain.NewState(h.id)
	type told struct { // the last FamilyInformed or FamilyNotInformed about a member
		seq         uint64
		notInformed bool
		reviewOn    time.Time
	}
	var (
		birthMonth string
		openedSeq  uint64
		last       *SynthesisRef
		family     = map[domain.InstitutionID]told{}
	)
	h.visibleOf(v, accessTypes, func(e domain.Event, d domain.Decision) {
		if d.Visibility != domain.Full {
			return
		}
		seen.Apply(e)
		switch e.Type {
		case domain.CaseOpened, domain.FamilyInformed, domain.FamilyNotInformed, domain.SynthesisMeetingHeld:
		default:
			return // what the deadlines need of it is in the state
		}
		switch p := decode(e).(type) {
		case *domain.CaseOpenedPayload:
			birthMonth, openedSeq = p.ChildBirthMonth, e.Sequence
		case *domain.FamilyInformedPayload:
			family[p.Institution] = told{seq: e.Sequence}
		case *domain.FamilyNotInformedPayload:
			family[p.Institution] = told{seq: e.Sequence, notInformed: true, reviewOn: p.ReviewOn}
		case *domain.SynthesisMeetingHeldPayload:
			last = &SynthesisRef{Date: e.OccurredAt, NextReview: p.NextReview, Sequence: e.Sequence}
		}
	})
	childRef, opened := seen.ChildReference, seen.OpenedAt
	if !seen.Opened || seen.Closed {
		return []Deadline{}, childRef
	}
	at, coord := h.at, seen.Coordinator
	var out []Deadline
	add := func(d Deadline) {
		d.Overdue, d.Responsible = d.Due.Before(at), coord
		out = append(out, d)
	}
	review := nextReview(birthMonth, opened, last, at)
	from := openedSeq // the event the review and the meetings are counted from
	if last != nil {
		from = last.Sequence
	}
	add(Deadline{Kind: DeadlinePlanReview, Due: review.Due, Sequence: from, What: "Réexamen du projet de l'enfant : " + review.Basis})
	add(Deadline{Kind: DeadlineSynthesis, Due: review.Since.AddDate(0, 0, days(rules.synthesisInterval)), Sequence: from,
		What: fmt.Sprintf("Réunion de synthèse : aucune depuis le %s, au plus tard tous les %d jours", frenchDate(review.Since), days(rules.synthesisInterval))})
	limit := at.Add(rules.horizon)
	for _, c := range seen.Consents {
		if c.ActiveAt(at) && !c.Until.After(limit) {
			add(Deadline{Kind: DeadlineConsentExpiring, Due: c.Until, Sequence: c.GivenSeq,
				What:    fmt.Sprintf("Consentement de %s : prend fin le %s, à renouveler s'il y a lieu", familyName(seen, c.GivenBy), frenchDate(c.Until)),
				Consent: &ConsentRef{ID: c.ID, GivenBy: familyName(seen, c.GivenBy), From: c.From, Until: c.Until}})
		}
	}
	for _, r := range seen.Restrictions {
		if r.ActiveAt(at) && !r.Until.After(limit) {
			add(Deadline{Kind: DeadlineOrderExpiring, Due: r.Until, Sequence: r.ImposedSeq,
				What:  fmt.Sprintf("Ordonnance %s (%s) : prend fin le %s", r.OrderReference, label(restrictionLabels, r.Kind), frenchDate(r.Until)),
				Order: &OrderRef{Reference: r.OrderReference, Court: r.Court, Kind: r.Kind, Until: timePtr(r.Until)}})
		}
	}
	for inst, mb := range seen.Members {
		if !mb.Active() || mb.JoinedSeq == openedSeq {
			continue // the opener is not a new member
		}
		t, ok := family[inst]
		switch {
		case (!ok || t.seq < mb.JoinedSeq) && len(seen.Family) > 0:
			add(Deadline{Kind: DeadlineFamilyInformation, Due: mb.JoinedAt, Institution: inst, Sequence: mb.JoinedSeq,
				What: fmt.Sprintf("Informer la famille de l'entrée de %s (art. L226-2-2 CASF), ou décider de façon motivée de ne pas l'informer", mb.Name)})
		case ok && t.seq > mb.JoinedSeq && t.notInformed:
			add(Deadline{Kind: DeadlineNotInformedReview, Due: t.reviewOn, Institution: inst, Sequence: t.seq,
				What: fmt.Sprintf("Réexaminer la décision de ne pas informer la famille de l'entrée de %s", mb.Name)})
		}
	}
	slices.SortFunc(out, func(a, b Deadline) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Institution, b.Institution))
	})
	return out, childRef
}
