package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readIdle is how long a read (not Follow) waits for its next message
// before it asks its consumer whether any is left.
const readIdle = time.Second

// errReadToEnd: a read's consumer has nothing left to deliver.
var errReadToEnd = errors.New("jetstream: nothing left to read")

// next returns the consumer's next message. A read (not follow) that waits
// more than readIdle asks the consumer how many messages it has left: none
// means the stream counted messages it cannot deliver (a message whose
// checksum fails is dropped by the server), and the read is over
// (errReadToEnd) rather than waiting for them forever.
func (s *Store) next(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer, follow bool) (jetstream.Msg, error) {
	if follow {
		return it.Next(jetstream.NextContext(ctx))
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, readIdle)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return m, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue // the server is away: wait for it, within ctx
		}
		if info.NumPending == 0 {
			s.log.Warn("jetstream: the stream counts messages it cannot deliver (damaged on disk?): the read ends without them; run maillage audit verify",
				"last_delivered", info.Delivered.Stream)
			return nil, errReadToEnd
		}
	}
}
