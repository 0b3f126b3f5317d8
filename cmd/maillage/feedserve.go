package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

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
}

// openFeeds starts the feed server and the relay.
func (m *Main) openFeeds() error {
	if !m.Feeds {
		if m.PartnerListen != "" {
			return errors.New("--partner-listen demande les flux partenaires (--feeds=true)")
		}
		return nil
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
	var err error
	if m.feedServer, err = feeds.StartServer(context.Background(), filepath.Join(m.DataDir, "feeds"), opts...); err != nil {
		return fmt.Errorf("partner feeds: %w", err)
	}
	relayOpts := []feeds.Option{feeds.WithLogger(m.log.With("component", "feed-relay"))}
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
	if url := m.feedServer.ClientURL(); url != "" {
		m.log.Info("partner feeds listening", "url", url)
	}
	return nil
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
