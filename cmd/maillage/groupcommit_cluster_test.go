package main

import (
	"log/slog"
	"testing"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain/cases"
)

// TestGroupCommitOnANATSClusterSurvivesNodeLoss runs 24 writers through a
// store whose appends share atomic batches from two on, on a 3-node
// cluster (replicated stream: the batch is one proposal), while a follower
// node stops and comes back, then while the stream leader is cut off: every
// acknowledged event is recorded once, in case order, and a follower of the
// stream sees each once.
func TestGroupCommitOnANATSClusterSurvivesNodeLoss(t *testing.T) {
	cluster := startNATSCluster(t, 3)
	quiet := slog.New(slog.DiscardHandler)
	store, err := jetstream.Open(t.Context(), jetstream.WithURL(cluster.URLs()), jetstream.WithReplicas(3),
		jetstream.WithGroupCommit(2), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := cases.New(store)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := jetstream.Open(t.Context(), jetstream.WithURL(cluster.URLs()), jetstream.WithReplicas(3), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	f := startFollower(t, reader)
	l := startLoad(t, svc, 24)
	l.waitMore(t, 300, "before any loss")

	leader := waitStreamLeader(t, cluster, store.StreamName())
	other := (leader + 1) % 3
	cluster.stop(other)
	l.waitMore(t, 200, "with a follower node down")
	cluster.start(other)
	cluster.waitCurrent()
	waitReplicasCurrent(t, reader)
	l.waitMore(t, 100, "after the node came back")

	leader = waitStreamLeader(t, cluster, store.StreamName())
	cluster.cut(leader)
	l.waitMore(t, 200, "after the stream leader was lost")

	acked := l.finish()
	all := readAll(t, reader)
	checkExactlyOnce(t, reader, acked, f.waitFor(t, len(all)))
	st := store.GroupStats()
	if st.Batches == 0 {
		t.Fatalf("no atomic batch: %+v", st)
	}
	t.Logf("group stats: %+v; retried attempts: %d", st, l.retries.Load())
}
