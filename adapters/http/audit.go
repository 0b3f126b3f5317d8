package http

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
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

// RecordAccess wraps the handler of a route that reads a case's content
// ({caseID} in its pattern): a successful (200) answer is recorded in the
// access log, with the sequences it holds, before it is sent; if the record
// fails, a 503 is sent instead. The answer is read as JSON: "events" with
// their "sequence" give the range read, else "version" (1 to version).
// Without an access log the route is served as is.
func (h *Handler) RecordAccess(kind domain.AccessKind) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h.audit == nil || h.audit.log == nil {
				next.ServeHTTP(w, r)
				return
			}
			buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
			next.ServeHTTP(buf, r)
			if buf.status == http.StatusOK {
				id, err := uuid.Parse(chi.URLParam(r, "caseID"))
				if err == nil {
					from, to := readRange(buf.body.Bytes())
					err = h.recordRead(r, kind, id, from, to)
				}
				if err != nil {
					h.accessUnavailable(w, r, err)
					return
				}
			}
			for k, v := range buf.header {
				w.Header()[k] = v
			}
			w.WriteHeader(buf.status)
			w.Write(buf.body.Bytes())
		})
	}
}

// recordRead records one read by the caller.
func (h *Handler) recordRead(r *http.Request, kind domain.AccessKind, id domain.CaseID, from, to uint64) error {
	p := principal(r.Context())
	return h.audit.log.Record(r.Context(), domain.AccessRecord{At: h.cases.Now().UTC(), Kind: kind, CaseID: id,
		FromSequence: from, ToSequence: to, Principal: p.ID, Role: p.Role, Institution: p.Institution,
		FamilyMember: p.FamilyMember, Purpose: r.Header.Get(PurposeHeader)})
}

func (h *Handler) accessUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	requestLog(r.Context(), h.log).Error("access log unavailable: read refused", "err", err)
	w.Header().Set("Retry-After", "1")
	writeProblem(w, r, Problem{Type: problemType("access_log_unavailable"), Title: "Service momentanément indisponible", Status: http.StatusServiceUnavailable,
		Detail: "la consultation ne peut pas être journalisée : elle n'est pas servie ; réessayez dans un instant", Rule: "access_log_unavailable"})
}

// readRange returns the sequences an answer shows: its events' first and
// last, or 1 to its version; 0, 0 when it shows none.
func readRange(body []byte) (from, to uint64) {
	var a struct {
		Version uint64 `json:"version"`
		Events  *[]struct {
			Sequence uint64 `json:"sequence"`
		} `json:"events"`
	}
	if json.Unmarshal(body, &a) != nil {
		return 0, 0
	}
	if a.Events != nil {
		if n := len(*a.Events); n > 0 {
			return (*a.Events)[0].Sequence, (*a.Events)[n-1].Sequence
		}
		return 0, 0
	}
	if a.Version == 0 {
		return 0, 0
	}
	return 1, a.Version
}

// bufferedWriter holds an answer until it may be sent.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(status int) {
	if !b.wrote {
		b.status, b.wrote = status, true
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
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
	if principal(r.Context()).Role != domain.RoleAuditor {
		writeError(w, r, h.log, &domain.Error{Code: domain.EForbidden, Rule: "auditor_only",
			Message: "le journal des accès est consultable par les auditeurs ; la famille et la coordination consultent celui de leur dossier"})
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

// caseAccess is GET /v1/cases/{id}/access: who read the case. Auditors see
// every record; family members the reads they may know of (audit.ForFamily);
// professionals of the coordinating institution the reads by other
// institutions (the last 30 days unless from is given); other members get
// 403.
func (h *Handler) caseAccess(w http.ResponseWriter, r *http.Request) {
	id, st, events, ok := h.knownCase(w, r)
	if !ok {
		return
	}
	p := principal(r.Context())
	coordinator := p.Role == domain.RoleProfessional && st.Coordinator == p.Institution
	if p.Role == domain.RoleProfessional && !coordinator {
		writeError(w, r, h.log, &domain.Error{Code: domain.EForbidden, Rule: "access_list_coordinator_only",
			Message: "la liste des consultations du dossier est réservée à la coordination, à la famille et aux auditeurs"})
		return
	}
	var defaultWindow time.Duration
	if coordinator {
		defaultWindow = 30 * 24 * time.Hour
	}
	f, ok := h.accessFilter(w, r, defaultWindow)
	if !ok {
		return
	}
	f.CaseID = id
	now := h.cases.Now()
	h.answerAccess(w, r, f, func(rs []domain.AccessRecord) any {
		ans := map[string]any{"caseId": id}
		switch {
		case p.Role == domain.RoleFamily:
			shown, limited := audit.ForFamily(st, events, p.FamilyMember, rs, now)
			ans["records"] = h.accessViews(shown)
			if limited != nil {
				ans["limitedBy"] = map[string]string{"rule": "family_information_limited", "orderReference": limited.OrderReference,
					"detail": "une ordonnance du juge des enfants limite les informations qui vous sont données sur ce dossier"}
			}
		case coordinator:
			ans["records"] = h.accessViews(audit.ByOtherInstitutions(p.Institution, rs))
		default:
			ans["records"] = h.accessViews(rs)
		}
		return ans
	})
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

func (h *Handler) answerAccess(w http.ResponseWriter, r *http.Request, f audit.AccessFilter, shape func([]domain.AccessRecord) any) {
	if h.audit == nil || h.audit.reader == nil {
		writeProblem(w, r, Problem{Type: problemType("access_log_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne tient pas de journal des accès consultable", Rule: "access_log_not_configured"})
		return
	}
	records, err := h.audit.reader.Access(r.Context(), f)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, shape(records))
}

// knownCase reads the route's case for a caller who may know it; anyone
// else gets the answer of an unknown case (404), so that existence does not
// leak. false when an answer was written.
func (h *Handler) knownCase(w http.ResponseWriter, r *http.Request) (domain.CaseID, *domain.State, []domain.Event, bool) {
	id, ok := h.caseID(w, r)
	if !ok {
		return id, nil, nil, false
	}
	st, events, err := h.cases.Load(r.Context(), id)
	if err != nil {
		writeError(w, r, h.log, err)
		return id, nil, nil, false
	}
	if !cases.MayKnow(st, principal(r.Context()).Viewer()) {
		writeError(w, r, h.log, cases.ErrNotFound)
		return id, nil, nil, false
	}
	return id, st, events, true
}

// signedHead is GET /v1/cases/{id}/head: the case's latest signed head, for
// anyone who may know the case, to check their timeline or feed against.
func (h *Handler) signedHead(w http.ResponseWriter, r *http.Request) {
	id, _, _, ok := h.knownCase(w, r)
	if !ok {
		return
	}
	if h.audit == nil || h.audit.heads == nil {
		writeProblem(w, r, Problem{Type: problemType("signed_heads_not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne signe pas les têtes de chaîne", Rule: "signed_heads_not_configured"})
		return
	}
	head, found, err := h.audit.heads.Latest(r.Context(), id)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	if !found {
		writeProblem(w, r, Problem{Type: problemType("no_signed_head"), Title: "Pas encore signé", Status: http.StatusNotFound,
			Detail: "la tête de chaîne de ce dossier n'a pas encore été signée : réessayez après la prochaine signature", Rule: "no_signed_head"})
		return
	}
	writeJSON(w, http.StatusOK, head)
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
	id, st, events, ok := h.knownCase(w, r)
	if !ok {
		return
	}
	p := principal(r.Context())
	if p.Role != domain.RoleAuditor {
		writeError(w, r, h.log, &domain.Error{Code: domain.EForbidden, Rule: "auditor_only",
			Message: "l'export complet d'un dossier est réservé aux auditeurs ; les membres consultent la chronologie"})
		return
	}
	var head *audit.SignedHead
	if h.audit != nil && h.audit.heads != nil {
		sh, found, err := h.audit.heads.Latest(r.Context(), id)
		if err != nil {
			writeError(w, r, h.log, err)
			return
		}
		if found {
			head = &sh
		}
	}
	var erasure *personal.Erasure
	if e, erased, err := h.cases.Erasure(r.Context(), id); err != nil {
		writeError(w, r, h.log, err)
		return
	} else if erased {
		erasure = &e
	}
	var body bytes.Buffer
	if err := audit.WriteExport(&body, id, events, head, erasure, h.cases.Now()); err != nil {
		writeError(w, r, h.log, err)
		return
	}
	if h.audit != nil && h.audit.log != nil {
		from := uint64(0)
		if st.Version > 0 {
			from = 1
		}
		if err := h.recordRead(r, domain.AccessExport, id, from, st.Version); err != nil {
			h.accessUnavailable(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="maillage-`+id.String()+`.jsonl"`)
	w.Header().Set("ETag", etag(st.Version))
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
	if p.Role != domain.RoleAuditor && p.Role != domain.RoleAdmin {
		// Answered like an unknown case for those who may not know it.
		if st, _, err := h.cases.Load(r.Context(), id); err == nil && !cases.MayKnow(st, p.Viewer()) {
			writeError(w, r, h.log, cases.ErrNotFound)
			return
		}
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
