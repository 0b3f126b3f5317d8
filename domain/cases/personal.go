package cases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// WithPersonalData seals the personal-data fields of every recorded event
// with its case's key from keys before the event is hashed (domain/personal),
// and opens them on reads; a case whose key was destroyed reads with those
// fields erased and takes no more events. Without it, events are recorded
// as decided.
func WithPersonalData(keys personal.Keys) Option {
	return func(s *Service) error {
		if keys == nil {
			return errors.New("cases: nil keys")
		}
		s.keys = keys
		s.store = personal.NewStore(s.store, keys)
		return nil
	}
}

// WithOnErase calls fn after each erasure of a case (also when the case was
// already erased, so that a retried erasure finishes what a failed fn left):
// for components that keep copies of what was read, such as partner feeds,
// to drop them. An error of fn is returned by Erase, after the key is
// destroyed.
func WithOnErase(fn func(ctx context.Context, id domain.CaseID) error) Option {
	return func(s *Service) error {
		if fn == nil {
			return errors.New("cases: nil erasure hook")
		}
		s.onErase = append(s.onErase, fn)
		return nil
	}
}

// ErrErasureUnfinished: the key is destroyed, but a component keeping
// copies (WithOnErase) failed to drop them; erasing again finishes.
var ErrErasureUnfinished = errors.New("personal data erased, copies not cleared yet: erase again")

// ErrErasureNotConfigured: the service runs without WithPersonalData, so
// there is no key to destroy.
var ErrErasureNotConfigured = errors.New("erasure needs personal-data keys (cases.WithPersonalData)")

// caseErased refuses a command on an erased case.
func caseErased() error {
	return &domain.Error{Code: domain.ERefused, Rule: "case_erased",
		Message: "les données personnelles de ce dossier ont été effacées : plus rien ne peut y être enregistré"}
}

// sealPersonal encrypts the personal-data fields of decided events with the
// case's key (created with the case's first event). The caller seals the
// result into the chain.
func (s *Service) sealPersonal(ctx context.Context, id domain.CaseID, decided []domain.Event, ids []uuid.UUID) ([]domain.Event, error) {
	if s.keys == nil {
		return decided, nil
	}
	key, err := s.keys.Key(ctx, id, true)
	if errors.Is(err, personal.ErrErased) {
		return nil, caseErased()
	}
	if err != nil {
		return nil, fmt.Errorf("case key: %w", err)
	}
	out := make([]domain.Event, len(decided))
	for i, e := range decided {
		e.ID, e.CaseID = ids[i], id
		if out[i], err = personal.Seal(e, key, s.rand); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dropIfErased empties a cached case whose key was destroyed since it was
// read (by this process or another), so that it is read again, erased. The
// caller holds entry.mu.
func (s *Service) dropIfErased(ctx context.Context, id domain.CaseID, entry *caseEntry) error {
	if s.keys == nil || entry.erased || entry.state.Version == 0 {
		return nil
	}
	_, erased, err := s.keys.Erasure(ctx, id)
	if err != nil {
		return fmt.Errorf("case key: %w", err)
	}
	if erased {
		// The rendered views go with the events: they hold the personal
		// data that was just erased.
		entry.state, entry.events, entry.synced, entry.erased = domain.NewState(id), nil, false, true
		entry.fullViews, entry.redactedViews = nil, nil
	}
	return nil
}

// EraseRequest asks to destroy a case's personal data.
type EraseRequest struct {
	CaseID    domain.CaseID
	Role      domain.Role // auditor or admin
	Principal uuid.UUID   // who asks (directory principal), recorded with the erasure
	Name      string
	Reason    string // why: end of the retention period, a decision, ...
}

// Erase destroys the key of a case's personal data (crypto-shredding): its
// personal-data fields read as personal.Erased from then on, everywhere,
// while its events, their order and their hash chain are unchanged and
// still verify; nothing more can be recorded on it. The erasure record (who,
// when, why) is kept where the key was.
//
// Outcomes: the erasure record (the earlier one, unchanged, when the case
// was already erased); a *domain.Error: EForbidden for a role other than
// auditor or admin, EInvalid for a missing or overlong reason;
// ErrNotFound for a case that does not exist; ErrErasureNotConfigured; a
// store or key store error.
func (s *Service) Erase(ctx context.Context, req EraseRequest) (personal.Erasure, error) {
	if req.Role != domain.RoleAuditor && req.Role != domain.RoleAdmin {
		return personal.Erasure{}, &domain.Error{Code: domain.EForbidden, Rule: "erase_auditor_or_admin",
			Message: "seuls un auditeur ou un administrateur peuvent effacer les données personnelles d'un dossier"}
	}
	reason := strings.TrimSpace(req.Reason)
	switch {
	case reason == "":
		return personal.Erasure{}, domain.Invalid("reason", "indiquez le motif de l'effacement (par ex. fin de la durée de conservation)")
	case utf8.RuneCountInString(reason) > 500:
		return personal.Erasure{}, domain.Invalid("reason", "motif trop long : 500 caractères au plus")
	}
	if s.keys == nil {
		return personal.Erasure{}, ErrErasureNotConfigured
	}
	st, _, err := s.Load(ctx, req.CaseID)
	if err != nil {
		return personal.Erasure{}, err
	}
	if !st.Opened {
		return personal.Erasure{}, ErrNotFound
	}
	rec, err := s.keys.Erase(ctx, req.CaseID, personal.Erasure{CaseID: req.CaseID, At: s.now().UTC(),
		Principal: req.Principal, Name: req.Name, Role: req.Role, Reason: reason})
	if err != nil {
		return personal.Erasure{}, fmt.Errorf("erase case %s: %w", req.CaseID, err)
	}
	entry := s.entry(req.CaseID)
	entry.mu.Lock()
	err = s.dropIfErased(ctx, req.CaseID, entry)
	entry.mu.Unlock()
	if err != nil {
		return personal.Erasure{}, err
	}
	s.log.Info("case personal data erased", "role", req.Role)
	for _, fn := range s.onErase {
		if err := fn(ctx, req.CaseID); err != nil {
			return rec, fmt.Errorf("%w: %w", ErrErasureUnfinished, err)
		}
	}
	return rec, nil
}

// Erasure returns the erasure record of a case, and false when it is not
// erased (or the service runs without personal-data keys).
func (s *Service) Erasure(ctx context.Context, id domain.CaseID) (personal.Erasure, bool, error) {
	if s.keys == nil {
		return personal.Erasure{}, false, nil
	}
	return s.keys.Erasure(ctx, id)
}
