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
	for delivered := uint64(0); delivered < pending; delivered++ {
		m, err := it.Next(jetstream.NextContext(ctx))
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
		if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
			return nil
		}
	}
	return nil
}
