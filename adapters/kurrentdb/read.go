package kurrentdb

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/maillage/maillage/domain"
)

// ReadAll yields the events of every case after a position in $all order,
// up to the last record $all held when it started.
func (s *Store) ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error] {
	return func(yield func(domain.Event, error) bool) {
		stopped := false
		_, err := s.scan(ctx, after, func(e domain.Event) error {
			if !yield(e, nil) {
				stopped = true
				return errStop
			}
			return nil
		})
		if err != nil && !stopped {
			yield(domain.Event{}, err)
		}
	}
}

// errStop ends a scan whose consumer stopped.
var errStop = errors.New("stop")

// scan reads $all forwards from after's record up to the last record $all
// holds now and calls fn with the events of the case streams after after.
// It returns the position of the last record it read (nil when none), from
// which a subscription goes on, and the first error (fn's as is).
//
// The client reads $all without a server-side filter (ReadAllOptions has
// none), so the records of other streams are read and skipped here. Each
// page is read whole before fn sees its events, so that fn never runs while
// the client is in use (fn may take its time, or close the store).
func (s *Store) scan(ctx context.Context, after domain.Position, fn func(domain.Event) error) (*esdb.Position, error) {
	end, found, err := s.lastPosition(ctx)
	if err != nil || !found {
		return nil, err
	}
	from := startOf(after)
	var last *esdb.Position
	for {
		page, n, done, err := s.readPage(ctx, from, after, end, &last)
		if err != nil {
			return last, err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return last, err
			}
		}
		if done || n < s.cfg.pageSize || last == nil {
			return last, nil
		}
		from = *last // reads include the record at from: readPage skips it
	}
}

// readPage reads one page of $all from a position, keeping the events of the
// case streams after after, up to end. It moves *last to the last record
// read and returns how many records it received and whether it went past
// end.
func (s *Store) readPage(ctx context.Context, from esdb.AllPosition, after domain.Position, end esdb.Position, last **esdb.Position) ([]domain.Event, int, bool, error) {
	c, cctx, release, err := s.acquire(ctx)
	if err != nil {
		return nil, 0, false, err
	}
	defer release()
	rs, err := c.ReadAll(cctx, esdb.ReadAllOptions{From: from}, uint64(s.cfg.pageSize))
	if err != nil {
		return nil, 0, false, s.fail(ctx, "read $all", c, err)
	}
	defer rs.Close()
	var page []domain.Event
	n := 0
	for {
		re, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return page, n, false, nil
		}
		if err != nil {
			return nil, n, false, s.fail(ctx, "read $all", c, err)
		}
		n++
		rec := re.OriginalEvent()
		pos := rec.Position
		if *last != nil && !later(pos, **last) {
			continue // the record the page started from
		}
		if later(pos, end) {
			return page, n, true, nil
		}
		*last = &pos
		if !strings.HasPrefix(rec.StreamID, s.cfg.prefix) {
			continue
		}
		e, err := decodeEvent(s.cfg.prefix, rec)
		if err != nil {
			return nil, n, false, err
		}
		if e.Position > after {
			page = append(page, e.Event)
		}
	}
}

// lastPosition returns the position of the last record of $all, if any.
func (s *Store) lastPosition(ctx context.Context) (esdb.Position, bool, error) {
	c, cctx, release, err := s.acquire(ctx)
	if err != nil {
		return esdb.Position{}, false, err
	}
	defer release()
	rs, err := c.ReadAll(cctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return esdb.Position{}, false, s.fail(ctx, "read the end of $all", c, err)
	}
	defer rs.Close()
	re, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return esdb.Position{}, false, nil
	}
	if err != nil {
		return esdb.Position{}, false, s.fail(ctx, "read the end of $all", c, err)
	}
	return re.OriginalEvent().Position, true, nil
}
