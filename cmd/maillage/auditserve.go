package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/adapters/jetstream/checkpoints"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
	"github.com/maillage/maillage/internal/reads"
)

// auditConfig is the part of Main that keeps the history auditable: the
// data directory's lock, the per-case keys of personal data, the access
// log, and the signer of chain heads (docs/audit.md,
// docs/personal-data.md).
type auditConfig struct {
	// SigningKey is the ed25519 key (PEM, PKCS #8) chain heads are signed
	// with; "" uses <data>/signing.key, made on first start.
	SigningKey string
	// SignEvery is the signing period.
	SignEvery time.Duration
	// NatsListen lets other processes (maillage audit ...) connect to the
	// embedded NATS server, e.g. 127.0.0.1:4222; "" for none.
	NatsListen string

	dataLock     *os.File
	keys         *casekeys.Keys
	accessLog    *accesslog.Log
	heads        *checkpoints.Heads
	signer       *checkpoints.Signer
	stopSigner   func()
	faultsConfig // full disk, damaged cases: see faults.go
}

// auditFlags adds serve's flags for the audit components.
func (m *Main) auditFlags(fs *flag.FlagSet) {
	if m.SignEvery == 0 {
		m.SignEvery = time.Minute
	}
	fs.StringVar(&m.SigningKey, "signing-key", env("MAILLAGE_SIGNING_KEY", m.SigningKey), "ed25519 key (PEM) that signs the chain heads; empty: <data>/signing.key, made on first start (env MAILLAGE_SIGNING_KEY)")
	fs.DurationVar(&m.SignEvery, "sign-every", m.SignEvery, "how often the heads of the cases that changed are signed")
	fs.StringVar(&m.NatsListen, "nats-listen", env("MAILLAGE_NATS_LISTEN", m.NatsListen), "let other processes (maillage audit ...) connect to the embedded NATS server at this address, e.g. 127.0.0.1:4222; empty: none (env MAILLAGE_NATS_LISTEN)")
}

// lockDataDir takes the data directory's lock when NATS runs embedded.
func (m *Main) lockDataDir() error {
	if m.NatsURL != "" {
		return nil
	}
	f, err := lockData(m.DataDir)
	if errors.Is(err, errDataInUse) {
		return fmt.Errorf("le répertoire de données %s est déjà utilisé par un autre processus maillage (un serveur en marche ?) : %w", m.DataDir, err)
	}
	m.dataLock = f
	return err
}

// listenOptions lets other processes reach the embedded NATS server.
func (m *Main) listenOptions() []jetstream.Option {
	if m.NatsListen == "" || m.NatsURL != "" {
		return nil
	}
	return []jetstream.Option{jetstream.WithListen(m.NatsListen)}
}

// openAudit opens the key bucket, the access log and the signed heads on
// NATS, makes every reader of m.events see personal data opened (or
// erased), and starts the signer on the store of record.
func (m *Main) openAudit(ctx context.Context) error {
	js := m.store.JetStream()
	replicas := m.natsReplicas()
	var err error
	if m.keys, err = casekeys.Open(ctx, js, casekeys.WithReplicas(replicas), casekeys.WithLogger(m.log)); err != nil {
		return fmt.Errorf("personal-data keys: %w", err)
	}
	if m.accessLog, err = accesslog.Open(ctx, js, accesslog.WithReplicas(replicas), accesslog.WithLogger(m.log), accesslog.WithPersonalData(m.keys)); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	m.feedAccessLog = m.accessLog
	if m.heads, err = checkpoints.OpenHeads(ctx, js, checkpoints.WithReplicas(replicas)); err != nil {
		return fmt.Errorf("signed heads: %w", err)
	}
	key, err := m.signingKey()
	if err != nil {
		return err
	}
	if err := m.startStorageGuard(); err != nil {
		return err
	}
	if err := m.registerFaultMetrics(); err != nil {
		return err
	}
	raw := m.storageGuarded(m.events)
	signerOpts := []checkpoints.SignerOption{checkpoints.WithEvery(m.SignEvery), checkpoints.WithLogger(m.log.With("component", "head-signer"))}
	if m.metrics != nil {
		signerOpts = append(signerOpts, checkpoints.WithRegisterer(m.metrics))
	}
	if m.signer, err = checkpoints.NewSigner(raw, m.heads, key, signerOpts...); err != nil {
		return err
	}
	// Appends go through the signer's guard: a case the store lost signed
	// events of is read-only (faults.go).
	if err := m.signer.Load(ctx); err != nil {
		return fmt.Errorf("signed heads: %w", err)
	}
	m.events = personal.NewStore(m.signer.Guard(raw), m.keys)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var running sync.WaitGroup
	running.Go(func() {
		if err := m.signer.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			m.log.Error("head signer stopped", "err", err)
		}
	})
	// The access log is sealed with the same key, as often: what was
	// recorded until the end is sealed when the server stops.
	running.Go(func() { m.accessLog.RunSealer(runCtx, key, m.SignEvery, m.log.With("component", "access-sealer")) })
	m.stopSigner = func() { cancel(); running.Wait() }
	m.log.Info("chain heads and the access log signed", "key_id", audit.KeyID(m.signer.PublicKey()), "every", m.SignEvery)
	return nil
}

// caseOptions are the case service's options for personal data: keys, and
// an erasure that also clears the partner feeds (the relay starts after the
// service, hence the indirection).
func (m *Main) caseOptions() []cases.Option {
	if m.keys == nil {
		return nil
	}
	return []cases.Option{cases.WithPersonalData(m.keys), cases.WithOnErase(func(ctx context.Context, id domain.CaseID) error {
		if m.relay == nil {
			return nil
		}
		return m.relay.Erase(ctx, id)
	})}
}

// auditHTTP gives the API the access log and the signed heads.
func (m *Main) auditHTTP() mhttp.Option {
	opts := []mhttp.Option{mhttp.WithAccessLog(m.accessLog)}
	if m.signer != nil {
		opts = append(opts, mhttp.WithSignedHeads(m.heads, m.signer.PublicKey()))
	}
	return func(h *mhttp.Handler) {
		for _, o := range opts {
			o(h)
		}
	}
}

// readsOptions give the reads service the read models, the access log and
// the signed heads.
func (m *Main) readsOptions() []reads.Option {
	opts := []reads.Option{reads.WithReadModels(m.readModel), reads.WithAccessLog(m.recordingAccessLog())}
	if m.signer != nil {
		opts = append(opts, reads.WithSignedHeads(m.heads))
	}
	return opts
}

// closeAudit stops the signer and the access log's sealer (each signs
// what changed first) and the key watcher.
func (m *Main) closeAudit() error {
	if m.stopSigner != nil {
		m.stopSigner()
		m.stopSigner = nil
	}
	m.closeStorage()
	var err error
	if m.keys != nil {
		err = m.keys.Close()
		m.keys = nil
	}
	return err
}

// unlockDataDir releases the data directory, once everything is closed.
func (m *Main) unlockDataDir() {
	if m.dataLock != nil {
		m.dataLock.Close()
		m.dataLock = nil
	}
}

// signingKey reads the signing key, or makes one in the data directory on
// first start (with its public key next to it, signing.pub).
func (m *Main) signingKey() (ed25519.PrivateKey, error) {
	if m.SigningKey != "" {
		return readSigningKey(m.SigningKey)
	}
	path := filepath.Join(m.DataDir, "signing.key")
	if _, err := os.Stat(path); err == nil {
		return readSigningKey(path)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privPEM, err := audit.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	pubPEM, err := audit.MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := f.Write(privPEM); err != nil {
		f.Close()
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.DataDir, "signing.pub"), pubPEM, 0o644); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	m.log.Info("signing key made", "path", path, "key_id", audit.KeyID(pub))
	return key, nil
}

func readSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w (give an ed25519 key in PEM with --signing-key)", err)
	}
	return audit.ParsePrivateKey(b)
}

// Signer is the head signer of a running server (tests wait on it).
func (m *Main) Signer() *checkpoints.Signer { return m.signer }

var _ domain.AccessLog = (*accesslog.Log)(nil)
