// Package reads is the one way a case leaves the system for a person: each
// read of a case (timeline, summary, plan, chronology, who-sees-what,
// deadlines, access list, signed head, export) is one call that decides with
// the domain policy as it stands now, records the access, and returns what
// the reader may see. The HTTP API, the web view and the CLI call it; none of
// them filters or records on its own.
package reads

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/projections"
)

// Reader is who reads, and why: the viewer the policy decides for, the
// principal recorded in the access log, and the purpose they gave.
type Reader struct {
	Principal uuid.UUID
	Viewer    domain.Viewer
	Purpose   string
}

// ReadModels are the read models the synthesis reads answer from
// (projections.Runner).
type ReadModels interface {
	Plan(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.Plan, error)
	Chronology(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.Chronology, error)
	WhoSeesWhat(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.WhoSeesWhat, error)
	CaseDeadlines(ctx context.Context, id domain.CaseID, v domain.Viewer, o projections.ReadOptions) (projections.CaseDeadlines, error)
	InstitutionDeadlines(ctx context.Context, inst domain.InstitutionID, o projections.ReadOptions) (projections.InstitutionDeadlines, error)
	KnownCases(ctx context.Context, v domain.Viewer, o projections.ReadOptions) ([]projections.CaseCard, error)
}

// AccessReader answers queries on the access log: the records the filter
// selects, oldest first.
type AccessReader interface {
	Access(ctx context.Context, f audit.AccessFilter) ([]domain.AccessRecord, error)
}

// HeadReader gives a case's latest signed chain head: false when none was
// signed yet.
type HeadReader interface {
	Latest(ctx context.Context, id domain.CaseID) (audit.SignedHead, bool, error)
}

// Errors of the reads, beside domain.ErrNotFound, *domain.Error refusals,
// projections.ErrBehind / ErrStopped and store errors.
var (
	// ErrNotRecorded: the access could not be recorded, so the read is not
	// served.
	ErrNotRecorded = errors.New("reads: access not recorded")
	// ErrNotConfigured: this server keeps no such thing (read models,
	// queryable access log, signed heads).
	ErrNotConfigured = errors.New("reads: not configured on this server")
	// ErrNoSignedHead: no head of the case was signed yet.
	ErrNoSignedHead = errors.New("reads: no signed head yet")
)

// Service decides, records and answers reads of cases.
type Service struct {
	cases  *cases.Service
	models ReadModels
	log    domain.AccessLog // nil: reads are not recorded
	access AccessReader
	heads  HeadReader
	now    func() time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithReadModels answers plan, chronology, who-sees-what, deadlines and the
// case list from rm.
func WithReadModels(rm ReadModels) Option { return func(s *Service) { s.models = rm } }

// WithAccessLog records every read in l before it is answered; when l is
// also an AccessReader, access lists can be read.
func WithAccessLog(l domain.AccessLog) Option {
	return func(s *Service) {
		s.log = l
		if r, ok := l.(AccessReader); ok {
			s.access = r
		}
	}
}

// WithSignedHeads serves the cases' signed heads and puts them in exports.
func WithSignedHeads(h HeadReader) Option { return func(s *Service) { s.heads = h } }

// New returns the reads of svc's cases.
func New(svc *cases.Service, opts ...Option) *Service {
	s := &Service{cases: svc, now: svc.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Cases is the case service the reads are made over.
func (s *Service) Cases() *cases.Service { return s.cases }

// record records one read of sequences from..to of a case by r.
func (s *Service) record(ctx context.Context, r Reader, kind domain.AccessKind, id domain.CaseID, from, to uint64) error {
	if s.log == nil {
		return nil
	}
	err := s.log.Record(ctx, domain.AccessRecord{At: s.now().UTC(), Kind: kind, CaseID: id, FromSequence: from, ToSequence: to,
		Principal: r.Principal, Role: r.Viewer.Role, Institution: r.Viewer.Institution, FamilyMember: r.Viewer.FamilyMember,
		Purpose: r.Purpose})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	return nil
}

// whole is the range of a read that shows a case up to version.
func whole(version uint64) (from, to uint64) {
	if version == 0 {
		return 0, 0
	}
	return 1, version
}

// TimelineJSON appends to dst the JSON of the page of the case's timeline
// after sequence after (at most limit events) as r may see it, once its
// access is recorded, and returns the case's version as r may know it.
func (s *Service) TimelineJSON(ctx context.Context, r Reader, dst []byte, id domain.CaseID, after uint64, limit int) ([]byte, uint64, error) {
	body, page, err := s.cases.AppendTimelinePage(ctx, dst, id, r.Viewer, after, limit)
	if err != nil {
		return dst, 0, err
	}
	if err := s.record(ctx, r, domain.AccessTimeline, id, page.From, page.To); err != nil {
		return dst, 0, err
	}
	return body, page.Version, nil
}

// Timeline returns the page of the case's timeline as r may see it.
func (s *Service) Timeline(ctx context.Context, r Reader, id domain.CaseID, after uint64, limit int) (cases.Timeline, error) {
	t, err := s.cases.Timeline(ctx, id, r.Viewer, after, limit)
	if err != nil {
		return cases.Timeline{}, err
	}
	var from, to uint64
	if n := len(t.Events); n > 0 {
		from, to = t.Events[0].Sequence, t.Events[n-1].Sequence
	}
	if err := s.record(ctx, r, domain.AccessTimeline, id, from, to); err != nil {
		return cases.Timeline{}, err
	}
	return t, nil
}

// Summary returns the case's current state as r may see it (current
// members and auditors).
func (s *Service) Summary(ctx context.Context, r Reader, id domain.CaseID) (cases.Summary, error) {
	sum, err := s.cases.Summary(ctx, id, r.Viewer)
	if err != nil {
		return cases.Summary{}, err
	}
	from, to := whole(sum.Version)
	if err := s.record(ctx, r, domain.AccessSummary, id, from, to); err != nil {
		return cases.Summary{}, err
	}
	return sum, nil
}

// readModel runs one read of the read models and records it.
func readModel[T any](ctx context.Context, s *Service, r Reader, kind domain.AccessKind, id domain.CaseID,
	read func(ReadModels) (T, uint64, error)) (T, error) {
	var zero T
	if s.models == nil {
		return zero, ErrNotConfigured
	}
	v, version, err := read(s.models)
	if err != nil {
		return zero, err
	}
	from, to := whole(version)
	if err := s.record(ctx, r, kind, id, from, to); err != nil {
		return zero, err
	}
	return v, nil
}

// Plan returns the case's shared plan as r may see it now, or the history
// up to o.AsOf as r may see it now (domain.PolicyAt).
func (s *Service) Plan(ctx context.Context, r Reader, id domain.CaseID, o projections.ReadOptions) (projections.Plan, error) {
	return readModel(ctx, s, r, domain.AccessPlan, id, func(rm ReadModels) (projections.Plan, uint64, error) {
		p, err := rm.Plan(ctx, id, r.Viewer, o)
		return p, p.Version, err
	})
}

// Chronology returns the case's multi-agency chronology as r may see it.
func (s *Service) Chronology(ctx context.Context, r Reader, id domain.CaseID, o projections.ReadOptions) (projections.Chronology, error) {
	return readModel(ctx, s, r, domain.AccessChronology, id, func(rm ReadModels) (projections.Chronology, uint64, error) {
		c, err := rm.Chronology(ctx, id, r.Viewer, o)
		return c, c.Version, err
	})
}

// Visibility returns who sees what on the case, and why, as r may know it.
func (s *Service) Visibility(ctx context.Context, r Reader, id domain.CaseID, o projections.ReadOptions) (projections.WhoSeesWhat, error) {
	return readModel(ctx, s, r, domain.AccessVisibility, id, func(rm ReadModels) (projections.WhoSeesWhat, uint64, error) {
		w, err := rm.WhoSeesWhat(ctx, id, r.Viewer, o)
		return w, w.Version, err
	})
}

// Deadlines returns what is due on the case, as r may know it.
func (s *Service) Deadlines(ctx context.Context, r Reader, id domain.CaseID, o projections.ReadOptions) (projections.CaseDeadlines, error) {
	if !o.AsOf.IsZero() {
		return projections.CaseDeadlines{}, domain.Invalid("asOf", "les échéances se lisent à la date du jour ; asOf vaut pour le projet, la chronologie et « qui voit quoi »")
	}
	return readModel(ctx, s, r, domain.AccessDeadlines, id, func(rm ReadModels) (projections.CaseDeadlines, uint64, error) {
		d, err := rm.CaseDeadlines(ctx, id, r.Viewer, o)
		return d, d.Version, err
	})
}

// InstitutionDeadlines returns what is due across the cases r's institution
// is a current member of (the professional's tray).
func (s *Service) InstitutionDeadlines(ctx context.Context, r Reader, o projections.ReadOptions) (projections.InstitutionDeadlines, error) {
	if s.models == nil {
		return projections.InstitutionDeadlines{}, ErrNotConfigured
	}
	if err := domain.ProfessionalsOnly(r.Viewer, "institution_deadlines_professionals_only",
		"les échéances d'une institution sont réservées à ses professionnels ; lisez celles d'un dossier par /v1/cases/{id}/deadlines"); err != nil {
		return projections.InstitutionDeadlines{}, err
	}
	return s.models.InstitutionDeadlines(ctx, r.Viewer.Institution, o)
}

// Head returns the case's latest signed head for r: anyone who may know
// the case but a former member, whose knowledge stops at its leaving (a
// head signed later would tell that the case moved).
func (s *Service) Head(ctx context.Context, r Reader, id domain.CaseID) (audit.SignedHead, error) {
	if s.heads == nil {
		return audit.SignedHead{}, ErrNotConfigured
	}
	st, _, err := s.cases.LoadFor(ctx, id, r.Viewer)
	if err != nil {
		return audit.SignedHead{}, err
	}
	if domain.KnownVersion(st, r.Viewer) != st.Version {
		return audit.SignedHead{}, &domain.Error{Code: domain.EForbidden, Rule: "head_current_members_only",
			Message: "la tête de chaîne signée est réservée aux membres actuels : votre institution a quitté le dossier ; sa chronologie s'arrête à votre départ"}
	}
	head, found, err := s.heads.Latest(ctx, id)
	if err != nil {
		return audit.SignedHead{}, err
	}
	if !found {
		return audit.SignedHead{}, ErrNoSignedHead
	}
	if err := s.record(ctx, r, domain.AccessHead, id, head.Version, head.Version); err != nil {
		return audit.SignedHead{}, err
	}
	return head, nil
}

// CaseList is a page of the cases a viewer may know of.
type CaseList struct {
	Cases []projections.CaseCard `json:"cases"`
	// Next is the cursor of the next page, absent on the last one.
	Next string `json:"next,omitempty"`
}

// KnownCases returns the cases r may know exist (domain.MayKnow), each as r
// may see it, in the order of their ids, at most limit (0: all) after the
// cursor (the id of the last case of the previous page, "" for the first).
func (s *Service) KnownCases(ctx context.Context, r Reader, cursor string, limit int, o projections.ReadOptions) (CaseList, error) {
	if s.models == nil {
		return CaseList{}, ErrNotConfigured
	}
	var after uuid.UUID
	if cursor != "" {
		id, err := uuid.Parse(cursor)
		if err != nil {
			return CaseList{}, domain.Invalid("cursor", "cursor : reprenez la valeur « next » de la page précédente")
		}
		after = id
	}
	all, err := s.models.KnownCases(ctx, r.Viewer, o)
	if err != nil {
		return CaseList{}, err
	}
	slices.SortFunc(all, func(a, b projections.CaseCard) int { return bytes.Compare(a.CaseID[:], b.CaseID[:]) })
	start, _ := slices.BinarySearchFunc(all, after, func(c projections.CaseCard, id uuid.UUID) int {
		return bytes.Compare(c.CaseID[:], id[:])
	})
	if cursor != "" && start < len(all) && all[start].CaseID == after {
		start++
	}
	list := CaseList{Cases: all[start:]}
	if limit > 0 && len(list.Cases) > limit {
		list.Cases = list.Cases[:limit]
		list.Next = list.Cases[limit-1].CaseID.String()
	}
	if list.Cases == nil {
		list.Cases = []projections.CaseCard{}
	}
	return list, nil
}
