package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/maillage/maillage/adapters/feeds"
)

// Fanout measures the end-to-end latency from an append's acknowledgement
// to the delivery of its event on the feed of every member of its case,
// read by a consumer per feed as a partner reads it, with the relay of
// adapters/feeds (feeds.RunFanoutBench) on the embedded store and a feed
// server of its own. Events are appended at a steady Rate (default 200/s)
// for Duration over Cases cases of 5 to 20 members.
func Fanout(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	if opts.Rate <= 0 {
		opts.Rate = 200
	}
	e, err := openEnv(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	srv, err := feeds.StartServer(ctx, filepath.Join(e.dir, "feeds"), feeds.WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	res, err := feeds.RunFanoutBench(ctx, feeds.FanoutConfig{Store: e.store, Feeds: srv.Conn(), Rate: opts.Rate, Duration: opts.Duration,
		Cases: opts.Cases, Seed: opts.Seed, Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 }
	r := newReport("fanout", fmt.Sprintf("%d cases of %.1f members on average, %.0f events/s asked for %s, embedded JetStream (store and feeds), fsync always",
		opts.Cases, res.Members, res.TargetRate, res.Duration.Round(time.Millisecond)))
	r.Rows = append(r.Rows, Row{Phase: "append ack -> every member's feed", Ops: int64(res.Events), Unit: "event", Seconds: res.Duration.Seconds(),
		Rate: res.AppendRate, P50: ms(res.P50), P99: ms(res.P99), Errors: int64(res.Undelivered),
		HeapBytes: liveHeap()}) // CPU per op is not measured: the run's CPU includes opening the cases and the relay's catch-up
	r.Notes = append(r.Notes,
		fmt.Sprintf("p90 %.3f ms, max %.3f ms (the p95 column is not measured here)", ms(res.P90), ms(res.Max)),
		fmt.Sprintf("%d feed deliveries, %.0f/s; errors = events some member had not received 30 s after the run", res.Deliveries, res.DeliveryRate))
	return r, nil
}
