// Package streamread reads what a JetStream stream holds now, through an
// ordered consumer, for the audit adapters (access log, signed heads).
package streamread

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Read calls fn, in order, for the messages of stream that cfg selects and
// that were there when it started (and still are), then returns. fn's error stops it and is
// returned as is. The consumer (ordered: ephemeral, in memory, no acks) is
// deleted when done.
func Read(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg) error) error {
	cfg.InactiveThreshold = time.Minute
	cfg.MaxResetAttempts = 3
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = js.DeleteConsumer(dctx, stream, info.Name)
		}
	}()
	info := cons.CachedInfo()
	if info == nil || info.NumPending == 0 {
		return nil
	}
	pending := info.NumPending
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return err
	}
	defer it.Stop()
	unhook := context.AfterFunc(ctx, it.Stop)
	defer unhook()
	var last uint64 // the stream sequence of the last message read
	for delivered := uint64(0); delivered < pending; delivered++ {
		m, err := Next(ctx, it, cons, last)
		if errors.Is(err, ErrNothingLeft) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(ctx.Err(), err)
			}
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		// Messages counted at the start may have been deleted since: the
		// last one says nothing is left, and none other will come.
		if meta, err := m.Metadata(); err == nil {
			if meta.NumPending == 0 {
				return nil
			}
			last = meta.Sequence.Stream
		}
	}
	return nil
}

// idle is how long Read waits for its next message before it asks its
// consumer whether any is left.
const idle = time.Second

// ErrNothingLeft: a read's consumer has nothing left to deliver.
var ErrNothingLeft = errors.New("streamread: nothing left to read")

// Next returns the consumer's next message, for a read (not a follow). Messages counted at the start
// may be deleted before they are delivered (a write-ahead stream purged by
// the server that copied it, a message the server dropped as damaged): then
// none comes, and a read that waits more than idle asks the consumer; none
// pending means the read is over (ErrNothingLeft), instead of waiting for
// ever. A consumer that delivered past last (the stream sequence of the
// last message the caller read) has messages on their way to the caller, not
// deleted ones: the read waits for them. The event store's reads use it too.
func Next(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer, last uint64) (jetstream.Msg, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, idle)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return m, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue // the server is away: wait for it, within ctx
		}
		if info.NumPending == 0 && info.Delivered.Stream <= last {
			return nil, ErrNothingLeft
		}
	}
}
