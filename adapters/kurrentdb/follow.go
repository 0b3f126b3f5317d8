package kurrentdb

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/maillage/maillage/domain"
)

// handlerError carries the error of Follow's handler, returned as is.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

// Follow calls handle for every event after a position, in $all order, then
// for every new one. It catches up by reading $all (as ReadAll), then
// subscribes to $all from the last record it read, with a server-side
// filter on the case stream prefix. The subscription remembers the last
// event and the last checkpoint the server sent (filtered subscriptions send
// one every 32 records considered, so a resubscription does not scan again
// what the filter skipped) and, when it drops (server restarted, leader
// changed, network cut), subscribes again from there after a growing delay:
// the client does not. Events at or before the last one handled are skipped,
// so none is handled twice.
func (s *Store) Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	last := after
	deliver := func(e domain.Event) error {
		if e.Position <= last {
			return nil
		}
		if err := handle(e); err != nil {
			return handlerError{err}
		}
		last = e.Position
		return nil
	}
	var (
		resume  *esdb.Position // nil: from the start of $all
		caught  bool
		delay   = s.cfg.retryDelay
		attempt = 0
	)
	for {
		before := last
		var err error
		if !caught {
			var end *esdb.Position
			if end, err = s.scan(ctx, last, deliver); err == nil {
				caught, resume = true, end
				if resume == nil && last > 0 {
					p := startOf(last).(esdb.Position)
					resume = &p
				}
			}
		}
		if caught {
			err = s.subscribe(ctx, &resume, deliver)
		}
		if h, ok := errors.AsType[handlerError](err); ok {
			return h.err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if s.isClosed() {
			return errClosed
		}
		if !errors.Is(err, domain.ErrStoreUnavailable) {
			return err // an event this store cannot read: following cannot go on
		}
		if last != before {
			delay, attempt = s.cfg.retryDelay, 0
		}
		attempt++
		s.log.Warn("kurrentdb: following $all: subscribing again", "after", last, "attempt", attempt, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return errClosed
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// subscribe follows $all from *resume (exclusive), keeping *resume at the
// last event or checkpoint received, until the subscription drops or
// deliver fails.
func (s *Store) subscribe(ctx context.Context, resume **esdb.Position, deliver func(domain.Event) error) error {
	var from esdb.AllPosition = esdb.Start{}
	if *resume != nil {
		from = **resume
	}
	// The subscription lives on after the call that opens it: it ends with
	// ctx or Close. Its Recv does not use the client.
	sctx, cancel := s.bound(ctx)
	defer cancel()
	c, _, release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	sub, err := c.SubscribeToAll(sctx, esdb.SubscribeToAllOptions{
		From:   from,
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{s.cfg.prefix}},
	})
	release()
	if err != nil {
		return s.fail(ctx, "subscribe to $all", c, err)
	}
	defer sub.Close()
	for {
		ev := sub.Recv()
		switch {
		case ev.EventAppeared != nil:
			rec := ev.EventAppeared.OriginalEvent()
			if !strings.HasPrefix(rec.StreamID, s.cfg.prefix) {
				continue
			}
			e, err := decodeEvent(s.cfg.prefix, rec)
			if err != nil {
				return err
			}
			if err := deliver(e.Event); err != nil {
				return err
			}
			pos := rec.Position
			*resume = &pos
		case ev.CheckPointReached != nil:
			if *resume == nil || later(*ev.CheckPointReached, **resume) {
				p := *ev.CheckPointReached
				*resume = &p
			}
		case ev.SubscriptionDropped != nil:
			return s.fail(ctx, "subscription to $all dropped", c, ev.SubscriptionDropped.Error)
		}
	}
}
