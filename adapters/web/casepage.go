package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/internal/reads"
	"github.com/maillage/maillage/projections"
)

// Purposes recorded with the web view's reads.
const (
	purposeCase  = "consultation du dossier (application web)"
	purposeLive  = "mise à jour en direct du dossier ouvert (application web)"
	purposePrint = "impression du compte rendu de synthèse (application web)"
	purposeList  = "liste de mes dossiers (application web)"
	purposeForm  = "préparation d'un enregistrement (application web)"
)

// caseView is a case page: every section as the facade answered it for this
// viewer; a section the facade refuses to this viewer is nil and left out.
type caseView struct {
	ID             string
	Version        uint64
	ChildReference string
	Frame          domain.LegalFrame
	Closed         bool
	Professional   bool
	Live           bool
	Entries        []entry
	Plan           *planView
	Crises         []projections.OngoingCrisis
	Visibility     *projections.WhoSeesWhat
	Deadlines      *projections.CaseDeadlines
	Summary        *cases.Summary
	Names          map[domain.InstitutionID]string
	Flash          string // what was just recorded
}

// Name is an institution's name as this page knows it.
func (v caseView) Name(id domain.InstitutionID) string {
	if n := v.Names[id]; n != "" {
		return n
	}
	return string(id)
}

// entry is one line of the chronology: an entry the viewer may read, or a
// stub of one they may not (its sequence only).
type entry struct {
	Sequence    uint64
	Stub        bool
	Date        string
	What        string
	Impact      string
	ActionTaken string
	Source      string
	Category    domain.Category
	Rupture     bool
	Redactions  []string
}

// planView is the plan as a tree: needs → objectives → interventions.
type planView struct {
	*projections.Plan
	Needs         []needView
	Objectives    []objectiveView // not tied to a need
	Interventions []interventionView
}

type needView struct {
	projections.PlanNeed
	Objectives []objectiveView
}

type objectiveView struct {
	projections.PlanObjective
	Interventions []interventionView
}

type interventionView struct {
	projections.PlanIntervention
	Institution string
}

// readCase reads every section of a case for r through the facade. A
// domain.ErrNotFound or an unexpected failure of the timeline (the one read
// every viewer who may know the case is given) ends the read; a section the
// facade refuses to this viewer is left out.
func (h *Handler) readCase(ctx context.Context, r reads.Reader, id domain.CaseID) (caseView, error) {
	v := caseView{ID: id.String(), Professional: r.Viewer.Role == domain.RoleProfessional, Live: h.watcher != nil,
		Names: map[domain.InstitutionID]string{}}
	tl, err := h.reads.Timeline(ctx, r, id, 0, 0)
	if err != nil {
		return v, err
	}
	v.Version = tl.Version
	chron, err := h.reads.Chronology(ctx, r, id, projections.ReadOptions{})
	if err != nil {
		return v, err
	}
	v.ChildReference = chron.ChildReference
	v.Entries = mergeStubs(chron.Entries, tl.Events)
	plan, err := h.reads.Plan(ctx, r, id, projections.ReadOptions{})
	if err != nil {
		return v, err
	}
	v.Frame, v.Closed, v.Crises = plan.LegalFrame, plan.Closed, plan.Crises
	if plan.Coordinator != nil {
		v.Names[plan.Coordinator.Institution] = plan.Coordinator.Name
	}
	for _, ref := range plan.Referents {
		v.Names[ref.Institution] = ref.Name
	}
	v.Plan = tree(&plan, v.Names)
	if sum, err := h.reads.Summary(ctx, r, id); err == nil {
		v.Summary = &sum
		for _, m := range sum.Members {
			v.Names[m.Institution] = m.Name
		}
	} else if !refused(err) {
		return v, err
	}
	if vis, err := h.reads.Visibility(ctx, r, id, projections.ReadOptions{}); err == nil {
		v.Visibility = &vis
	} else if !refused(err) {
		return v, err
	}
	if dl, err := h.reads.Deadlines(ctx, r, id, projections.ReadOptions{}); err == nil {
		v.Deadlines = &dl
	} else if !refused(err) {
		return v, err
	}
	return v, nil
}

// mergeStubs lists the chronology's entries in its order, each stub of the
// timeline after the entry just before it in the case's sequence.
func mergeStubs(chron []projections.ChronologyEntry, events []domain.EventView) []entry {
	out := make([]entry, 0, len(events))
	for _, c := range chron {
		e := entry{Sequence: c.Sequence, Date: c.Date, What: c.What, Impact: c.Impact, ActionTaken: c.ActionTaken,
			Category: c.Category, Redactions: redactionWords(c.RedactedFields),
			Rupture: c.Type == domain.PlacementChanged && strings.Contains(c.What, "(rupture)")}
		if c.Source != nil {
			e.Source = c.Source.Name
		} else if c.SourceFamily != "" {
			e.Source = c.SourceFamily
		}
		out = append(out, e)
	}
	for _, ev := range events {
		if ev.Visibility != domain.Hidden {
			continue
		}
		at := 0
		for i, e := range out {
			if e.Sequence < ev.Sequence {
				at = i + 1
			}
		}
		out = slices.Insert(out, at, entry{Sequence: ev.Sequence, Stub: true})
	}
	return out
}

func tree(p *projections.Plan, names map[domain.InstitutionID]string) *planView {
	pv := &planView{Plan: p}
	ivs := map[uuid.UUID][]interventionView{}
	var loose []interventionView
	for _, group := range p.Interventions {
		name := group.Name
		if name == "" {
			name = string(group.Institution)
		}
		if group.Withheld {
			name = "une institution (information non communiquée)"
		}
		for _, iv := range group.Interventions {
			view := interventionView{PlanIntervention: iv, Institution: name}
			if len(iv.Objectives) == 0 {
				loose = append(loose, view)
			}
			for _, o := range iv.Objectives {
				ivs[o] = append(ivs[o], view)
			}
		}
	}
	placed := map[uuid.UUID]bool{}
	objectives := func(need uuid.UUID) []objectiveView {
		var out []objectiveView
		for _, o := range p.Objectives {
			if slices.Contains(o.Needs, need) {
				placed[o.ID] = true
				out = append(out, objectiveView{PlanObjective: o, Interventions: ivs[o.ID]})
			}
		}
		return out
	}
	for _, n := range p.Needs {
		pv.Needs = append(pv.Needs, needView{PlanNeed: n, Objectives: objectives(n.ID)})
	}
	for _, o := range p.Objectives {
		if !placed[o.ID] {
			pv.Objectives = append(pv.Objectives, objectiveView{PlanObjective: o, Interventions: ivs[o.ID]})
		}
	}
	pv.Interventions = loose
	return pv
}

func (h *Handler) casePage(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := h.caseID(w, r, s)
	if !ok {
		return
	}
	v, err := h.readCase(r.Context(), reader(s, purposeCase), id)
	if err != nil {
		h.readFailed(w, r, s, err)
		return
	}
	for _, f := range forms {
		if r.URL.Query().Get("enregistre") == f.path {
			v.Flash = f.done
		}
	}
	h.render(w, r, http.StatusOK, "case", page{Title: "Dossier " + v.ChildReference, Session: s, CaseID: v.ID, Data: v})
}

func (h *Handler) printPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := h.caseID(w, r, s)
	if !ok {
		return
	}
	v, err := h.readCase(r.Context(), reader(s, purposePrint), id)
	if err != nil {
		h.readFailed(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusOK, "print", page{Title: "Compte rendu de synthèse " + v.ChildReference, Session: s, CaseID: v.ID,
		Data: printView{caseView: v, PrintedAt: frenchDate(h.now()) + " à " + h.now().In(paris).Format("15 h 04")}})
}

type printView struct {
	caseView
	PrintedAt string
}

// Case is the case page the summary prints the sections of.
func (p printView) Case() caseView { return p.caseView }

// caseList is "Mes dossiers": the cases the viewer may know of, and the tray
// of what is due across them.
type caseList struct {
	Cases []projections.CaseCard
	Tray  *projections.InstitutionDeadlines
}

func (h *Handler) caseList(w http.ResponseWriter, r *http.Request, s *session) {
	rd := reader(s, purposeList)
	list, err := h.reads.KnownCases(r.Context(), rd, "", 0, projections.ReadOptions{})
	if err != nil {
		h.readFailed(w, r, s, err)
		return
	}
	v := caseList{Cases: list.Cases}
	if tray, err := h.reads.InstitutionDeadlines(r.Context(), rd, projections.ReadOptions{}); err == nil {
		slices.SortStableFunc(tray.Deadlines, func(a, b projections.Deadline) int { return a.Due.Compare(b.Due) })
		v.Tray = &tray
	} else if !refused(err) {
		h.readFailed(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusOK, "cases", page{Title: "Mes dossiers", Session: s, Data: v})
}

// accessView is "qui a consulté le dossier": reads grouped by who and when.
type accessView struct {
	ID      string
	Lines   []accessLine
	Limited string
	Refusal string
}

type accessLine struct {
	When  string
	Who   string
	What  []string
	Count int
}

func (h *Handler) accessPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := h.caseID(w, r, s)
	if !ok {
		return
	}
	v := accessView{ID: id.String()}
	list, err := h.reads.Access(r.Context(), reader(s, purposeCase), id, audit.AccessFilter{Limit: 500})
	var de *domain.Error
	switch {
	case errors.As(err, &de) && de.Code != domain.ENotFound:
		v.Refusal = de.Message
	case err != nil:
		h.readFailed(w, r, s, err)
		return
	}
	if list.Limited != nil {
		v.Limited = list.Limited.Detail
	}
	v.Lines = h.accessLines(list.Records, s.principal.Role == domain.RoleFamily)
	h.render(w, r, http.StatusOK, "access", page{Title: "Qui a consulté le dossier", Session: s, CaseID: v.ID, Data: v})
}

// accessLines groups the reads of one reader within the same minute: a page
// of the web view is several reads.
func (h *Handler) accessLines(records []domain.AccessRecord, family bool) []accessLine {
	var out []accessLine
	for i := len(records) - 1; i >= 0; i-- {
		rec := records[i]
		who := h.readerName(rec, family)
		when := frenchDate(rec.At) + " à " + rec.At.In(paris).Format("15 h 04")
		what := label(accessKindLabels, rec.Kind)
		if n := len(out); n > 0 && out[n-1].Who == who && out[n-1].When == when {
			if !slices.Contains(out[n-1].What, what) {
				out[n-1].What = append(out[n-1].What, what)
			}
			out[n-1].Count++
			continue
		}
		out = append(out, accessLine{When: when, Who: who, What: []string{what}, Count: 1})
	}
	return out
}

func (h *Handler) readerName(rec domain.AccessRecord, family bool) string {
	switch {
	case rec.Role == domain.RoleAuditor:
		return "Un auditeur (contrôle de la protection des données)"
	case rec.Role == domain.RoleFamily && family:
		return "Vous"
	case rec.Role == domain.RoleFamily:
		return "Un membre de la famille"
	}
	if inst, err := h.directory.Institution(rec.Institution); err == nil {
		return inst.Name
	}
	return string(rec.Institution)
}
