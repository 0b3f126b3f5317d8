package jetstream

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
)

// errReadToEnd: a read's consumer has nothing left to deliver.
var errReadToEnd = streamread.ErrNothingLeft

// next returns the consumer's next message. A read (not follow) that waits
// long without one asks the consumer how many messages it has left
// (streamread.Next): none means the stream counted messages it cannot
// deliver (a message whose checksum fails is dropped by the server), and
// the read is over (errReadToEnd) rather than waiting for them forever.
func (s *Store) next(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer, follow bool, last uint64) (jetstream.Msg, error) {
	if follow {
		return it.Next(jetstream.NextContext(ctx))
	}
	m, err := streamread.Next(ctx, it, cons, last)
	if errors.Is(err, errReadToEnd) {
		s.log.Warn("jetstream: the stream counts messages it cannot deliver (damaged on disk?): the read ends without them; run maillage audit verify")
	}
	return m, err
}
