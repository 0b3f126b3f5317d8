package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Plan is the shared support plan (charter art. 3) as one viewer may see it:
// folded from the events the policy lets them see, redacted events without
// what was removed.
type Plan struct {
	CaseID         domain.CaseID              `json:"caseId"`
	Version        uint64                     `json:"version"` // the case's version read (at asOf for an "as of" read)
	AsOf           *time.Time                 `json:"asOf,omitempty"`
	ChildReference string                     `json:"childReference,omitempty"`
	LegalFrame     domain.LegalFrame          `json:"legalFrame,omitempty"`
	Departement    string                     `json:"departement,omitempty"`
	OpenedAt       *time.Time                 `json:"openedAt,omitempty"`
	Closed         bool                       `json:"closed"`
	Coordinator    *InstitutionRef            `json:"coordinator,omitempty"`
	Referents      []PlanReferent             `json:"referents"`
	Needs          []PlanNeed                 `json:"needs"`
	Objectives     []PlanObjective            `json:"objectives"`
	Interventions  []InstitutionInterventions `json:"interventions"`
	Decisions      []PlanDecision             `json:"decisions"`
	LinkedPlans    []LinkedPlan               `json:"linkedPlans"`
	LastSynthesis  *SynthesisRef              `json:"lastSynthesis,omitempty"`
	NextReview     *Review                    `json:"nextReview,omitempty"`
	Crises         []OngoingCrisis            `json:"crises"` // ongoing: who to reach, how
}

// InstitutionRef names an institution. Withheld is set when the policy
// removed which institution it is.
type InstitutionRef struct {
	Institution domain.InstitutionID   `json:"institution,omitempty"`
	Name        string                 `json:"name,omitempty"`
	Kind        domain.InstitutionKind `json:"kind,omitempty"`
	Withheld    bool                   `json:"withheld,omitempty"`
}

// PlanReferent is a current member and its referent professional.
type PlanReferent struct {
	InstitutionRef
	Referent    domain.Referent `json:"referent"`
	Coordinator bool            `json:"coordinator"`
	Since       time.Time       `json:"since"`    // when the institution joined
	Sequence    uint64          `json:"sequence"` // of the event that named this referent
}

// PlanNeed is a need of the child.
type PlanNeed struct {
	ID             uuid.UUID            `json:"id"`
	Domain         string               `json:"domain,omitempty"`
	Description    string               `json:"description,omitempty"`
	Category       domain.Category      `json:"category"`
	IdentifiedAt   time.Time            `json:"identifiedAt"`
	IdentifiedBy   domain.InstitutionID `json:"identifiedBy,omitempty"`
	Sequence       uint64               `json:"sequence"`
	RedactedFields []string             `json:"redactedFields,omitempty"`
}

// PlanObjective is an objective and where it stands.
type PlanObjective struct {
	ID             uuid.UUID              `json:"id"`
	Title          string                 `json:"title,omitempty"`
	Description    string                 `json:"description,omitempty"`
	Needs          []uuid.UUID            `json:"needs,omitempty"`
	DueDate        *time.Time             `json:"dueDate,omitempty"`
	Status         domain.ObjectiveStatus `json:"status"`
	StatusComment  string                 `json:"statusComment,omitempty"`
	ReviewedAt     *time.Time             `json:"reviewedAt,omitempty"`
	Category       domain.Category        `json:"category"`
	Sequence       uint64                 `json:"sequence"`
	RedactedFields []string               `json:"redactedFields,omitempty"`
}

// InstitutionInterventions are the interventions of one institution: who
// does what, how and when (charter art. 3: modalities and timing).
type InstitutionInterventions struct {
	InstitutionRef
	Interventions []PlanIntervention `json:"interventions"`
}

// PlanIntervention is one intervention.
type PlanIntervention struct {
	ID             uuid.UUID       `json:"id"`
	Description    string          `json:"description,omitempty"`
	Modalities     string          `json:"modalities,omitempty"`
	Timing         string          `json:"timing,omitempty"`
	Start          *time.Time      `json:"start,omitempty"`
	End            *time.Time      `json:"end,omitempty"`
	Objectives     []uuid.UUID     `json:"objectives,omitempty"`
	Contacts       []PlanContact   `json:"contacts,omitempty"`
	Ended          bool            `json:"ended"`
	EndReason      string          `json:"endReason,omitempty"`
	Category       domain.Category `json:"category"`
	Sequence       uint64          `json:"sequence"` // of the event that last changed it
	RedactedFields []string        `json:"redactedFields,omitempty"`
}

// PlanContact is a contact with a family member an intervention schedules.
type PlanContact struct {
	FamilyMember domain.PersonID `json:"familyMember"`
	Name         string          `json:"name"`
	Supervised   bool            `json:"supervised"`
	ThirdParty   string          `json:"thirdParty,omitempty"`
}

// PlanDecision is a cooperation decision.
type PlanDecision struct {
	ID             uuid.UUID              `json:"id"`
	Kind           string                 `json:"kind,omitempty"`
	Summary        string                 `json:"summary,omitempty"`
	Agreeing       []domain.InstitutionID `json:"agreeing,omitempty"`
	Dissenting     []domain.Dissent       `json:"dissenting,omitempty"`
	DecidedAt      time.Time              `json:"decidedAt"`
	Category       domain.Category        `json:"category"`
	Sequence       uint64                 `json:"sequence"`
	RedactedFields []string               `json:"redactedFields,omitempty"`
}

// LinkedPlan is an institution plan (PPE, PPA, ...) the shared plan is
// articulated with, at its latest linked version.
type LinkedPlan struct {
	Kind             string               `json:"kind"`
	Reference        string               `json:"reference"`
	Version          string               `json:"version"`
	PreviousVersions []string             `json:"previousVersions,omitempty"`
	Institution      domain.InstitutionID `json:"institution"`
	LinkedAt         time.Time            `json:"linkedAt"`
	Sequence         uint64               `json:"sequence"`
}

// SynthesisRef is a synthesis meeting.
type SynthesisRef struct {
	Meeting        uuid.UUID              `json:"meeting"`
	Date           time.Time              `json:"date"`
	Participants   []domain.InstitutionID `json:"participants,omitempty"`
	FamilyPresent  []string               `json:"familyPresent,omitempty"` // names
	ChildHeard     bool                   `json:"childHeard"`
	Decisions      []string               `json:"decisions,omitempty"`
	NextReview     *time.Time             `json:"nextReview,omitempty"`
	Sequence       uint64                 `json:"sequence"`
	RedactedFields []string               `json:"redactedFields,omitempty"`
}

// Review is when the plan must next be reviewed: the date the last synthesis
// planned, and the date the law requires (art. D223-13 CASF: at least every
// 12 months, every 6 months under the age of two).
type Review struct {
	Planned      *time.Time `json:"planned,omitempty"`
	Due          time.Time  `json:"due"`
	PeriodMonths int        `json:"periodMonths"`
	Since        time.Time  `json:"since"` // the last synthesis, or the opening
	Overdue      bool       `json:"overdue"`
	Basis        string     `json:"basis"`
}

// OngoingCrisis is a crisis not yet resolved, with who is on call.
type OngoingCrisis struct {
	ID             uuid.UUID       `json:"id"`
	Description    string          `json:"description,omitempty"`
	OnCall         []domain.OnCall `json:"onCall,omitempty"`
	Protocol       string          `json:"protocol,omitempty"`
	DeclaredAt     time.Time       `json:"declaredAt"`
	Category       domain.Category `json:"category"`
	Sequence       uint64          `json:"sequence"`
	RedactedFields []string        `json:"redactedFields,omitempty"`
}

// planFold folds the visible events into a plan.
type planFold struct {
	plan          Plan
	names         *names
	birthMonth    string
	referents     map[domain.InstitutionID]*PlanReferent
	order         []domain.InstitutionID // referents in joining order
	objectives    map[uuid.UUID]int
	interventions map[uuid.UUID]*ivEntry
	ivOrder       []uuid.UUID
	linked        map[string]int
	crises        map[uuid.UUID]int
}

type ivEntry struct {
	institution domain.InstitutionID
	withheld    bool
	iv          PlanIntervention
}

func (m *models) plan(ctx context.Context, id domain.CaseID, v domain.Viewer, now, asOf time.Time) (Plan, error) {
	var out Plan
	err := m.read(ctx, id, v, now, asOf, nil, func(h *history) error {
		out = foldPlan(h, v)
		return nil
	})
	return out, err
}

func foldPlan(h *history, v domain.Viewer) Plan {
	f := &planFold{names: newNames(), referents: map[domain.InstitutionID]*PlanReferent{},
		objectives: map[uuid.UUID]int{}, interventions: map[uuid.UUID]*ivEntry{}, linked: map[string]int{}, crises: map[uuid.UUID]int{}}
	f.plan = Plan{CaseID: h.id, Version: h.version, Referents: []PlanReferent{}, Needs: []PlanNeed{}, Objectives: []PlanObjective{},
		Interventions: []InstitutionInterventions{}, Decisions: []PlanDecision{}, LinkedPlans: []LinkedPlan{}, Crises: []OngoingCrisis{}}
	if h.asOf {
		f.plan.AsOf = timePtr(h.at)
	}
	h.visible(v, func(e domain.Event, d domain.Decision) {
		p := decode(e)
		f.names.learn(p)
		f.apply(e, d, p)
	})
	return f.finish(h.at)
}

func (f *planFold) apply(e domain.Event, d domain.Decision, p domain.Payload) {
	pl := &f.plan
	redacted := redactedFields(d)
	switch p := p.(type) {
	case *domain.CaseOpenedPayload:
		pl.ChildReference, pl.LegalFrame, pl.Departement = p.ChildReference, p.LegalFrame, p.Departement
		pl.OpenedAt, f.birthMonth = timePtr(e.OccurredAt), p.ChildBirthMonth
		if p.Coordinator != "" {
			pl.Coordinator = &InstitutionRef{Institution: p.Coordinator}
			f.member(p.Coordinator, p.Referent, e)
		}
	case *domain.PartnerJoinedPayload:
		if p.Institution != "" {
			f.member(p.Institution, p.Referent, e)
		}
	case *domain.PartnerLeftPayload:
		if _, ok := f.referents[p.Institution]; ok {
			delete(f.referents, p.Institution)
			f.order = slices.DeleteFunc(f.order, func(i domain.InstitutionID) bool { return i == p.Institution })
		}
	case *domain.ReferentChangedPayload:
		if r, ok := f.referents[p.Institution]; ok && p.Referent.Name != "" {
			r.Referent, r.Sequence = p.Referent, e.Sequence
		}
	case *domain.CoordinationHandedOverPayload:
		if p.To != "" {
			pl.Coordinator = &InstitutionRef{Institution: p.To}
		}
	case *domain.NeedIdentifiedPayload:
		pl.Needs = append(pl.Needs, PlanNeed{ID: p.Need, Domain: p.Domain, Description: p.Description, Category: e.Category,
			IdentifiedAt: e.OccurredAt, IdentifiedBy: e.Actor.Institution, Sequence: e.Sequence, RedactedFields: redacted})
	case *domain.ObjectiveSetPayload:
		f.objectives[p.Objective] = len(pl.Objectives)
		pl.Objectives = append(pl.Objectives, PlanObjective{ID: p.Objective, Title: p.Title, Description: p.Description, Needs: p.Needs,
			DueDate: p.DueDate, Status: domain.ObjectiveInProgress, Category: e.Category, Sequence: e.Sequence, RedactedFields: redacted})
	case *domain.ObjectiveReviewedPayload:
		if i, ok := f.objectives[p.Objective]; ok {
			o := &pl.Objectives[i]
			if p.Status != "" {
				o.Status = p.Status
			}
			o.StatusComment, o.ReviewedAt, o.Sequence = p.Comment, timePtr(e.OccurredAt), e.Sequence
		}
	case *domain.InterventionAgreedPayload:
		f.interventions[p.Intervention] = &ivEntry{institution: p.Institution, withheld: p.Institution == "", iv: PlanIntervention{
			ID: p.Intervention, Description: p.Description, Modalities: p.Modalities, Timing: p.Timing, Start: timePtr(p.Start), End: p.End,
			Objectives: p.Objectives, Contacts: f.contacts(p.Contacts), Category: e.Category, Sequence: e.Sequence, RedactedFields: redacted}}
		f.ivOrder = append(f.ivOrder, p.Intervention)
	case *domain.InterventionChangedPayload:
		if iv, ok := f.interventions[p.Intervention]; ok {
			iv.iv.Modalities, iv.iv.Timing, iv.iv.Contacts = p.Modalities, p.Timing, f.contacts(p.Contacts)
			if p.End != nil {
				iv.iv.End = p.End
			}
			iv.iv.Sequence, iv.iv.RedactedFields = e.Sequence, union(iv.iv.RedactedFields, redacted)
		}
	case *domain.InterventionEndedPayload:
		if iv, ok := f.interventions[p.Intervention]; ok {
			iv.iv.Ended, iv.iv.EndReason, iv.iv.Sequence = true, p.Reason, e.Sequence
			if iv.iv.End == nil {
				iv.iv.End = timePtr(e.OccurredAt)
			}
		}
	case *domain.PlansArticulatedPayload:
		for _, l := range p.Plans {
			key := string(l.Institution) + "\x00" + l.Kind + "\x00" + l.Reference
			if i, ok := f.linked[key]; ok {
				old := &pl.LinkedPlans[i]
				if old.Version != l.Version {
					old.PreviousVersions = append(old.PreviousVersions, old.Version)
				}
				old.Version, old.LinkedAt, old.Sequence = l.Version, e.OccurredAt, e.Sequence
				continue
			}
			f.linked[key] = len(pl.LinkedPlans)
			pl.LinkedPlans = append(pl.LinkedPlans, LinkedPlan{Kind: l.Kind, Reference: l.Reference, Version: l.Version,
				Institution: l.Institution, LinkedAt: e.OccurredAt, Sequence: e.Sequence})
		}
	case *domain.SynthesisMeetingHeldPayload:
		s := &SynthesisRef{Meeting: p.Meeting, Date: e.OccurredAt, Participants: p.Participants, ChildHeard: p.ChildHeard,
			Decisions: p.Decisions, NextReview: p.NextReview, Sequence: e.Sequence, RedactedFields: redacted}
		for _, fm := range p.FamilyPresent {
			s.FamilyPresent = append(s.FamilyPresent, f.names.person(fm))
		}
		pl.LastSynthesis = s
	case *domain.DecisionRecordedPayload:
		pl.Decisions = append(pl.Decisions, PlanDecision{ID: p.Decision, Kind: p.Kind, Summary: p.Summary, Agreeing: p.Agreeing,
			Dissenting: p.Dissenting, DecidedAt: e.OccurredAt, Category: e.Category, Sequence: e.Sequence, RedactedFields: redacted})
	case *domain.CrisisDeclaredPayload:
		f.crises[p.Crisis] = len(pl.Crises)
		pl.Crises = append(pl.Crises, OngoingCrisis{ID: p.Crisis, Description: p.Description, OnCall: p.OnCall, Protocol: p.Protocol,
			DeclaredAt: e.OccurredAt, Category: e.Category, Sequence: e.Sequence, RedactedFields: redacted})
	case *domain.CrisisResolvedPayload:
		if i, ok := f.crises[p.Crisis]; ok {
			pl.Crises = slices.Delete(pl.Crises, i, i+1)
			delete(f.crises, p.Crisis)
			for id, j := range f.crises {
				if j > i {
					f.crises[id] = j - 1
				}
			}
		}
	case *domain.CaseClosedPayload:
		pl.Closed = true
	}
}

func (f *planFold) member(inst domain.InstitutionID, ref domain.Referent, e domain.Event) {
	if _, ok := f.referents[inst]; !ok {
		f.order = append(f.order, inst)
	}
	f.referents[inst] = &PlanReferent{InstitutionRef: InstitutionRef{Institution: inst}, Referent: ref, Since: e.OccurredAt, Sequence: e.Sequence}
}

func (f *planFold) contacts(cs []domain.ContactArrangement) []PlanContact {
	var out []PlanContact
	for _, c := range cs {
		out = append(out, PlanContact{FamilyMember: c.FamilyMember, Name: f.names.person(c.FamilyMember), Supervised: c.Supervised, ThirdParty: c.ThirdParty})
	}
	return out
}

func (f *planFold) ref(inst domain.InstitutionID) InstitutionRef {
	return InstitutionRef{Institution: inst, Name: f.names.institution(inst), Kind: f.names.kinds[inst]}
}

func (f *planFold) finish(at time.Time) Plan {
	pl := &f.plan
	if pl.Coordinator != nil {
		ref := f.ref(pl.Coordinator.Institution)
		pl.Coordinator = &ref
	}
	for _, inst := range f.order {
		r := f.referents[inst]
		r.InstitutionRef = f.ref(inst)
		r.Coordinator = pl.Coordinator != nil && pl.Coordinator.Institution == inst
		pl.Referents = append(pl.Referents, *r)
	}
	groups := map[domain.InstitutionID]int{}
	for _, id := range f.ivOrder {
		iv := f.interventions[id]
		i, ok := groups[iv.institution]
		if !ok {
			i = len(pl.Interventions)
			groups[iv.institution] = i
			ref := f.ref(iv.institution)
			ref.Withheld = iv.withheld
			pl.Interventions = append(pl.Interventions, InstitutionInterventions{InstitutionRef: ref})
		}
		pl.Interventions[i].Interventions = append(pl.Interventions[i].Interventions, iv.iv)
	}
	if pl.OpenedAt != nil && !pl.Closed {
		pl.NextReview = nextReview(f.birthMonth, *pl.OpenedAt, pl.LastSynthesis, at)
	}
	return *pl
}

// nextReview applies art. D223-13 CASF: the plan is reviewed at least every
// 12 months, every 6 months while the child is under two, counted from the
// last synthesis meeting (or the opening). Without a birth month the
// 12-month rule applies.
func nextReview(birthMonth string, opened time.Time, last *SynthesisRef, at time.Time) *Review {
	since, basis := opened, "à compter de l'ouverture du dossier"
	r := &Review{}
	if last != nil {
		since, basis = last.Date, "à compter de la dernière synthèse"
		r.Planned = last.NextReview
	}
	r.Since, r.PeriodMonths = since, 12
	if birth, err := time.Parse("2006-01", birthMonth); err == nil && since.Before(birth.AddDate(2, 0, 0)) {
		r.PeriodMonths = 6
	}
	r.Due = since.AddDate(0, r.PeriodMonths, 0)
	r.Overdue = r.Due.Before(at)
	r.Basis = fmt.Sprintf("Art. D223-13 CASF : réexamen au moins tous les %d mois (6 mois avant 2 ans, 12 mois ensuite), %s du %s",
		r.PeriodMonths, basis, frenchDate(since))
	return r
}

// union returns a followed by the elements of b not already in it.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.ContainsFunc(out, func(y string) bool { return strings.EqualFold(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}
