package feeds

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// Dial connects a partner system to the feed server at url with the NATS
// credentials file at credsPath (issued by Authority.PartnerCredentials),
// using the institution's own inbox prefix. It returns the connection and
// the institution the credentials were issued to.
func Dial(url, credsPath string, opts ...nats.Option) (*nats.Conn, domain.InstitutionID, error) {
	creds, err := os.ReadFile(credsPath)
	if err != nil {
		return nil, "", fmt.Errorf("feeds: credentials: %w", err)
	}
	inst, err := CredentialsInstitution(creds)
	if err != nil {
		return nil, "", err
	}
	opts = append([]nats.Option{nats.Name("maillage-feed-" + Token(inst)), nats.UserCredentials(credsPath),
		nats.CustomInboxPrefix(Inbox(inst)), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("feeds: connect to %s: %w", url, err)
	}
	return nc, inst, nil
}

// Delivery is one feed message as the reference subscriber received and
// checked it.
type Delivery struct {
	Message
	StreamSeq   uint64 // the message's sequence in the feed stream
	Redelivered bool   // delivered again because an earlier delivery was not acknowledged
	Pending     uint64 // messages left in the feed after this one (0: caught up)

	// Verified is the sequence up to which the case's hash chain verifies,
	// from its first event, and Head the chain hash there.
	Verified uint64
	Head     domain.Hash
	// Missing lists sequences below the highest received that have not
	// arrived yet (a retract notice fills the place of an event the feed
	// no longer holds); the chain is verified up to the first of them.
	Missing []uint64
	// Duplicate is set when this first delivery of a sequence was already
	// received.
	Duplicate bool
	// Break is set when this message does not verify: a
	// *domain.ChainBreak, or ErrBadMessage.
	Break error
}

// ErrNoFeed: the institution's feed does not exist yet (the relay creates it
// with the institution's first case).
var ErrNoFeed = errors.New("feeds: no feed yet for this institution")

// Tail is the reference subscriber of a partner feed: it reads the
// institution's durable consumer, so that it resumes where it stopped, and
// verifies each case's hash chain as messages arrive.
type Tail struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	inst   domain.InstitutionID
	chains map[domain.CaseID]*caseChain
}

// NewTail returns a subscriber of inst's feed over nc (see Dial).
func NewTail(nc *nats.Conn, inst domain.InstitutionID) (*Tail, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	return &Tail{nc: nc, js: js, inst: inst, chains: map[domain.CaseID]*caseChain{}}, nil
}

// Run calls handle for each message of the feed, in order, and acknowledges
// it once handle returned nil, until ctx ends (nil) or handle fails (its
// error). ErrNoFeed when the feed does not exist yet.
func (t *Tail) Run(ctx context.Context, handle func(Delivery) error) error {
	cons, err := t.js.Consumer(ctx, StreamName(t.inst), PartnerConsumer)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ErrNoFeed
	}
	if err != nil {
		return fmt.Errorf("feeds: feed of %s: %w", t.inst, err)
	}
	// Pull requests that expire every 10 s (heartbeats every 5 s): a pull
	// lost on the way (a reconnection, a busy server) is noticed and
	// replaced within 10 s rather than the default 30 s.
	it, err := cons.Messages(jetstream.PullMaxMessages(256), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return fmt.Errorf("feeds: feed of %s: %w", t.inst, err)
	}
	defer it.Stop()
	unhook := context.AfterFunc(ctx, it.Stop)
	defer unhook()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
			// A slow link or a busy server: the iterator has already asked
			// again for messages, so the subscriber carries on.
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("feeds: feed of %s: %w", t.inst, err)
		}
		d := t.check(ctx, m)
		if err := handle(d); err != nil {
			return err
		}
		if err := m.DoubleAck(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("feeds: acknowledge: %w", err)
		}
	}
}

// check reads and verifies one message.
func (t *Tail) check(ctx context.Context, m jetstream.Msg) Delivery {
	var d Delivery
	meta, err := m.Metadata()
	if err != nil {
		d.Break = fmt.Errorf("%w: %w", ErrBadMessage, err)
		return d
	}
	d.StreamSeq, d.Redelivered, d.Pending = meta.Sequence.Stream, meta.NumDelivered > 1, meta.NumPending
	if d.Message, err = ParseMessage(m.Headers(), m.Data()); err != nil {
		d.Break = err
		return d
	}
	if m.Subject() != Subject(t.inst, d.CaseID) {
		d.Break = fmt.Errorf("%w: case %s on subject %s", ErrBadMessage, d.CaseID, m.Subject())
		return d
	}
	if d.Kind == KindErase {
		// The case's personal data was erased: the feed holds nothing else
		// of it, and the partner deletes what it kept. Its chain is not
		// followed any more.
		delete(t.chains, d.CaseID)
		return d
	}
	c, ok := t.chains[d.CaseID]
	if !ok {
		// First message of this case since the subscriber started: check
		// what came before it (messages acknowledged in an earlier run).
		c = newCaseChain(d.CaseID)
		t.chains[d.CaseID] = c
		if err := t.replay(ctx, c, d.StreamSeq); err != nil {
			d.Break = err
		}
	}
	dup, err := c.add(d.Message)
	if d.Break == nil {
		d.Break = err
	}
	d.Duplicate = dup
	d.Verified, d.Head, d.Missing = c.verifier.Last, c.verifier.Head, c.missing()
	return d
}

// replay folds into c the case's messages before stream sequence before.
func (t *Tail) replay(ctx context.Context, c *caseChain, before uint64) error {
	if before <= 1 {
		return nil
	}
	var first error
	err := readSubject(ctx, t.nc, StreamName(t.inst), Subject(t.inst, c.verifier.CaseID), 1, before-1, func(_ uint64, m *nats.Msg) error {
		msg, err := ParseMessage(m.Header, m.Data)
		if err == nil {
			_, err = c.add(msg)
		}
		if first == nil {
			first = err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return first
}

// caseChain verifies one case's hash chain from feed messages, which may
// come out of sequence order where the feed no longer holds an event and a
// later retract notice stands in for it.
type caseChain struct {
	verifier *domain.ChainVerifier
	links    []link          // verified, links[k-1] for sequence k
	pending  map[uint64]link // received beyond the verified head
}

type link struct {
	leaf, chain domain.Hash
	event       *domain.Event // the full event, when the view shows it
}

func newCaseChain(id domain.CaseID) *caseChain {
	return &caseChain{verifier: domain.NewChainVerifier(id), pending: map[uint64]link{}}
}

// add checks a message against what is known of its sequence and extends
// the verified chain as far as received links allow. duplicate reports a
// first delivery of a sequence already received.
func (c *caseChain) add(m Message) (duplicate bool, err error) {
	v := m.View
	l := link{leaf: v.LeafHash, chain: v.ChainHash}
	if ev, ok := fullEvent(v); ok {
		if leaf := domain.Leaf(ev); leaf != v.LeafHash {
			return false, &domain.ChainBreak{CaseID: c.verifier.CaseID, Sequence: v.Sequence, Field: "leafHash", Expected: leaf.String(), Found: v.LeafHash.String()}
		}
		l.event = &ev
	}
	k := m.Sequence
	known, seen := link{}, false
	if k <= c.verifier.Last {
		known, seen = c.links[k-1], true
	} else if p, ok := c.pending[k]; ok {
		known, seen = p, true
	}
	if seen {
		if known.leaf != l.leaf {
			return false, &domain.ChainBreak{CaseID: c.verifier.CaseID, Sequence: k, Field: "leafHash", Expected: known.leaf.String(), Found: l.leaf.String()}
		}
		if known.chain != l.chain {
			return false, &domain.ChainBreak{CaseID: c.verifier.CaseID, Sequence: k, Field: "chainHash", Expected: known.chain.String(), Found: l.chain.String()}
		}
		return m.Kind == KindEvent, nil
	}
	c.pending[k] = l
	for {
		next, ok := c.pending[c.verifier.Last+1]
		if !ok {
			return false, nil
		}
		delete(c.pending, c.verifier.Last+1)
		var err error
		if next.event != nil {
			err = c.verifier.Event(*next.event)
		} else {
			err = c.verifier.Link(c.verifier.Last+1, next.leaf, next.chain)
		}
		if err != nil {
			return false, err
		}
		next.event = nil // keep hashes only
		c.links = append(c.links, next)
	}
}

// missing lists the sequences not received below the highest received.
func (c *caseChain) missing() []uint64 {
	if len(c.pending) == 0 {
		return nil
	}
	highest := uint64(0)
	for k := range c.pending {
		highest = max(highest, k)
	}
	var out []uint64
	for k := c.verifier.Last + 1; k < highest; k++ {
		if _, ok := c.pending[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
