// Package settle retries the JetStream API calls made at start-up (stream
// and bucket creation) while a cluster settles: right after its nodes
// start, or after one came back, the meta leader may not yet count every
// peer online and answers "no suitable peers for placement", or has no
// leader to answer at all (the request times out). A maillage server started with its cluster
// (compose, a test) would otherwise fail at once on a condition that lasts
// seconds.
package settle

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Patience is how long Retry keeps trying, unless ctx ends first.
const Patience = 30 * time.Second

// Server error codes of a cluster that has not settled.
const (
	codeNoSuitablePeers     = 10005 // "no suitable peers for placement" (a peer not yet seen online)
	codeClusterNotAvailable = 10008 // "JetStream system temporarily unavailable"
)

// Retry calls op until it succeeds, fails with an error that is not one of a
// settling cluster (Transient), or Patience has passed; it returns op's last
// result.
func Retry[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(Patience)
	wait := 100 * time.Millisecond
	for {
		v, err := op(ctx)
		// A cluster without a meta leader does not answer: the request's
		// own timeout (nats.go's 5 s, ctx having none) is then transient.
		unanswered := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if err == nil || !(Transient(err) || unanswered) || time.Now().Add(wait).After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Transient reports whether err is one of a cluster that has not settled.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return false // a 503 too, but a configuration to fix, not a wait
		}
		return apiErr.ErrorCode == codeNoSuitablePeers || apiErr.ErrorCode == codeClusterNotAvailable || apiErr.Code == 503
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// CreateOrUpdateStream is js.CreateOrUpdateStream, retried while the
// cluster settles.
func CreateOrUpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, cfg) })
}
