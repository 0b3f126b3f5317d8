package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/internal/reads"
	"github.com/maillage/maillage/projections"
)

// ReadModels are the read models the synthesis endpoints answer from
// (projections.Runner): the per-case reads go through internal/reads, which
// decides and records them; the handlers only parse the request and write
// the answer.
type ReadModels interface {
	reads.ReadModels
	MemberCases(ctx context.Context, inst domain.InstitutionID, o projections.ReadOptions) ([]projections.MemberCase, error)
	Observatory(ctx context.Context, o projections.ReadOptions) (projections.Observatory, error)
	Position() domain.Position
}

// readModels is the handler's part for the synthesis endpoints.
type readModels struct {
	models ReadModels
}

// WithReadModels serves the synthesis endpoints (plan, chronology,
// who-sees-what, deadlines, case list, directory, observatory) from rm.
func WithReadModels(rm ReadModels) Option { return func(h *Handler) { h.reads.models = rm } }

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
		if err := domain.CheckDate("asOf", t); err != nil {
			writeError(w, r, h.log, err)
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

// readCase runs a read of one case through the reads service and writes
// its answer with its version as ETag.
func (h *Handler) readCase(w http.ResponseWriter, r *http.Request,
	read func(rd reads.Reader, id domain.CaseID, o projections.ReadOptions) (any, uint64, error)) {
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
	answer, version, err := read(reader(r), caseID, o)
	if err != nil {
		h.writeReadError(w, r, err)
		return
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
	h.readCase(w, r, func(rd reads.Reader, id domain.CaseID, o projections.ReadOptions) (any, uint64, error) {
		p, err := h.rs.Plan(r.Context(), rd, id, o)
		return p, p.Version, err
	})
}

func (h *Handler) chronology(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, func(rd reads.Reader, id domain.CaseID, o projections.ReadOptions) (any, uint64, error) {
		c, err := h.rs.Chronology(r.Context(), rd, id, o)
		return c, c.Version, err
	})
}

func (h *Handler) visibility(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, func(rd reads.Reader, id domain.CaseID, o projections.ReadOptions) (any, uint64, error) {
		vis, err := h.rs.Visibility(r.Context(), rd, id, o)
		return vis, vis.Version, err
	})
}

func (h *Handler) caseDeadlines(w http.ResponseWriter, r *http.Request) {
	h.readCase(w, r, func(rd reads.Reader, id domain.CaseID, o projections.ReadOptions) (any, uint64, error) {
		d, err := h.rs.Deadlines(r.Context(), rd, id, o)
		return d, d.Version, err
	})
}

// knownCases answers GET /v1/cases: the cases the caller may know exist,
// as the caller may see them, a page at a time (?cursor=&limit=).
func (h *Handler) knownCases(w http.ResponseWriter, r *http.Request) {
	if !h.readModelsReady(w, r) {
		return
	}
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	limit, ok := queryUint(w, r, r.URL.Query().Get("limit"), "limit", 100, 1000)
	if !ok {
		return
	}
	if limit == 0 {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "limit : entre 1 et 1000", Rule: "invalid_field", Field: "limit"})
		return
	}
	list, err := h.rs.KnownCases(r.Context(), reader(r), r.URL.Query().Get("cursor"), int(limit), o)
	if err != nil {
		h.writeReadError(w, r, err)
		return
	}
	h.writeRead(w, list)
}

// institutionDeadlines answers GET /v1/deadlines: the caller's institution's.
func (h *Handler) institutionDeadlines(w http.ResponseWriter, r *http.Request) {
	if !h.readModelsReady(w, r) {
		return
	}
	o, ok := h.readOptions(w, r)
	if !ok {
		return
	}
	d, err := h.rs.InstitutionDeadlines(r.Context(), reader(r), o)
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
		if domain.OwnInstitution(p.Viewer(), inst.ID) {
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
	if err := domain.MayReadObservatory(principal(r.Context()).Viewer()); err != nil {
		writeError(w, r, h.log, err)
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
