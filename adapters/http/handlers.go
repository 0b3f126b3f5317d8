package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// commandBody is the body of POST /v1/cases and POST /v1/cases/{id}/events.
type commandBody struct {
	Type          domain.EventType `json:"type"`
	Category      domain.Category  `json:"category"`
	OccurredAt    *time.Time       `json:"occurredAt"`
	CorrelationID *uuid.UUID       `json:"correlationId"`
	CausationID   *uuid.UUID       `json:"causationId"`
	Payload       json.RawMessage  `json:"payload"`
}

// recordedAnswer is the answer to a recorded command.
type recordedAnswer struct {
	CaseID   domain.CaseID   `json:"caseId"`
	Version  uint64          `json:"version"`
	Position domain.Position `json:"position"`
	Events   []recordedEvent `json:"events"`
}

type recordedEvent struct {
	Sequence  uint64           `json:"sequence"`
	ID        uuid.UUID        `json:"id"`
	Type      domain.EventType `json:"type"`
	Position  domain.Position  `json:"position"`
	ChainHash domain.Hash      `json:"chainHash"`
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	p.TokenHash = ""
	writeJSON(w, http.StatusOK, struct {
		ID           uuid.UUID            `json:"id"`
		Role         domain.Role          `json:"role"`
		Name         string               `json:"name"`
		Institution  domain.InstitutionID `json:"institution,omitempty"`
		FamilyMember domain.PersonID      `json:"familyMember,omitzero"`
	}{p.ID, p.Role, p.Name, p.Institution, p.FamilyMember})
}

func (h *Handler) institutions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"institutions": h.directory.Institutions()})
}

// openCase records CaseOpened on a new case. With an Idempotency-Key the
// case id is derived from the key and the caller, so a retried request opens
// no second case.
func (h *Handler) openCase(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	var body commandBody
	if !h.decode(w, r, &body) {
		return
	}
	if body.Type != "" && body.Type != domain.CaseOpened {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "POST /v1/cases ouvre un dossier : le type est CaseOpened ou absent", Rule: "invalid_field", Field: "type"})
		return
	}
	body.Type = domain.CaseOpened
	caseID := uuid.New()
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		caseID = uuid.NewSHA1(openNamespace, []byte(p.ID.String()+"\x00"+key))
	}
	h.record(w, r, caseID, body)
}

var openNamespace = uuid.MustParse("0b5e2a8e-9c1d-4f7b-8e3a-2d6c5b4a3f10")

func (h *Handler) recordEvent(w http.ResponseWriter, r *http.Request) {
	caseID, ok := h.caseID(w, r)
	if !ok {
		return
	}
	var body commandBody
	if !h.decode(w, r, &body) {
		return
	}
	if body.Type == domain.CaseOpened {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "un dossier s'ouvre par POST /v1/cases", Rule: "invalid_field", Field: "type"})
		return
	}
	h.record(w, r, caseID, body)
}

func (h *Handler) record(w http.ResponseWriter, r *http.Request, caseID domain.CaseID, body commandBody) {
	p := principal(r.Context())
	payload, ok := h.decodePayload(w, r, body)
	if !ok {
		return
	}
	if err := h.directory.Complete(payload, p); err != nil {
		writeError(w, r, h.log, err)
		return
	}
	if err := payload.Validate(); err != nil {
		var de *domain.Error
		if errors.As(err, &de) && de.Field != "" && !strings.HasPrefix(de.Field, "payload") {
			de.Field = "payload." + de.Field
		}
		writeError(w, r, h.log, err)
		return
	}
	req := cases.Request{CaseID: caseID, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Command: domain.Command{Type: body.Type, Category: body.Category, Actor: p.Actor(), Role: p.Role, Payload: payload}}
	if len(req.IdempotencyKey) > 200 {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "Idempotency-Key : 200 caractères au plus (un UUID convient)", Rule: "invalid_field", Field: "Idempotency-Key"})
		return
	}
	if body.OccurredAt != nil {
		// A date given is checked, never taken for "not given" (the zero
		// time would otherwise be replaced by now).
		if err := domain.CheckDate("occurredAt", *body.OccurredAt); err != nil {
			writeError(w, r, h.log, err)
			return
		}
		req.Command.OccurredAt = *body.OccurredAt
	}
	if body.CorrelationID != nil {
		req.Command.CorrelationID = *body.CorrelationID
	}
	if body.CausationID != nil {
		req.Command.CausationID = *body.CausationID
	}
	if v := r.Header.Get("If-Match"); v != "" {
		n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil {
			writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
				Detail: `If-Match attend la version du dossier, par ex. "7" (voir l'en-tête ETag)`, Rule: "invalid_field", Field: "If-Match"})
			return
		}
		req.IfMatch = &n
	}
	res, err := h.rs.Record(r.Context(), reader(r), req)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	ans := recordedAnswer{CaseID: res.CaseID, Version: res.Version, Position: res.Position, Events: make([]recordedEvent, len(res.Events))}
	for i, e := range res.Events {
		ans.Events[i] = recordedEvent{Sequence: e.Sequence, ID: e.ID, Type: e.Type, Position: e.Position, ChainHash: e.ChainHash}
	}
	w.Header().Set("ETag", etag(res.Version))
	w.Header().Set("Location", "/v1/cases/"+caseID.String())
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusCreated, ans)
}

func (h *Handler) summary(w http.ResponseWriter, r *http.Request) {
	caseID, ok := h.caseID(w, r)
	if !ok {
		return
	}
	sum, err := h.rs.Summary(r.Context(), reader(r), caseID)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	w.Header().Set("ETag", etag(sum.Version))
	writeJSON(w, http.StatusOK, sum)
}

func (h *Handler) timeline(w http.ResponseWriter, r *http.Request) {
	caseID, ok := h.caseID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	after, ok := queryUint(w, r, q.Get("after"), "after", 0, 1<<62)
	if !ok {
		return
	}
	limit, ok := queryUint(w, r, q.Get("limit"), "limit", 100, 1000)
	if !ok {
		return
	}
	if limit == 0 {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "limit : entre 1 et 1000", Rule: "invalid_field", Field: "limit"})
		return
	}
	// The JSON of cases.Timeline, encoded by the service: it reuses the
	// encoding of the events it shows in full.
	buf := bodyBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 1<<20 {
			bodyBuffers.Put(buf)
		}
	}()
	body, version, err := h.rs.TimelineJSON(r.Context(), reader(r), (*buf)[:0], caseID, after, int(limit))
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	body = append(body, '\n')
	*buf = body
	w.Header().Set("ETag", etag(version))
	writeRawJSON(w, http.StatusOK, body)
}

// bodyBuffers are the buffers timeline answers are encoded into.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

func queryUint(w http.ResponseWriter, r *http.Request, s, name string, def, max uint64) (uint64, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("%s : un entier entre 0 et %d est attendu", name, max), Rule: "invalid_field", Field: name})
		return 0, false
	}
	return n, true
}

// caseID parses the {caseID} path parameter. A malformed id is answered
// like an unknown case: 404, no hint.
func (h *Handler) caseID(w http.ResponseWriter, r *http.Request) (domain.CaseID, bool) {
	id, err := uuid.Parse(chi.URLParam(r, "caseID"))
	if err != nil {
		writeError(w, r, h.log, cases.ErrNotFound)
		return uuid.Nil, false
	}
	return id, true
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeRawJSON writes body, JSON already encoded and ended with a newline
// as json.Encoder ends it, with the headers of writeJSON.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decodePayload decodes the command's payload strictly into its catalogue
// type (the caller validates it once the server has completed it).
func (h *Handler) decodePayload(w http.ResponseWriter, r *http.Request, body commandBody) (domain.Payload, bool) {
	if body.Type == "" {
		writeProblem(w, r, Problem{Type: problemType("missing_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "le champ type est obligatoire (par ex. PartnerJoined)", Rule: "missing_field", Field: "type"})
		return nil, false
	}
	p, ok := domain.NewPayload(body.Type)
	if !ok {
		writeProblem(w, r, Problem{Type: problemType("unknown_event_type"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("type inconnu %q ; types possibles : %s", body.Type, typeList()), Rule: "unknown_event_type", Field: "type"})
		return nil, false
	}
	if len(body.Payload) == 0 || string(body.Payload) == "null" {
		writeProblem(w, r, Problem{Type: problemType("missing_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "le champ payload est obligatoire", Rule: "missing_field", Field: "payload"})
		return nil, false
	}
	if err := strictUnmarshal(body.Payload, p); err != nil {
		h.badJSON(w, r, err, "payload", body.Payload, p)
		return nil, false
	}
	return p, true
}

func typeList() string {
	var names []string
	for _, t := range domain.EventTypes() {
		if t != domain.CaseOpened {
			names = append(names, string(t))
		}
	}
	return strings.Join(names, ", ")
}
