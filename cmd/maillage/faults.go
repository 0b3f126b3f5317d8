package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
)

// faultsConfig is the part of Main that keeps the faults of the store in
// sight (docs/operations.md): a full disk (writes refused with
// storage_full, writes back once space is freed) and damaged cases (see
// the signer's guard, auditserve.go).
type faultsConfig struct {
	storage     *jetstream.StorageGuard
	stopStorage func()
}

// startStorageGuard watches the NATS store's storage until closeStorage.
func (m *Main) startStorageGuard() error {
	g, err := jetstream.NewStorageGuard(m.store)
	if err != nil {
		return err
	}
	m.storage = g
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { g.Run(ctx) })
	m.stopStorage = func() { cancel(); wg.Wait() }
	return nil
}

func (m *Main) closeStorage() {
	if m.stopStorage != nil {
		m.stopStorage()
		m.stopStorage = nil
	}
}

// storageGuarded returns store with its appends refused at once while the
// disk is full, and named storage_full when they fail for lack of space.
func (m *Main) storageGuarded(store domain.EventStore) domain.EventStore {
	if m.storage == nil || m.Store != storeNATS {
		return store
	}
	return guardedEvents{store, m.storage}
}

type guardedEvents struct {
	domain.EventStore
	g *jetstream.StorageGuard
}

func (s guardedEvents) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	var res domain.AppendResult
	err := s.g.Write(func() (err error) {
		res, err = s.EventStore.Append(ctx, expectedVersion, events)
		return err
	})
	return res, err
}

// guardedAccessLog records through the storage guard: a read that cannot
// be recorded because the disk is full is refused as storage_full. Its
// other methods are the log's.
type guardedAccessLog struct {
	*accesslog.Log
	g *jetstream.StorageGuard
}

func (l guardedAccessLog) Record(ctx context.Context, r domain.AccessRecord) error {
	return l.g.Write(func() error { return l.Log.Record(ctx, r) })
}

// recordingAccessLog is the access log reads are recorded in.
func (m *Main) recordingAccessLog() domain.AccessLog {
	if m.storage == nil {
		return m.accessLog
	}
	return guardedAccessLog{m.accessLog, m.storage}
}

// registerFaultMetrics adds maillage_storage_full (1 while writes are
// refused for lack of space).
func (m *Main) registerFaultMetrics() error {
	if m.storage == nil || m.metrics == nil {
		return nil
	}
	g := m.storage
	return m.metrics.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "maillage", Name: "storage_full",
		Help: "1 while the disk of the data directory is full and writes are refused (storage_full); 0 otherwise."},
		func() float64 {
			if g.Full() {
				return 1
			}
			return 0
		}))
}

// faultsHTTP adds the readiness checks of the faults: a full disk, and
// cases damaged (the store lost signed events of them: read-only).
func (m *Main) faultsHTTP() mhttp.Option {
	var opts []mhttp.Option
	if g := m.storage; g != nil {
		opts = append(opts, mhttp.WithReadiness("storage_full", func(context.Context) error {
			if g.Full() {
				return &mhttp.NotReady{Reason: "le disque du répertoire de données est plein : libérez de la place ; aucune donnée enregistrée n'est perdue"}
			}
			return nil
		}))
	}
	if signer := m.signer; signer != nil {
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
