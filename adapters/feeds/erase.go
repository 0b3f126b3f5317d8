package feeds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// Erase removes a case from every partner feed once its personal data was
// erased (wire it with cases.WithOnErase). It first waits until the relay
// has relayed the case's last event, so that nothing the relay read before
// the key was destroyed is published after the feeds were cleared, then
// drops the relay's copies of the case and calls EraseCase. Calling it
// again finishes what a failed call left (it is what a retried erasure
// does).
func (r *Relay) Erase(ctx context.Context, id domain.CaseID) error {
	events, err := r.store.ReadCase(ctx, id, 0)
	if err != nil {
		return fmt.Errorf("feeds: erase: read case: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	last := events[len(events)-1]
	wctx, cancel := context.WithTimeout(ctx, r.cfg.eraseWait)
	defer cancel()
	if err := r.WaitFor(wctx, last.Position); err != nil {
		return fmt.Errorf("feeds: erase: the relay has not yet relayed the case's last event; erase again once it has: %w", err)
	}
	r.forget(id)
	if kv, err := r.js.KeyValue(ctx, BoundaryBucket); err == nil {
		// Nothing is relayed on an erased case any more.
		if err := kv.Delete(ctx, id.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			r.log.Warn("feed relay: forgetting an erased case's boundary", "err", err)
		}
	}
	n, err := EraseCase(ctx, r.nc, last)
	r.metrics.erased.Add(float64(n))
	return err
}

// EraseCase removes the case of last (its last event) from every feed of
// the feed server nc is connected to (account FEEDS): on each feed that
// holds messages of the case, it publishes an erase notice (KindErase, a
// stub of the last event that feed was sent of the case, at most last:
// sequence and hashes only), then securely deletes every earlier message
// of the case. A feed whose last message of the case is
// already a notice only has its earlier messages deleted, so calling it
// again is harmless; the relay never publishes after a notice (it reads it
// back, see loadHolding). It returns how many feeds it published a notice
// to. Use it directly only when no relay runs (maillage case erase on a
// stopped server).
func EraseCase(ctx context.Context, nc *nats.Conn, last domain.Event) (int, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("feeds: erase: %w", err)
	}
	id := last.CaseID
	list := js.StreamNames(ctx, jetstream.WithStreamListSubject(SubjectPrefix+".*."+id.String()))
	var names []string
	for name := range list.Name() {
		if strings.HasPrefix(name, StreamPrefix) {
			names = append(names, name)
		}
	}
	if err := list.Err(); err != nil {
		return 0, fmt.Errorf("feeds: erase: list feeds: %w", err)
	}
	notices := 0
	var errs []error
	for _, name := range names {
		subj := SubjectPrefix + "." + strings.TrimPrefix(name, StreamPrefix) + "." + id.String()
		published, err := eraseSubject(ctx, js, nc, name, subj, last)
		if published {
			notices++
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("feed %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return notices, fmt.Errorf("feeds: erase: %w", err)
	}
	return notices, nil
}

// eraseSubject ends one feed's subject of a case with an erase notice and
// deletes what came before it. The notice is a stub of the last sequence
// the partner was sent of the case, not beyond last: the case's version
// for a member, its leaving for a former member, who is told nothing of
// the case after it, not even how far it went (domain.TellingOf).
func eraseSubject(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, name, subj string, last domain.Event) (published bool, err error) {
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return false, err
	}
	var notice uint64
	var older []uint64
	for attempt := 1; notice == 0; attempt++ {
		var tail uint64 // stream sequence of the subject's last message
		var ended bool  // it is an erase notice
		var told domain.EventView
		older = older[:0]
		err := readSubject(ctx, nc, name, subj, 1, 0, func(seq uint64, m *nats.Msg) error {
			if tail != 0 {
				older = append(older, tail)
			}
			tail = seq
			if ended = Kind(m.Header.Get(HeaderKind)) == KindErase; ended {
				return nil
			}
			if msg, err := ParseMessage(m.Header, m.Data); err == nil && msg.Sequence > told.Sequence && msg.Sequence <= last.Sequence {
				told = msg.View
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if tail == 0 {
			return false, nil // nothing of the case on this feed
		}
		if ended {
			notice = tail
			break
		}
		older = append(older, tail)
		view := domain.View(last, domain.Decision{Visibility: domain.Hidden})
		if told.Sequence != 0 && told.Sequence < last.Sequence {
			view = domain.EventView{Sequence: told.Sequence, LeafHash: told.LeafHash, ChainHash: told.ChainHash, Visibility: domain.Hidden}
		}
		msg, err := EncodeMessage(subj, Message{Kind: KindErase, CaseID: last.CaseID, Sequence: view.Sequence, Cause: view.Sequence, View: view})
		if err != nil {
			return false, err
		}
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(tail))
		switch {
		case isWrongLastSequence(err) && attempt < 5:
			continue // a message got in meanwhile: look again
		case err != nil:
			return false, fmt.Errorf("publish the erase notice: %w", err)
		}
		notice, published = ack.Sequence, true
	}
	for _, seq := range older {
		if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return published, fmt.Errorf("erase message %d: %w", seq, err)
		}
	}
	return published, nil
}

// forget drops the relay's cached copies of a case (its events, opened).
func (r *Relay) forget(id domain.CaseID) {
	r.mu.Lock()
	run := r.current
	r.mu.Unlock()
	if run == nil {
		return
	}
	for _, c := range run.caches {
		c.remove(id)
	}
}

// defaultEraseWait bounds how long Erase waits for the relay to pass the
// case's last event.
const defaultEraseWait = 30 * time.Second
