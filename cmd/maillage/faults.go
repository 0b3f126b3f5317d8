package main

import (
	"context"
	"fmt"

	mhttp "github.com/maillage/maillage/adapters/http"
)

// faultsHTTP adds the readiness checks of the faults the store must not
// hide (docs/operations.md): cases damaged (the store lost signed events of
// them: read-only) and a full disk.
func (m *Main) faultsHTTP() mhttp.Option {
	var opts []mhttp.Option
	if m.signer != nil {
		signer := m.signer
		opts = append(opts, mhttp.WithReadiness("cases_damaged", func(context.Context) error {
			if n := signer.Damaged(); n > 0 {
				return &mhttp.NotReady{Reason: fmt.Sprintf("%d dossier(s) endommagé(s), en lecture seule : restaurez depuis une sauvegarde et lancez maillage audit verify", n)}
			}
			return nil
		}))
	}
	return func(h *mhttp.Handler) {
		for _, o := range opts {
			o(h)
		}
	}
}
