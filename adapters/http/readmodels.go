package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/projections"
)

// ReadModels are the read models the synthesis endpoints answer from
// (projections.Runner). Every read for a viewer is decided by the domain
// policy there: the handlers only parse the request and write the answer.
type ReadModels interface {
	Plan(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.Plan, error)
	Chronology(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.Chronology, error)
	WhoSeesWhat(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.WhoSeesWhat, error)
	CaseDeadlines(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.CaseDeadlines, error)
	InstitutionDeadlines(ctx context.Context, inst domain.InstitutionID, o projections.ReadOptions) (projections.InstitutionDeadlines, error)
	MemberCases(ctx context.Context, inst domain.InstitutionID, o projections.ReadOptions) ([]projections.MemberCase, error)
	Observatory(ctx context.Context, o projections.ReadOptions) (projections.Observatory, error)
	Position() domain.Position
}

// readModels is the handler's part for the synthesis endpoints.
type readModels struct {
	models ReadModels
	access domain.AccessLog // nil: reads are not recorded
}

// WithReadModels serves the synthesis endpoints (plan, chronology,
// who-sees-what, deadlines, directory, observatory) from rm.
func WithReadModels(rm ReadModels) Option { return func(h *Handler) { h.reads.models = rm } }

// WithReadModelAccessLog records every read of a plan or a chronology in
// log; a read whose record fails is not served (503).
func WithReadModelAccessLog(log domain.AccessLog) Option {
	return func(h *Handler) { h.reads.access = log }
}

// readOptions parses asOf, minPosition and horizon.
func (h *Handler) readOptions(w http.ResponseWriter, r *http.Request) (projections.ReadOptions, bool) {
	var o projections.ReadOptions
	q := r.URL.Query()
	if s := q.Get("asOf"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
				Detail: "asOf : une date RFC 3339 est attendue, par ex. 2026-03-05T18:00:00+01:00", Rule: "invalid_field", Field: "asOf"})
			return o, false
		}
		o.AsOf = t
	}
	pos, ok := queryUint(w, r, q.Get("minPosition"), "minPosition", 0, 1<<63-1)
	if !ok {
		return o, false
	}
	o.MinPosition = domain.Position(pos)
	days, ok := queryUint(w, r, q.Get("horizon"), "horizon", 0, 366)
	if !ok {
		return o, false
	}
	o.Horizon = time.Duration(days) * 24 * time.Hour
	return o, true
}

// readCase runs a read of one case and writes its answer.
func (h *Handler) readCase(w http.ResponseWriter, r *http.Request, kind domain.AccessKind,
	read func(rm ReadModels, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (any, uint64, error)) {
	if !h.readModelsReady(w, r) {
		return
	}
	caseID, ok := h.caseID(w, r)
	if !ok {
		return
	}
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	p := principal(r.Context())
	answer, version, err := read(h.reads.models, caseID, p.Viewer(), o)
	if err != nil {
		h.writeReadError(w, r, err)
		return
	}
	if kind != "" && h.reads.access != nil {
		rec := domain.AccessRecord{At: h.cases.Now(), Kind: kind, CaseID: caseID, FromSequence: min(1, version), ToSequence: version,
			Principal: p.ID, Role: p.Role, Institution: p.Institution, FamilyMember: p.FamilyMember, Purpose: r.Header.Get(PurposeHeader)}
		if err := h.reads.access.Record(r.Context(), rec); err != nil {
			h.log.Error("access log: read not recorded, not served", "kind", kind, "err", err)
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, Problem{Type: problemType("access_log_unavailable"), Title: "Service momentanément indisponible",
				Status: http.StatusServiceUnavailable, Rule: "access_log_unavailable",
				Detail: "cette consultation n'a pas pu être inscrite au journal des accès : elle n'est pas servie ; réessayez dans un instant"})
			return
		}
	}
	w.Header().Set("ETag", etag(version))
	h.writeRead(w, answer)
}

func (h *Handler) writeRead(w http.ResponseWriter, answer any) {
	w.Header().Set("Maillage-Position", strconv.FormatUint(uint64(h.reads.models.Position()), 10))
	writeJSON(w, http.StatusOK, answer)
}

func (h *Handler) readModelsReady(w http.ResponseWriter, r *http.Request) bool {
	if h.reads.models != nil {
		return true
	}
	writeProblem(w, r, Problem{Type: problemType("read_models_unavailable"), Title: "Service indisponible", Status: http.StatusServiceUnavailable,
		Rule: "read_models_unavailable", Detail: "les vues de synthèse ne sont pas activées sur ce serveur"})
	return false
}

// writeReadError answers the read models' own errors, and the others as
// every endpoint does. The details of a stopped projection (which case,
// which event) go to the log only: they could tell a caller about a case it
// may not know.
func (h *Handler) writeReadError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *projections.ProjectionError
	switch {
	case errors.Is(err, projections.ErrBehind):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Type: problemType("read_models_behind"), Title: "Vues de synthèse en cours de mise à jour",
			Status: http.StatusServiceUnavailable, Rule: "read_models_behind",
			Detail: "les vues de synthèse n'ont pas encore intégré la position demandée (minPosition) ; réessayez dans un instant"})
	case errors.Is(err, projections.ErrStopped), errors.As(err, &pe):
		h.log.Error("read models stopped", "err", err)
		w.Header().Set("Retry-After", "60")
		writeProblem(w, r, Problem{Type: problemType("read_models_stopped"), Title: "Vues de synthèse arrêtées",
			Status: http.StatusServiceUnavailable, Rule: "read_models_stopped",
			Detail: "les vues de synthèse sont arrêtées sur un événement qu'elles ne savent pas intégrer ; l'exploitation en est avertie (journal du serveur)"})
	default:
		writeError(w, r, h.log, err)
	}
}

func (h *Handler) plan(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, domain.AccessPlan, func(rm ReadModels, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (any, uint64, error) {
		p, err := rm.Plan(r.Context(), id, v, o)
		return p, p.Version, err
	})
}

func (h *Handler) chronology(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, domain.AccessChronology, func(rm ReadModels, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (any, uint64, error) {
		c, err := rm.Chronology(r.Context(), id, v, o)
		return c, c.Version, err
	})
}

func (h *Handler) visibility(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, "", func(rm ReadModels, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (any, uint64, error) {
		vis, err := rm.WhoSeesWhat(r.Context(), id, v, o)
		return vis, vis.Version, err
	})
}

func (h *Handler) caseDeadlines(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, "", func(rm ReadModels, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (any, uint64, error) {
		if !o.AsOf.IsZero() {
			return nil, 0, domain.Invalid("asOf", "les échéances se lisent à la date du jour ; asOf vaut pour le projet, la chronologie et « qui voit quoi »")
		}
		d, err := rm.CaseDeadlines(r.Context(), id, v, o)
		return d, d.Version, err
	})
}

// institutionDeadlines answers GET /v1/deadlines: the caller's institution's.
func (h *Handler) institutionDeadlines(w http.ResponseWriter, r *http.Request) {
	if !h.readModelsReady(w, r) {
		return
	}
	p := principal(r.Context())
	if p.Role != domain.RoleProfessional || p.Institution == "" {
		writeError(w, r, h.log, &domain.Error{Code: domain.EForbidden, Rule: "institution_deadlines_professionals_only",
			Message: "les échéances d'une institution sont réservées à ses professionnels ; lisez celles d'un dossier par /v1/cases/{id}/deadlines"})
		return
	}
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	d, err := h.reads.models.InstitutionDeadlines(r.Context(), p.Institution, o)
	if err != nil {
		h.writeReadError(w, r, err)
		return
	}
	h.writeRead(w, d)
}

// directoryEntry is an institution of the directory; Cases lists the cases
// it is a member of, on the caller's own institution only.
type directoryEntry struct {
	directory.Institution
	Cases []projections.MemberCase `json:"cases,omitempty"`
}

// directoryAnswer answers GET /v1/directory: the territory's institutions
// with kind, département, contacts and on-call channel ("who to reach,
// when, how", charter art. 3 and 4), filtered by ?departement= and ?kind=.
func (h *Handler) directoryAnswer(w http.ResponseWriter, r *http.Request) {
	if !h.readModelsReady(w, r) {
		return
	}
	p := principal(r.Context())
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	dep, kind := r.URL.Query().Get("departement"), domain.InstitutionKind(r.URL.Query().Get("kind"))
	if kind != "" && !kind.Valid() {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "kind : un type d'institution est attendu (ase, mecs, ditep, aemo, aed, cmp, school, mdph, pjj, foster, other)",
			Rule:   "invalid_field", Field: "kind"})
		return
	}
	entries := []directoryEntry{}
	for _, inst := range h.directory.Institutions() {
		if dep != "" && inst.Departement != dep || kind != "" && inst.Kind != kind {
			continue
		}
		e := directoryEntry{Institution: inst}
		if p.Role == domain.RoleProfessional && inst.ID == p.Institution {
			cases, err := h.reads.models.MemberCases(r.Context(), inst.ID, o)
			if err != nil {
				h.writeReadError(w, r, err)
				return
			}
			e.Cases = cases
		}
		entries = append(entries, e)
	}
	h.writeRead(w, map[string]any{"institutions": entries})
}

// observatory answers GET /v1/observatory.
func (h *Handler) observatory(w http.ResponseWriter, r *http.Request) {
	if !h.readModelsReady(w, r) {
		return
	}
	if principal(r.Context()).Role == domain.RoleFamily {
		writeError(w, r, h.log, &domain.Error{Code: domain.EForbidden, Rule: "observatory_professionals_only",
			Message: "l'observatoire est destiné aux professionnels et aux autorités du territoire"})
		return
	}
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	obs, err := h.reads.models.Observatory(r.Context(), o)
	if err != nil {
		h.writeReadError(w, r, err)
		return
	}
	h.writeRead(w, obs)
}
