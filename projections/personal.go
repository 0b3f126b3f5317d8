package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// WithPersonalData opens the personal-data fields of the events
// (domain/personal) with their case's key at read time, before the policy
// decides and the read models fold them; once a case's key is destroyed
// they read as erased ("[effacé]").
//
// The runner must then read the store as stored (not through
// personal.NewStore): its logs, its snapshot and its access states hold the
// sealed fields only, so that an erasure takes effect on every read model
// at once and no plaintext personal data ever reaches the snapshot file.
// What the policy needs from the access states in clear (ids, kinds,
// dates, institutions and their names) is never sealed.
func WithPersonalData(keys personal.Keys) Option {
	return func(r *Runner) error {
		if keys == nil {
			return errors.New("projections: nil personal-data keys")
		}
		r.open = func(ctx context.Context, id domain.CaseID, events []domain.Event) ([]domain.Event, error) {
			return openEvents(ctx, keys, id, events)
		}
		return nil
	}
}

// openEvents opens the sealed fields of a case's events in place.
func openEvents(ctx context.Context, keys personal.Keys, id domain.CaseID, events []domain.Event) ([]domain.Event, error) {
	var (
		key    []byte
		looked bool
	)
	for i, e := range events {
		if !personal.Sealed(e.Payload) {
			continue
		}
		if !looked {
			k, err := keys.Key(ctx, id, false)
			switch {
			case errors.Is(err, personal.ErrErased):
				k = nil // the fields read as erased
			case err != nil:
				// No key for sealed fields is a lost key, not an erasure:
				// fail rather than show them erased.
				return nil, fmt.Errorf("projections: key of case %s: %w", id, err)
			}
			key, looked = k, true
		}
		opened, err := personal.Open(e, key)
		if err != nil {
			return nil, err
		}
		events[i] = opened
	}
	return events, nil
}
