package feeds

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream"
)

// openBench opens an embedded event store and a feed server for a fan-out
// run.
func openBench(tb testing.TB) (*jetstream.Store, *Server) {
	tb.Helper()
	dir := tb.TempDir()
	store, err := jetstream.Open(context.Background(), jetstream.WithEmbedded(dir+"/store"), jetstream.WithLogger(quiet))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	srv, err := StartServer(context.Background(), dir+"/feeds", WithServerLogger(quiet))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return store, srv
}

// The fan-out benchmark's function runs, small: every event reaches every
// member and gets a latency.
func TestRunFanoutBench(t *testing.T) {
	store, srv := openBench(t)
	res, err := RunFanoutBench(context.Background(), FanoutConfig{Store: store, Feeds: srv.Conn(), Rate: 100, Duration: 500 * time.Millisecond,
		Cases: 10, MinMembers: 5, MaxMembers: 8, Institutions: 12, Writers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events == 0 || res.Undelivered != 0 || res.Deliveries < res.Events*5 || res.P50 == 0 || res.P99 < res.P50 {
		t.Fatalf("%+v", res)
	}
	t.Log(res)
}

// BenchmarkFanout measures the end-to-end latency from an append's
// acknowledgement to the delivery on the feed of every member of the case
// (5 to 20 members), at steady rates. Run it once per rate:
//
//	go test -run '^$' -bench Fanout -benchtime 1x ./adapters/feeds/
//
// MAILLAGE_FANOUT_SECONDS sets the measured time per rate (default 10).
func BenchmarkFanout(b *testing.B) {
	seconds := 10
	if s, err := strconv.Atoi(os.Getenv("MAILLAGE_FANOUT_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	for _, rate := range []float64{50, 100, 150, 200, 300, 400} {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			var res FanoutResult
			for b.Loop() {
				store, srv := openBench(b)
				var err error
				res, err = RunFanoutBench(context.Background(), FanoutConfig{Store: store, Feeds: srv.Conn(), Rate: rate,
					Duration: time.Duration(seconds) * time.Second})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.AppendRate, "events/s")
			b.ReportMetric(res.DeliveryRate, "deliveries/s")
			b.ReportMetric(res.Members, "members")
			b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.Undelivered), "undelivered")
			b.Log(res)
		})
	}
}

// BenchmarkRawFeedPublish is the feed server's ceiling on this machine:
// durable publishes of 1 kB messages spread over 40 streams by 96
// concurrent publishers, nothing else running.
//
//	go test -run '^$' -bench RawFeedPublish -benchtime 20000x ./adapters/feeds/
func BenchmarkRawFeedPublish(b *testing.B) {
	_, srv := openBench(b)
	js, _ := njs.New(srv.Conn())
	ctx := context.Background()
	for i := range 40 {
		if _, err := js.CreateStream(ctx, njs.StreamConfig{Name: fmt.Sprintf("RAW%d", i), Subjects: []string{fmt.Sprintf("raw.%d.*", i)}, Storage: njs.FileStorage}); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, 1000)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 96 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := js.Publish(ctx, fmt.Sprintf("raw.%d.c%d", i%40, i%500), body); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	i := 0
	for b.Loop() {
		next <- i
		i++
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "msgs/s")
}
