package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/kurrentdb"
	"github.com/maillage/maillage/domain"
)

// The event stores of record serve can use. Partner feeds are on NATS
// whatever the store.
const (
	storeNATS      = "nats"
	storeKurrentDB = "kurrentdb"
)

// storeConfig is the part of Main that chooses the event store and how NATS
// replicates its streams.
type storeConfig struct {
	// Store is the store of record: storeNATS (JetStream, embedded or at
	// NatsURL) or storeKurrentDB (at KurrentDBURL).
	Store        string
	KurrentDBURL string
	// NatsReplicas is the number of replicas of the NATS streams; 0 picks 3
	// when NatsURL names three servers or more, else 1.
	NatsReplicas int

	envErr  error             // a bad MAILLAGE_NATS_REPLICAS
	events  domain.EventStore // the store of record: Main.store, or kurrent
	kurrent *kurrentdb.Store
}

// storeFlags adds serve's flags choosing the event store.
func (m *Main) storeFlags(fs *flag.FlagSet) {
	if m.Store == "" {
		m.Store = storeNATS
	}
	if v, ok := os.LookupEnv("MAILLAGE_NATS_REPLICAS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			m.envErr = fmt.Errorf("MAILLAGE_NATS_REPLICAS=%q: not a number", v)
		}
		m.NatsReplicas = n
	}
	fs.StringVar(&m.Store, "store", env("MAILLAGE_STORE", m.Store), "event store of record: nats (JetStream: embedded, or the cluster of --nats) or kurrentdb (at --kurrentdb); partner feeds stay on NATS (env MAILLAGE_STORE)")
	fs.StringVar(&m.KurrentDBURL, "kurrentdb", env("MAILLAGE_KURRENTDB", m.KurrentDBURL), "KurrentDB connection string for --store kurrentdb, e.g. esdb://kurrentdb:2113?tls=false, or esdb://user:password@a:2113,b:2113,c:2113 with TLS (env MAILLAGE_KURRENTDB)")
	fs.IntVar(&m.NatsReplicas, "nats-replicas", m.NatsReplicas, "replicas of the NATS streams, 1 to 5; 0 picks 3 when --nats names three servers or more, else 1 (env MAILLAGE_NATS_REPLICAS)")
}

// checkStoreFlags refuses inconsistent choices, in the CLI's language.
func (m *Main) checkStoreFlags() error {
	switch {
	case m.envErr != nil:
		return m.envErr
	case m.Store != storeNATS && m.Store != storeKurrentDB:
		return fmt.Errorf("--store %q : choisir nats ou kurrentdb", m.Store)
	case m.Store == storeKurrentDB && m.KurrentDBURL == "":
		return errors.New("--store kurrentdb demande --kurrentdb esdb://hôte:2113 (ou MAILLAGE_KURRENTDB)")
	case m.Store != storeKurrentDB && m.KurrentDBURL != "":
		return errors.New("--kurrentdb n'est utilisé qu'avec --store kurrentdb")
	case m.NatsReplicas < 0 || m.NatsReplicas > 5:
		return fmt.Errorf("--nats-replicas %d : entre 1 et 5 (0 : automatique)", m.NatsReplicas)
	case m.NatsReplicas > 1 && m.NatsURL == "":
		return fmt.Errorf("--nats-replicas %d demande un cluster NATS (--nats) : le serveur NATS embarqué n'a qu'un nœud", m.NatsReplicas)
	}
	return nil
}

// natsReplicas is the number of replicas of the NATS streams.
func (m *Main) natsReplicas() int {
	if m.NatsReplicas > 0 {
		return m.NatsReplicas
	}
	if m.NatsURL != "" && len(strings.Split(m.NatsURL, ",")) >= 3 {
		return 3
	}
	return 1
}

// natsOptions configures the NATS connection (and the JetStream event
// store): embedded under the data directory, or the external server or
// cluster with replicated streams.
func (m *Main) natsOptions() []jetstream.Option {
	opts := []jetstream.Option{jetstream.WithLogger(m.log)}
	if m.NatsURL == "" {
		return append(opts, jetstream.WithEmbedded(filepath.Join(m.DataDir, "jetstream")))
	}
	return append(opts, jetstream.WithURL(m.NatsURL), jetstream.WithReplicas(m.natsReplicas()))
}

// openEvents returns the store of record: the JetStream store already open
// on NATS, or KurrentDB.
func (m *Main) openEvents(ctx context.Context) (domain.EventStore, error) {
	if m.Store != storeKurrentDB {
		return m.store, nil
	}
	s, err := kurrentdb.Open(ctx, kurrentdb.WithURL(m.KurrentDBURL), kurrentdb.WithLogger(m.log))
	if err != nil {
		return nil, fmt.Errorf("event store (KurrentDB): %w", err)
	}
	m.kurrent = s
	return s, nil
}

// closeKurrentDB closes the KurrentDB store, if serve opened one.
func (m *Main) closeKurrentDB() error {
	if m.kurrent == nil {
		return nil
	}
	err := m.kurrent.Close()
	m.kurrent = nil
	if err != nil {
		return fmt.Errorf("event store (KurrentDB): %w", err)
	}
	return nil
}
