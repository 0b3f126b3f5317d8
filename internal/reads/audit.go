package reads

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
)

// AccessList is who read a case, as the reader may know it.
type AccessList struct {
	CaseID  domain.CaseID         `json:"caseId"`
	Records []domain.AccessRecord `json:"records"`
	// Limited is set for a family member under an order that limits what
	// they are told: the list is then empty. The order itself is not named:
	// their timeline hides it.
	Limited *Limitation `json:"limitedBy,omitempty"`
}

// Limitation says, in words, why an access list is empty.
type Limitation struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Access returns who read the case, as domain.AccessListOf lets r know it:
// every read for an auditor; the reads by other institutions for the
// coordinator (f.From defaults to 30 days ago); the reads the family may know
// of for a family member (audit.ForFamily). Refusals withheld from their
// authors are shown to auditors only. The read of the list is recorded.
func (s *Service) Access(ctx context.Context, r Reader, id domain.CaseID, f audit.AccessFilter) (AccessList, error) {
	st, events, err := s.cases.LoadFor(ctx, id, r.Viewer)
	if err != nil {
		return AccessList{}, err
	}
	reader, err := domain.AccessListOf(st, r.Viewer)
	if err != nil {
		return AccessList{}, err
	}
	if s.access == nil {
		return AccessList{}, ErrNotConfigured
	}
	now := s.now()
	if reader == domain.AccessListCoordinator && f.From.IsZero() {
		f.From = now.Add(-coordinatorWindow)
	}
	f.CaseID = id
	records, err := s.access.Access(ctx, f)
	if err != nil {
		return AccessList{}, err
	}
	list := AccessList{CaseID: id, Records: []domain.AccessRecord{}}
	switch reader {
	case domain.AccessListFamily:
		shown, limited := audit.ForFamily(st, events, r.Viewer.FamilyMember, withoutRefusals(records), now)
		list.Records = append(list.Records, shown...)
		if limited != nil {
			list.Limited = &Limitation{Rule: "family_information_limited",
				Detail: "une décision du juge des enfants limite les informations qui vous sont données sur ce dossier"}
		}
	case domain.AccessListCoordinator:
		list.Records = append(list.Records, audit.ByOtherInstitutions(r.Viewer.Institution, withoutRefusals(records))...)
	default:
		list.Records = append(list.Records, records...)
	}
	from, to := whole(st.Version)
	if err := s.record(ctx, r, domain.AccessList, id, from, to); err != nil {
		return AccessList{}, err
	}
	return list, nil
}

// coordinatorWindow is how far back the coordinator's access list goes by
// default.
const coordinatorWindow = 30 * 24 * time.Hour

func withoutRefusals(records []domain.AccessRecord) []domain.AccessRecord {
	out := make([]domain.AccessRecord, 0, len(records))
	for _, r := range records {
		if r.Kind != domain.AccessRefusal {
			out = append(out, r)
		}
	}
	return out
}

// Export writes the case's full history as JSON lines (audit.WriteExport),
// for auditors, once the read is recorded; it returns the case's version.
func (s *Service) Export(ctx context.Context, r Reader, id domain.CaseID, w io.Writer) (uint64, error) {
	st, events, err := s.cases.LoadFor(ctx, id, r.Viewer)
	if err != nil {
		return 0, err
	}
	if err := domain.AuditorOnly(r.Viewer, "auditor_only",
		"l'export complet d'un dossier est réservé aux auditeurs ; les membres consultent la chronologie"); err != nil {
		return 0, err
	}
	var head *audit.SignedHead
	if s.heads != nil {
		sh, found, err := s.heads.Latest(ctx, id)
		if err != nil {
			return 0, err
		}
		if found {
			head = &sh
		}
	}
	var erasure *personal.Erasure
	if e, erased, err := s.cases.Erasure(ctx, id); err != nil {
		return 0, err
	} else if erased {
		erasure = &e
	}
	from, to := whole(st.Version)
	if err := s.record(ctx, r, domain.AccessExport, id, from, to); err != nil {
		return 0, err
	}
	return st.Version, audit.WriteExport(w, id, events, head, erasure, s.now())
}

// Record decides and appends a command for r (cases.Service.Record). A
// refusal whose reason is withheld from r (domain.TellRefusal) is recorded
// in the access log with the rule withheld, for auditors, before the
// neutral refusal is returned.
func (s *Service) Record(ctx context.Context, r Reader, req cases.Request) (cases.Result, error) {
	res, err := s.cases.Record(ctx, req)
	var de *domain.Error
	if errors.As(err, &de) && de.Withheld != nil && s.log != nil {
		rec := domain.AccessRecord{At: s.now().UTC(), Kind: domain.AccessRefusal, CaseID: req.CaseID,
			FromSequence: de.Withheld.Basis, ToSequence: de.Withheld.Basis, Principal: r.Principal, Role: r.Viewer.Role,
			Institution: r.Viewer.Institution, FamilyMember: r.Viewer.FamilyMember, Purpose: r.Purpose, Rule: de.Withheld.Rule}
		if rerr := s.log.Record(ctx, rec); rerr != nil {
			return res, errors.Join(err, rerr)
		}
	}
	return res, err
}

// Replay rebuilds the case as it stood at a past date and who could see
// what of it then, and why (audit.ReplayAsOf): the auditors' question, once
// the read is recorded.
func (s *Service) Replay(ctx context.Context, r Reader, id domain.CaseID, at time.Time) (*audit.Replay, error) {
	_, events, err := s.cases.LoadFor(ctx, id, r.Viewer)
	if err != nil {
		return nil, err
	}
	if err := domain.AuditorOnly(r.Viewer, "auditor_only",
		"rejouer un dossier à une date passée est réservé aux auditeurs"); err != nil {
		return nil, err
	}
	rp := audit.ReplayAsOf(id, events, at)
	from, to := whole(rp.Version)
	if err := s.record(ctx, r, domain.AccessReplay, id, from, to); err != nil {
		return nil, err
	}
	return rp, nil
}
