package http

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/internal/reads"
)

// AccessReader answers queries on the access log
// (adapters/jetstream/accesslog). Access returns the records the filter
// selects, oldest first; an error when the log failed.
type AccessReader interface {
	Access(ctx context.Context, f audit.AccessFilter) ([]domain.AccessRecord, error)
}

// HeadReader gives a case's latest signed chain head
// (adapters/jetstream/checkpoints): false when none was signed yet.
type HeadReader interface {
	Latest(ctx context.Context, id domain.CaseID) (audit.SignedHead, bool, error)
}

// auditConfig is what the audit options set.
type auditConfig struct {
	log    domain.AccessLog
	reader AccessReader
	heads  HeadReader
	pub    ed25519.PublicKey
}

func (h *Handler) auditCfg() *auditConfig {
	if h.audit == nil {
		h.audit = &auditConfig{}
	}
	return h.audit
}

// WithAccessLog records every read of a case's content (timeline, summary,
// export, and any route wrapped with RecordAccess) in l before it is
// answered: a read whose record fails is not served (503). The purpose is
// the X-Access-Purpose header. When l is also an AccessReader, the access
// log can be queried (GET /v1/audit/access, GET /v1/cases/{id}/access).
func WithAccessLog(l domain.AccessLog) Option {
	return func(h *Handler) {
		h.auditCfg().log = l
		if r, ok := l.(AccessReader); ok {
			h.auditCfg().reader = r
		}
	}
}

// WithSignedHeads serves each case's latest signed chain head
// (GET /v1/cases/{id}/head) and the public key that checks it
// (GET /v1/audit/public-key), and puts the head in exports.
func WithSignedHeads(heads HeadReader, pub ed25519.PublicKey) Option {
	return func(h *Handler) { h.auditCfg().heads, h.auditCfg().pub = heads, pub }
}

// PurposeHeader carries why the caller reads a case; it is recorded with
// the read.
const PurposeHeader = "X-Access-Purpose"

// reader is the caller of a request as the reads service knows them.
func reader(r *http.Request) reads.Reader {
	p := principal(r.Context())
	return reads.Reader{Principal: p.ID, Viewer: p.Viewer(), Purpose: r.Header.Get(PurposeHeader)}
}

// accessView is an access record as the API shows it.
type accessView struct {
	domain.AccessRecord
	InstitutionName string `json:"institutionName,omitempty"`
}

func (h *Handler) accessViews(records []domain.AccessRecord) []accessView {
	out := make([]accessView, len(records))
	names := map[domain.InstitutionID]string{}
	for i, r := range records {
		out[i].AccessRecord = r
		if r.Institution == "" {
			continue
		}
		name, ok := names[r.Institution]
		if !ok {
			if inst, err := h.directory.Institution(r.Institution); err == nil {
				name = inst.Name
			}
			names[r.Institution] = name
		}
		out[i].InstitutionName = name
	}
	return out
}

// auditAccess is GET /v1/audit/access?case=&institution=&from=&to=&limit=,
// for auditors.
func (h *Handler) auditAccess(w http.ResponseWriter, r *http.Request) {
	if err := domain.AuditorOnly(principal(r.Context()).Viewer(), "auditor_only",
		"le journal des accès est consultable par les auditeurs ; la famille et la coordination consultent celui de leur dossier"); err != nil {
		writeError(w, r, h.log, err)
		return
	}
	q := r.URL.Query()
	f, ok := h.accessFilter(w, r, 0)
	if !ok {
		return
	}
	if s := q.Get("case"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
				Detail: "case : identifiant de dossier (UUID) attendu", Rule: "invalid_field", Field: "case"})
			return
		}
		f.CaseID = id
	}
	f.Institution = domain.InstitutionID(q.Get("institution"))
	h.answerAccess(w, r, f, func(rs []domain.AccessRecord) any {
		return map[string]any{"records": h.accessViews(rs)}
	})
}

// caseAccess is GET /v1/cases/{id}/access: who read the case, as the
// reads service lets the caller know it (domain.AccessListOf).
func (h *Handler) caseAccess(w http.ResponseWriter, r *http.Request) {
	id, ok := h.caseID(w, r)
	if !ok {
		return
	}
	f, ok := h.accessFilter(w, r, 0)
	if !ok {
		return
	}
	list, err := h.rs.Access(r.Context(), reader(r), id, f)
	if errors.Is(err, reads.ErrNotConfigured) {
		h.accessNotConfigured(w, r)
		return
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	ans := map[string]any{"caseId": list.CaseID, "records": h.accessViews(list.Records)}
	if list.Limited != nil {
		ans["limitedBy"] = list.Limited
	}
	writeJSON(w, http.StatusOK, ans)
}

// accessFilter reads from, to and limit; from defaults to now minus
// defaultWindow when that is not zero.
func (h *Handler) accessFilter(w http.ResponseWriter, r *http.Request, defaultWindow time.Duration) (audit.AccessFilter, bool) {
	q := r.URL.Query()
	var f audit.AccessFilter
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(t.name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeProblem(w, r, Problem{Type: problemType("invalid_field"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
					Detail: t.name + " : une date RFC 3339 est attendue, par ex. 2026-01-31T00:00:00Z", Rule: "invalid_field", Field: t.name})
				return f, false
			}
			if err := domain.CheckDate(t.name, v); err != nil {
				writeError(w, r, h.log, err)
				return f, false
			}
			*t.dst = v
		}
	}
	if f.From.IsZero() && defaultWindow > 0 {
		f.From = h.cases.Now().Add(-defaultWindow)
	}
	limit, ok := queryUint(w, r, q.Get("limit"), "limit", audit.DefaultAccessLimit, audit.DefaultAccessLimit)
	if !ok {
		return f, false
	}
	f.Limit = int(limit)
	return f, true
}

func (h *Handler) accessNotConfigured(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, Problem{Type: problemType("access_log_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
		Detail: "ce serveur ne tient pas de journal des accès consultable", Rule: "access_log_not_configured"})
}

func (h *Handler) answerAccess(w http.ResponseWriter, r *http.Request, f audit.AccessFilter, shape func([]domain.AccessRecord) any) {
	if h.audit == nil || h.audit.reader == nil {
		h.accessNotConfigured(w, r)
		return
	}
	records, err := h.audit.reader.Access(r.Context(), f)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, shape(records))
}

// signedHead is GET /v1/cases/{id}/head: the case's latest signed head, for
// anyone who may know the case but a former member, to check their
// timeline or feed against.
func (h *Handler) signedHead(w http.ResponseWriter, r *http.Request) {
	id, ok := h.caseID(w, r)
	if !ok {
		return
	}
	head, err := h.rs.Head(r.Context(), reader(r), id)
	switch {
	case errors.Is(err, reads.ErrNotConfigured):
		writeProblem(w, r, Problem{Type: problemType("signed_heads_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne signe pas les têtes de chaîne", Rule: "signed_heads_not_configured"})
	case errors.Is(err, reads.ErrNoSignedHead):
		writeProblem(w, r, Problem{Type: problemType("no_signed_head"), Title: "Pas encore signé", Status: http.StatusNotFound,
			Detail: "la tête de chaîne de ce dossier n'a pas encore été signée : réessayez après la prochaine signature", Rule: "no_signed_head"})
	case err != nil:
		writeError(w, r, h.log, err)
	default:
		writeJSON(w, http.StatusOK, head)
	}
}

// publicKey is GET /v1/audit/public-key: the PEM public key signed heads
// verify with. Pin it from a trusted channel: an attacker who could change
// answers could change this one too.
func (h *Handler) publicKey(w http.ResponseWriter, r *http.Request) {
	if h.audit == nil || h.audit.pub == nil {
		writeProblem(w, r, Problem{Type: problemType("signed_heads_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne signe pas les têtes de chaîne", Rule: "signed_heads_not_configured"})
		return
	}
	pem, err := audit.MarshalPublicKey(h.audit.pub)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("X-Key-Id", audit.KeyID(h.audit.pub))
	w.Write(pem)
}

// exportCase is GET /v1/cases/{id}/export, for auditors: the case's full
// history as JSON lines (audit.WriteExport), recorded in the access log.
func (h *Handler) exportCase(w http.ResponseWriter, r *http.Request) {
	id, ok := h.caseID(w, r)
	if !ok {
		return
	}
	var body bytes.Buffer
	version, err := h.rs.Export(r.Context(), reader(r), id, &body)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="maillage-`+id.String()+`.jsonl"`)
	w.Header().Set("ETag", etag(version))
	w.Write(body.Bytes())
}

// eraseBody is the body of POST /v1/cases/{id}/erase.
type eraseBody struct {
	Reason string `json:"reason"`
}

// eraseCase is POST /v1/cases/{id}/erase, for auditors and admins: destroys
// the key of the case's personal data (cases.Service.Erase).
func (h *Handler) eraseCase(w http.ResponseWriter, r *http.Request) {
	id, ok := h.caseID(w, r)
	if !ok {
		return
	}
	var body eraseBody
	if !h.decode(w, r, &body) {
		return
	}
	p := principal(r.Context())
	if err := domain.MayErase(p.Viewer()); err != nil {
		// Answered like an unknown case for those who may not know it.
		if _, _, lerr := h.cases.LoadFor(r.Context(), id, p.Viewer()); errors.Is(lerr, domain.ErrNotFound) {
			err = lerr
		}
		writeError(w, r, h.log, err)
		return
	}
	rec, err := h.cases.Erase(r.Context(), cases.EraseRequest{CaseID: id, Role: p.Role, Principal: p.ID, Name: p.Name, Reason: body.Reason})
	if errors.Is(err, cases.ErrErasureNotConfigured) {
		writeProblem(w, r, Problem{Type: problemType("erasure_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne chiffre pas les données personnelles : il ne peut pas les effacer", Rule: "erasure_not_configured"})
		return
	}
	if errors.Is(err, cases.ErrErasureUnfinished) {
		requestLog(r.Context(), h.log).Error("erasure unfinished", "err", err)
		w.Header().Set("Retry-After", "10")
		writeProblem(w, r, Problem{Type: problemType("erasure_unfinished"), Title: "Effacement inachevé", Status: http.StatusServiceUnavailable,
			Detail: "les données personnelles du dossier sont effacées, mais les flux partenaires n'en sont pas encore vidés : renvoyez la même demande dans quelques instants pour terminer",
			Rule:   "erasure_unfinished"})
		return
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"caseId": id, "erased": true, "erasure": rec,
		"detail": "les données personnelles du dossier sont effacées ; sa chaîne de hachage reste vérifiable"})
}
