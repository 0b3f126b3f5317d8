package accesslog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// WithPersonalData seals the purpose of every record with its case's key
// from keys (personal.SealText) before it is stored, and opens it on
// Access, so that the case's erasure reaches it: once the key is destroyed
// the purpose reads personal.Erased ("[effacé]"). A purpose given for a
// case already erased is stored as that placeholder. The seals of the log
// cover the stored bytes, which erasure does not change: they still verify.
// Without it, purposes are stored as given.
func WithPersonalData(keys personal.Keys) Option {
	return func(c *config) error {
		if keys == nil {
			return errors.New("accesslog: WithPersonalData: nil keys")
		}
		c.keys = keys
		return nil
	}
}

// purposeAbout binds a sealed purpose to its case.
func purposeAbout(id domain.CaseID) string { return "access-purpose\x00" + id.String() }

// sealPurpose returns the purpose of r as it is stored.
func (l *Log) sealPurpose(ctx context.Context, r domain.AccessRecord) (string, error) {
	if l.cfg.keys == nil || r.Purpose == "" {
		return r.Purpose, nil
	}
	// The purpose is the case's personal data: a case without a key yet
	// gets one, as with its first event.
	key, err := l.cfg.keys.Key(ctx, r.CaseID, true)
	switch {
	case errors.Is(err, personal.ErrErased):
		return personal.Erased, nil
	case err != nil:
		return "", fmt.Errorf("accesslog: key of case %s: %w", r.CaseID, err)
	}
	return personal.SealText(key, purposeAbout(r.CaseID), r.Purpose, rand.Reader)
}

// purposes opens the sealed purposes of records, in place, one key lookup
// per case.
type purposes struct {
	keys personal.Keys
	seen map[domain.CaseID][]byte
}

func (p *purposes) open(ctx context.Context, r *domain.AccessRecord) error {
	if !personal.IsSealedText(r.Purpose) {
		return nil
	}
	if p.keys == nil {
		// Sealed by a server with the keys, read without them: never show
		// the token as a purpose.
		r.Purpose = ""
		return nil
	}
	key, ok := p.seen[r.CaseID]
	if !ok {
		k, err := p.keys.Key(ctx, r.CaseID, false)
		switch {
		case errors.Is(err, personal.ErrErased):
			k = nil // reads as erased
		case err != nil:
			// A sealed purpose without a key is a lost key, not an
			// erasure: fail rather than show it erased.
			return fmt.Errorf("accesslog: key of case %s: %w", r.CaseID, err)
		}
		if p.seen == nil {
			p.seen = map[domain.CaseID][]byte{}
		}
		key, p.seen[r.CaseID] = k, k
	}
	plain, err := personal.OpenText(key, purposeAbout(r.CaseID), r.Purpose)
	if err != nil {
		return fmt.Errorf("accesslog: purpose of a record of case %s: %w", r.CaseID, err)
	}
	r.Purpose = plain
	return nil
}
