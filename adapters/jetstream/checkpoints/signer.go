package checkpoints

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

// Signer follows the event store from the start, checks each case's chain
// link by link (and against the case's latest signed head when it reaches
// its version), and every period signs the heads of the cases whose chain
// moved since their last signed head. A case whose chain breaks is logged,
// counted and never signed again by this process: a signature vouches only
// for chains it verified from their first event.
//
// Following from the start at every start re-verifies the whole store then;
// measured about 100k events/s here, so a start with a million events is
// checked in about ten seconds, in the background.
type Signer struct {
	store domain.EventStore
	heads *Heads
	key   ed25519.PrivateKey
	cfg   signerConfig

	mu       sync.Mutex
	chains   map[domain.CaseID]*chainState
	dirty    map[domain.CaseID]struct{}
	done     domain.Position // every event up to it was checked
	changed  chan struct{}   // closed and replaced when done moves
	loaded   bool            // the latest signed heads are in chains
	caughtUp bool            // every event the store held at start was checked: see damage.go

	signed prometheus.Counter
	broken prometheus.Gauge
}

// chainState is what the signer knows of a case.
type chainState struct {
	version uint64
	head    domain.Hash
	signed  *audit.SignedHead // latest signed head, if any
	broken  *audit.Break
}

// SignerOption configures NewSigner.
type SignerOption func(*signerConfig) error

type signerConfig struct {
	every      time.Duration
	now        func() time.Time
	log        *slog.Logger
	registerer prometheus.Registerer
}

// WithEvery sets the signing period (default one minute).
func WithEvery(d time.Duration) SignerOption {
	return func(c *signerConfig) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("checkpoints: WithEvery: %s, want at least 10ms", d)
		}
		c.every = d
		return nil
	}
}

// WithClock sets the clock heads are signed at.
func WithClock(now func() time.Time) SignerOption {
	return func(c *signerConfig) error {
		if now == nil {
			return errors.New("checkpoints: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) SignerOption {
	return func(c *signerConfig) error {
		if l == nil {
			return errors.New("checkpoints: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithRegisterer registers the signer's metrics with r:
// maillage_audit_signed_heads_total and maillage_audit_broken_chains (cases
// whose chain the signer found broken since it started). No label.
func WithRegisterer(r prometheus.Registerer) SignerOption {
	return func(c *signerConfig) error {
		if r == nil {
			return errors.New("checkpoints: WithRegisterer: nil registerer")
		}
		c.registerer = r
		return nil
	}
}

// NewSigner returns a signer of the chains of store's cases into heads,
// with key.
func NewSigner(store domain.EventStore, heads *Heads, key ed25519.PrivateKey, opts ...SignerOption) (*Signer, error) {
	cfg := signerConfig{every: time.Minute, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if store == nil || heads == nil || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoints: NewSigner: nil store or heads, or not an ed25519 key")
	}
	s := &Signer{store: store, heads: heads, key: key, cfg: cfg, chains: map[domain.CaseID]*chainState{},
		dirty: map[domain.CaseID]struct{}{}, changed: make(chan struct{}),
		signed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "maillage", Subsystem: "audit", Name: "signed_heads_total",
			Help: "Chain heads signed (one per case that changed, per signing round)."}),
		broken: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "maillage", Subsystem: "audit", Name: "broken_chains",
			Help: "Cases whose hash chain the signer found broken (or contradicting a signed head) since it started: investigate with maillage audit verify."}),
	}
	if cfg.registerer != nil {
		for _, c := range []prometheus.Collector{s.signed, s.broken} {
			if err := cfg.registerer.Register(c); err != nil {
				return nil, fmt.Errorf("checkpoints: %w", err)
			}
		}
	}
	return s, nil
}

// PublicKey is the key partners check signed heads with.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Run loads the latest signed heads, then follows the store and signs
// every period until ctx ends; it signs once more then, with a short
// deadline, and returns ctx's error. When following the store fails, it
// tries again every few seconds from where it was; when the latest signed
// heads cannot be read, it returns the error.
func (s *Signer) Run(ctx context.Context) error {
	if err := s.Load(ctx); err != nil {
		return err
	}
	followed := make(chan error, 1)
	follow := func() {
		s.mu.Lock()
		from := s.done
		s.mu.Unlock()
		go func() {
			// What the store holds now first, to the end, so that the
			// cases behind their signed head are known (damage.go).
			if err := s.catchUp(ctx, from); err != nil {
				followed <- err
				return
			}
			s.mu.Lock()
			from = s.done
			s.mu.Unlock()
			followed <- s.store.Follow(ctx, from, s.check)
		}()
	}
	follow()
	tick := time.NewTicker(s.cfg.every)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-tick.C:
			if err := s.SignNow(ctx); err != nil && ctx.Err() == nil {
				s.cfg.log.Warn("signing chain heads failed; trying again at the next round", "err", err)
			}
		case <-retry:
			retry = nil
			follow()
		case err := <-followed:
			if ctx.Err() == nil {
				s.cfg.log.Warn("following the event store failed; trying again", "err", err, "after", retryAfter)
				retry = time.After(retryAfter)
				continue
			}
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.SignNow(final); err != nil {
				s.cfg.log.Warn("signing chain heads at shutdown failed", "err", err)
			}
			cancel()
			return ctx.Err()
		}
	}
}

// retryAfter is how long the signer waits to follow the store again.
const retryAfter = 3 * time.Second

// check verifies the next event of a case (Follow's handler).
func (s *Signer) check(e domain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.chains[e.CaseID]
	if !ok {
		c = &chainState{head: domain.Genesis(e.CaseID)}
		s.chains[e.CaseID] = c
	}
	if c.broken == nil {
		link := c.version + 1
		var b *audit.Break
		switch leaf := domain.Leaf(e); {
		case e.Sequence != link:
			b = &audit.Break{Field: audit.BreakSequence, Expected: strconv.FormatUint(link, 10), Found: strconv.FormatUint(e.Sequence, 10)}
		case leaf != e.LeafHash:
			b = &audit.Break{Field: audit.BreakLeaf, Expected: leaf.String(), Found: e.LeafHash.String()}
		case domain.Chain(c.head, leaf) != e.ChainHash:
			b = &audit.Break{Field: audit.BreakChain, Expected: domain.Chain(c.head, leaf).String(), Found: e.ChainHash.String()}
		case c.signed != nil && c.signed.Version == link && c.signed.ChainHash != e.ChainHash:
			b = &audit.Break{Field: audit.BreakSignedHead, Expected: c.signed.ChainHash.String(), Found: e.ChainHash.String()}
		}
		if b != nil {
			b.CaseID, b.Sequence, b.Position = e.CaseID, link, e.Position
			c.broken = b
			delete(s.dirty, e.CaseID)
			s.broken.Inc()
			// The case id stays out of the log (it is what maillage audit
			// verify names): logs leave the server more easily than its data.
			s.cfg.log.Error("hash chain broken: the case is no longer signed; run maillage audit verify",
				"link", b.Sequence, "field", b.Field, "position", uint64(b.Position))
		} else {
			c.version, c.head = link, e.ChainHash
			if c.signed == nil || c.signed.Version < link {
				s.dirty[e.CaseID] = struct{}{}
			}
		}
	}
	s.done = e.Position
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// WaitFor waits until every event up to position p was checked, or ctx
// ends.
func (s *Signer) WaitFor(ctx context.Context, p domain.Position) error {
	for {
		s.mu.Lock()
		done, changed := s.done, s.changed
		s.mu.Unlock()
		if done >= p {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Broken returns the breaks found so far, one per broken case.
func (s *Signer) Broken() []audit.Break {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Break
	for _, c := range s.chains {
		if c.broken != nil {
			out = append(out, *c.broken)
		}
	}
	return out
}

// SignNow signs the heads of the cases that moved since their last signed
// head. Those it could not publish are signed at the next round.
func (s *Signer) SignNow(ctx context.Context) error {
	s.mu.Lock()
	todo := make([]audit.SignedHead, 0, len(s.dirty))
	now := s.cfg.now()
	for id := range s.dirty {
		c := s.chains[id]
		todo = append(todo, audit.Sign(s.key, audit.SignedHead{CaseID: id, Version: c.version, ChainHash: c.head, SignedAt: now}))
	}
	clear(s.dirty)
	s.mu.Unlock()
	for i, h := range todo {
		if err := s.heads.Publish(ctx, h); err != nil {
			s.mu.Lock()
			for _, left := range todo[i:] { // sign them at the next round
				s.dirty[left.CaseID] = struct{}{}
			}
			s.mu.Unlock()
			return err
		}
		s.mu.Lock()
		if c := s.chains[h.CaseID]; c.signed == nil || c.signed.Version < h.Version {
			c.signed = &todo[i]
		}
		s.mu.Unlock()
		s.signed.Inc()
	}
	return nil
}
