// Package checkpoints keeps the signed chain heads of the cases
// (audit.SignedHead) in a JetStream stream, and runs the Signer that
// follows the event store, checks every case's chain as it grows and
// periodically signs the heads of the cases that changed.
//
// Stream MAILLAGE_HEADS: file storage, deletes and purges denied, nothing
// expires. One message per signed head, its JSON, on
// maillage.heads.<case id>; the stream keeps every head ever signed, the
// last of a subject being the case's latest.
package checkpoints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

// Defaults.
const (
	DefaultStream = "MAILLAGE_HEADS"
	DefaultPrefix = "maillage.heads"
)

// Heads is the stream of signed heads. Safe for concurrent use.
type Heads struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string
	prefix string
}

// HeadsOption configures OpenHeads.
type HeadsOption func(*headsConfig) error

type headsConfig struct {
	stream, prefix string
	replicas       int
}

// WithStream sets the stream name and subject prefix (defaults
// MAILLAGE_HEADS and maillage.heads).
func WithStream(name, prefix string) HeadsOption {
	return func(c *headsConfig) error {
		if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") || prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") {
			return fmt.Errorf("checkpoints: WithStream: invalid name %q or prefix %q", name, prefix)
		}
		c.stream, c.prefix = name, prefix
		return nil
	}
}

// WithReplicas sets the stream's replicas (1 to 5; default 1).
func WithReplicas(n int) HeadsOption {
	return func(c *headsConfig) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("checkpoints: WithReplicas: %d, want 1 to 5", n)
		}
		c.replicas = n
		return nil
	}
}

// OpenHeads creates or updates the stream on js's server.
func OpenHeads(ctx context.Context, js jetstream.JetStream, opts ...HeadsOption) (*Heads, error) {
	cfg := headsConfig{stream: DefaultStream, prefix: DefaultPrefix, replicas: 1}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	s, err := settle.CreateOrUpdateStream(ctx, js, jetstream.StreamConfig{
		Name:        cfg.stream,
		Description: "maillage signed chain heads: one message per signed head, one subject per case",
		Subjects:    []string{cfg.prefix + ".*"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.replicas,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardNew,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: cfg.replicas == 1,
	})
	if err != nil {
		return nil, unavailable("create stream", err)
	}
	return &Heads{js: js, stream: s, name: cfg.stream, prefix: cfg.prefix}, nil
}

func (h *Heads) subject(id domain.CaseID) string { return h.prefix + "." + id.String() }

// Publish stores a signed head, durably.
func (h *Heads) Publish(ctx context.Context, head audit.SignedHead) error {
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	if _, err := h.js.Publish(ctx, h.subject(head.CaseID), b); err != nil {
		return unavailable("publish", err)
	}
	return nil
}

// Latest returns the case's latest signed head, false when none was signed.
func (h *Heads) Latest(ctx context.Context, id domain.CaseID) (audit.SignedHead, bool, error) {
	m, err := h.stream.GetLastMsgForSubject(ctx, h.subject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return audit.SignedHead{}, false, nil
	}
	if err != nil {
		return audit.SignedHead{}, false, unavailable("read", err)
	}
	var head audit.SignedHead
	if err := json.Unmarshal(m.Data, &head); err != nil {
		return audit.SignedHead{}, false, fmt.Errorf("checkpoints: message %d: %w", m.Sequence, err)
	}
	return head, true, nil
}

// All returns every signed head of every case (with lastOnly, each case's
// latest only), in the order they were signed. A message that does not
// decode is an error: the stream is below the application too.
func (h *Heads) All(ctx context.Context, lastOnly bool) ([]audit.SignedHead, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{h.prefix + ".*"}}
	if lastOnly {
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	}
	var out []audit.SignedHead
	var bad error
	err := streamread.Read(ctx, h.js, h.name, cfg, func(m jetstream.Msg) error {
		var head audit.SignedHead
		if err := json.Unmarshal(m.Data(), &head); err != nil || head.CaseID == uuid.Nil || h.subject(head.CaseID) != m.Subject() {
			bad = fmt.Errorf("checkpoints: signed head on %s does not decode or names another case", m.Subject())
			return bad
		}
		out = append(out, head)
		return nil
	})
	switch {
	case bad != nil:
		return nil, bad
	case err != nil:
		return nil, unavailable("read", err)
	}
	return out, nil
}

func unavailable(op string, err error) error {
	return fmt.Errorf("checkpoints: %s: %w: %w", op, domain.ErrStoreUnavailable, err)
}
