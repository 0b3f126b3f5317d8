package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
)

// feedConfig is the part of Main that runs the partner feeds: the feed
// server (embedded NATS with partner credentials, files under
// <data>/feeds) and the relay from the event store of record to it.
type feedConfig struct {
	// Feeds runs the relay and the feed server (default true).
	Feeds bool
	// PartnerListen is the address partner systems connect to ("": none).
	PartnerListen string
	// PartnerTLSCert and PartnerTLSKey, both or neither, require TLS on it.
	PartnerTLSCert, PartnerTLSKey string
	// FeedsNATS, comma-separated URLs of a NATS cluster that trusts the
	// authority under <data>/feeds, puts the feeds on that cluster instead
	// of the embedded feed server ("": embedded).
	FeedsNATS string
	// RevocationRefresh is how often, with FeedsNATS, the partners'
	// revocations are pushed to the cluster's nodes again (0: only at start
	// and when authority.json changes); see feeds.WithRevocationRefresh.
	RevocationRefresh time.Duration

	// feedAccessLog, when set before Open, records every feed delivery.
	feedAccessLog domain.AccessLog

	feedServer *feeds.Server
	relay      *feeds.Relay
}

// feedFlags adds serve's flags for the partner feeds.
func (m *Main) feedFlags(fs *flag.FlagSet) {
	m.Feeds = env("MAILLAGE_FEEDS", "true") != "false"
	fs.BoolVar(&m.Feeds, "feeds", m.Feeds, "relay every event to the partner feeds (NATS, one per institution) (env MAILLAGE_FEEDS)")
	fs.StringVar(&m.PartnerListen, "partner-listen", env("MAILLAGE_PARTNER_LISTEN", m.PartnerListen), "address partner systems connect to for their feeds, e.g. :4223; empty: none (env MAILLAGE_PARTNER_LISTEN)")
	fs.StringVar(&m.PartnerTLSCert, "partner-tls-cert", env("MAILLAGE_PARTNER_TLS_CERT", m.PartnerTLSCert), "certificate (PEM) for TLS on --partner-listen (env MAILLAGE_PARTNER_TLS_CERT)")
	fs.StringVar(&m.PartnerTLSKey, "partner-tls-key", env("MAILLAGE_PARTNER_TLS_KEY", m.PartnerTLSKey), "its private key (PEM) (env MAILLAGE_PARTNER_TLS_KEY)")
	fs.StringVar(&m.FeedsNATS, "feeds-nats", env("MAILLAGE_FEEDS_NATS", m.FeedsNATS), "NATS cluster URL(s), comma-separated, for the partner feeds instead of the embedded feed server; the cluster trusts the authority of <data>/feeds (maillage partner cluster-config); feeds R3 with 3 URLs or more (env MAILLAGE_FEEDS_NATS)")
	m.RevocationRefresh = feeds.DefaultRevocationRefresh
	fs.DurationVar(&m.RevocationRefresh, "feeds-revocation-refresh", m.RevocationRefresh, "with --feeds-nats: how often the partners' revocations are pushed to the cluster's nodes again, which closes any revoked connection a node let in while restarting (0: only at start and when they change)")
}

// openFeeds starts the feed server (or connects to the feeds' NATS
// cluster) and the relay.
func (m *Main) openFeeds() error {
	if !m.Feeds {
		if m.PartnerListen != "" {
			return errors.New("--partner-listen demande les flux partenaires (--feeds=true)")
		}
		if m.FeedsNATS != "" {
			return errors.New("--feeds-nats demande les flux partenaires (--feeds=true)")
		}
		return nil
	}
	if m.FeedsNATS != "" {
		if m.PartnerListen != "" || m.PartnerTLSCert != "" || m.PartnerTLSKey != "" {
			return errors.New("--partner-listen et --partner-tls-* ne s'emploient pas avec --feeds-nats : les partenaires se connectent au cluster NATS des flux")
		}
		if m.RevocationRefresh != 0 && m.RevocationRefresh < time.Second {
			return fmt.Errorf("--feeds-revocation-refresh %s : donnez au moins 1s, ou 0 pour ne pousser les révocations aux nœuds qu'au démarrage et lorsqu'elles changent", m.RevocationRefresh)
		}
		return m.startRelay(feeds.ConnectCluster(context.Background(), filepath.Join(m.DataDir, "feeds"), m.FeedsNATS,
			feeds.WithServerLogger(m.log), feeds.WithRevocationRefresh(m.RevocationRefresh)))
	}
	opts := []feeds.ServerOption{feeds.WithServerLogger(m.log)}
	if m.PartnerListen != "" {
		opts = append(opts, feeds.WithPartnerListen(m.PartnerListen))
	}
	if m.PartnerTLSCert != "" || m.PartnerTLSKey != "" {
		if m.PartnerTLSCert == "" || m.PartnerTLSKey == "" || m.PartnerListen == "" {
			return errors.New("TLS des flux partenaires : donner --partner-tls-cert et --partner-tls-key, avec --partner-listen")
		}
		cert, err := tls.LoadX509KeyPair(m.PartnerTLSCert, m.PartnerTLSKey)
		if err != nil {
			return fmt.Errorf("TLS des flux partenaires : %w", err)
		}
		opts = append(opts, feeds.WithPartnerTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	return m.startRelay(feeds.StartServer(context.Background(), filepath.Join(m.DataDir, "feeds"), opts...))
}

// startRelay starts the relay on the feed server srv (embedded, or the
// cluster's), unless opening it failed.
func (m *Main) startRelay(srv *feeds.Server, err error) error {
	if err != nil {
		return fmt.Errorf("partner feeds: %w", err)
	}
	m.feedServer = srv
	relayOpts := []feeds.Option{feeds.WithLogger(m.log.With("component", "feed-relay")), feeds.WithReplicas(m.feedReplicas())}
	if m.metrics != nil {
		relayOpts = append(relayOpts, feeds.WithRegisterer(m.metrics))
	}
	if m.feedAccessLog != nil {
		relayOpts = append(relayOpts, feeds.WithAccessLog(m.feedAccessLog))
	}
	if m.relay, err = feeds.NewRelay(m.events, m.feedServer.Conn(), relayOpts...); err != nil {
		return fmt.Errorf("partner feeds: %w", err)
	}
	m.relay.Start()
	switch url := m.feedServer.ClientURL(); {
	case m.FeedsNATS != "":
		m.log.Info("partner feeds on a NATS cluster", "servers", len(strings.Split(m.FeedsNATS, ",")), "replicas", m.feedReplicas())
	case url != "":
		m.log.Info("partner feeds listening", "url", url)
	}
	return nil
}

// feedReplicas is the number of replicas of the feed streams and of the
// relay's checkpoint: 3 on a cluster of three nodes or more (--feeds-nats),
// else 1.
func (m *Main) feedReplicas() int {
	if m.FeedsNATS != "" && len(strings.Split(m.FeedsNATS, ",")) >= 3 {
		return 3
	}
	return 1
}

// closeFeeds stops the relay (it saves its position), then the feed server.
func (m *Main) closeFeeds() error {
	var errs []error
	if m.relay != nil {
		if err := m.relay.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("feed relay: %w", err))
		}
		m.relay = nil
	}
	if m.feedServer != nil {
		if err := m.feedServer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("feed server: %w", err))
		}
		m.feedServer = nil
	}
	return errors.Join(errs...)
}

// PartnerURL is the URL partner systems connect to, "" when none.
func (m *Main) PartnerURL() string {
	if m.feedServer == nil {
		return ""
	}
	return m.feedServer.ClientURL()
}
