package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// startFeedsCluster opens the feeds' authority under data (as serve
// would), prints its stanza with "maillage partner cluster-config" for each
// node (each keeps its accounts in a directory of its own, as on machines of
// their own) and starts 3 nats-server nodes as startNATSCluster does, each
// reading its stanza as a node reads its configuration file, again at each
// start: they trust the authority.
func startFeedsCluster(t *testing.T, data string) (*feeds.Authority, *natsCluster) {
	t.Helper()
	auth, err := feeds.OpenAuthority(filepath.Join(data, "feeds"))
	if err != nil {
		t.Fatal(err)
	}
	var confs []string
	for i := range 3 {
		var stanza strings.Builder
		jwtDir := filepath.Join(t.TempDir(), "jwt")
		if err := run(t.Context(), []string{"partner", "cluster-config", "--data", data, "--resolver-dir", jwtDir}, &stanza, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(t.TempDir(), fmt.Sprintf("feeds-%d.conf", i))
		if err := os.WriteFile(conf, []byte(stanza.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		confs = append(confs, conf)
	}
	return auth, startNATSClusterWith(t, 3, func(i int) *natsserver.Options {
		o, err := natsserver.ProcessConfigFile(confs[i])
		if err != nil {
			t.Fatalf("the stanza of partner cluster-config: %v", err)
		}
		if len(o.TrustedOperators) != 1 || o.SystemAccount == "" || o.AccountResolver == nil {
			t.Fatalf("the stanza of partner cluster-config: operators %d, system account %q, resolver %T", len(o.TrustedOperators), o.SystemAccount, o.AccountResolver)
		}
		return o
	})
}

// TestFeedsOnANATSCluster runs maillage serve (embedded event store) with
// its partner feeds on a 3-node NATS cluster that trusts the authority of
// <data>/feeds through the stanza of "partner cluster-config"
// (--feeds-nats): the feed streams and the relay's checkpoint have 3
// replicas; a partner with credentials issued offline reads its own feed
// on the cluster and is refused another's; then, while commands go on
// being recorded, the node leading the coordinator's feed stops, comes
// back, and the next leader is cut off as in a crash; the coordinator's
// feed still holds every event of every case once, in order.
func TestFeedsOnANATSCluster(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	auth, cluster := startFeedsCluster(t, data)
	m := startMain(t, "--data", data, "--feeds-nats", cluster.URLs())
	if m.feedServer.NATS() != nil {
		t.Fatal("an embedded feed server runs with --feeds-nats")
	}
	if got, want := m.PartnerURL(), strings.Split(cluster.URLs(), ",")[0]; got != want {
		t.Fatalf("partner URL %q, want the cluster's first, %q", got, want)
	}

	// A case with two members.
	var retries atomic.Int64
	shared := uuid.New()
	var last cases.Result
	var err error
	for _, req := range []cases.Request{
		openCase(shared),
		command(shared, aseActor, "join-mecs", &domain.PartnerJoinedPayload{Institution: mecsActor.Institution,
			Kind: domain.KindMECS, Name: "MECS 35", Referent: domain.Referent{Name: mecsActor.Professional}, Reason: "accueil"}),
		observation(shared, "shared-1"),
	} {
		if last, err = recordRetrying(ctx, m.cases, req, &retries); err != nil {
			t.Fatal(err)
		}
	}
	relayJS, err := njs.New(m.feedServer.Conn())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = m.relay.WaitFor(wctx, last.Position)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{feeds.StreamName(aseActor.Institution), feeds.StreamName(mecsActor.Institution), "KV_" + feeds.CheckpointBucket} {
		s, err := relayJS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("stream %s with %d replicas, want 3", name, r)
		}
	}

	// The coordinator's partner system, with credentials issued offline,
	// on the cluster.
	credsPath := writePartnerCreds(t, auth, aseActor.Institution)
	refused := make(chan error, 10)
	nc, inst, err := feeds.Dial(cluster.URLs(), credsPath, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tail, err := feeds.NewTail(nc, inst)
	if err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	var first *feeds.Delivery
	err = tail.Run(tctx, func(d feeds.Delivery) error {
		first = &d
		tcancel()
		return nil
	})
	tcancel()
	if err != nil || first == nil {
		t.Fatalf("the partner reading its feed on the cluster: %v (a message: %v)", err, first != nil)
	}
	if first.Break != nil || first.Kind != feeds.KindEvent || first.Sequence != 1 || first.Verified != 1 {
		t.Fatalf("the partner's first message: %s of sequence %d, verified to %d, break %v", first.Kind, first.Sequence, first.Verified, first.Break)
	}
	partnerJS, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = partnerJS.Stream(rctx, feeds.StreamName(mecsActor.Institution))
	rcancel()
	if err == nil || errors.Is(err, njs.ErrStreamNotFound) {
		t.Fatalf("the partner of %s asking for the feed of %s (it exists): %v, want a refusal", inst, mecsActor.Institution, err)
	}
	select {
	case perr := <-refused:
		if !errors.Is(perr, nats.ErrPermissionViolation) || !strings.Contains(perr.Error(), feeds.StreamName(mecsActor.Institution)) {
			t.Fatalf("the partner of %s asking for the feed of %s: %v, want a permissions violation", inst, mecsActor.Institution, perr)
		}
		t.Logf("the partner of %s read its feed on the cluster and was refused the feed of %s: %v", inst, mecsActor.Institution, perr)
	case <-time.After(5 * time.Second):
		t.Fatalf("the partner of %s asking for the feed of %s: %v, and no permissions violation", inst, mecsActor.Institution, err)
	}

	// A load of observations on cases of the coordinator; then the node
	// leading the coordinator's feed stream stops, and nothing is
	// restarted.
	l := startLoad(t, m.cases, 3)
	l.waitMore(t, 40, "before any loss")
	feed := feeds.StreamName(aseActor.Institution)
	leader := feedLeader(t, relayJS, feed, "")
	var stopped int
	if _, err := fmt.Sscanf(leader, "nats-%d", &stopped); err != nil {
		t.Fatalf("leader %q: %v", leader, err)
	}
	before := l.acks.Load()
	cluster.stop(stopped)
	t.Logf("stopped node %d, the leader of %s", stopped, feed)
	l.waitMore(t, 60, "after the feed's leader was stopped")
	newLeader := feedLeader(t, relayJS, feed, leader)
	t.Logf("new leader of %s: %s; %d commands recorded before the loss, %d after", feed, newLeader, before, l.acks.Load()-before)

	l.finish()

	// The stopped node comes back; then, under a new load, the new leader
	// is cut off as in a crash or a partition: its connections drop
	// mid-publish and it runs on, alone, without handing anything over.
	// (The load pauses while the node comes back: the relay would only
	// have more to catch up on at the end.)
	cluster.start(stopped)
	cluster.waitCurrent()
	l = startLoad(t, m.cases, 3)
	l.waitMore(t, 40, "before the cut")
	var cut int
	if _, err := fmt.Sscanf(newLeader, "nats-%d", &cut); err != nil {
		t.Fatalf("leader %q: %v", newLeader, err)
	}
	cutAt := time.Now()
	cluster.cut(cut)
	t.Logf("cut off node %d, the leader of %s", cut, feed)
	l.waitMore(t, 60, "after the feed's leader was cut off")
	l.finish() // the relay publishes these through the election
	t.Logf("leader of %s after the cut: %s, %s after it", feed, feedLeader(t, relayJS, feed, newLeader), time.Since(cutAt).Round(time.Millisecond))

	checkFeedHasNoGap(t, m, aseActor.Institution, func() []domain.Event { return readAll(t, m.events) })
}

// feedLeader waits for the stream to have a leader other than not and
// returns its name.
func feedLeader(t *testing.T, js njs.JetStream, stream, not string) string {
	t.Helper()
	var err error
	for range 300 {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		var s njs.Stream
		s, err = js.Stream(ctx, stream)
		cancel()
		if err == nil {
			if c := s.CachedInfo().Cluster; c != nil && c.Leader != "" && c.Leader != not {
				return c.Leader
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stream %s has no leader (but %q): %v", stream, not, err)
	return ""
}

// TestFeedsNATSFlags: partners connect to the cluster, so serve refuses a
// partner listener with --feeds-nats, and the feeds are replicated on a
// cluster of three nodes or more only.
func TestFeedsNATSFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		refused  string
		replicas int
	}{
		{args: []string{"--feeds-nats", "nats://a:4222,nats://b:4222,nats://c:4222", "--partner-listen", ":4223"}, refused: "--feeds-nats"},
		{args: []string{"--feeds-nats", "nats://a:4222", "--feeds=false"}, refused: "--feeds=true"},
		{args: []string{"--feeds-nats", "nats://a:4222", "--feeds-revocation-refresh", "500ms"}, refused: "--feeds-revocation-refresh"},
		{args: []string{"--feeds-nats", "nats://a:4222,nats://b:4222"}, replicas: 1},
		{args: []string{"--feeds-nats", "nats://a:4222,nats://b:4222,nats://c:4222"}, replicas: 3},
		{args: nil, replicas: 1},
	} {
		m := NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags(append([]string{"--data", t.TempDir()}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if tc.refused != "" {
			if err := m.openFeeds(); err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("%q: %v, want a refusal naming %s", tc.args, err, tc.refused)
			}
			continue
		}
		if r := m.feedReplicas(); r != tc.replicas {
			t.Errorf("%q: %d replicas, want %d", tc.args, r, tc.replicas)
		}
	}
}

// Given feeds on a NATS cluster and a stopped server, when an admin erases a
// case from the command line with --feeds-nats, then the cluster's feeds
// hold nothing of the case but its erase notice.
func TestCaseEraseClearsTheFeedsOnANATSCluster(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	_, cluster := startFeedsCluster(t, data)
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--data", data, "--addr", "127.0.0.1:0", "--feeds-nats", cluster.URLs()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	const secret = "Emma-Lou a raconté sa semaine"
	var retries atomic.Int64
	var last cases.Result
	for _, req := range []cases.Request{openCase(id), command(id, aseActor, "obs", &domain.ObservationRecordedPayload{Summary: secret})} {
		var err error
		if last, err = recordRetrying(ctx, m.cases, req, &retries); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.relay.WaitFor(wctx, last.Position); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, "case", "erase", id.String(), "--data", data, "--feeds-nats", cluster.URLs(), "--reason", "fin de la durée de conservation")
	if err != nil || !strings.Contains(out, "retiré de 1 flux") {
		t.Fatalf("case erase: %v\n%s", err, out)
	}
	srv, err := feeds.ConnectCluster(ctx, filepath.Join(data, "feeds"), cluster.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	js, err := njs.New(srv.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, feeds.StreamName(aseActor.Institution))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []feeds.Kind
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, njs.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(msg.Data), "Emma-Lou") {
			t.Fatalf("message %d still holds the observation", seq)
		}
		fm, err := feeds.ParseMessage(msg.Header, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fm.Kind)
	}
	if len(kinds) != 1 || kinds[0] != feeds.KindErase {
		t.Fatalf("the coordinator's feed on the cluster holds %v, want one erase notice", kinds)
	}
}

// Given partner connections to two nodes of a feeds cluster, when an admin
// revokes the institution with --feeds-nats, then every node applies it at
// once: the connections are closed and the credentials refused, without a
// reload of the nodes.
func TestPartnerRevokeOnANATSCluster(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	auth, cluster := startFeedsCluster(t, data)
	credsFile := writePartnerCreds(t, auth, mecsActor.Institution)
	urls := strings.Split(cluster.URLs(), ",")
	var revoked []chan error
	for _, url := range []string{urls[0], urls[2]} {
		errs := make(chan error, 16)
		nc, _, err := feeds.Dial(url, credsFile, nats.MaxReconnects(0), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
		if err != nil {
			t.Fatalf("the partner connects to %s: %v", url, err)
		}
		t.Cleanup(nc.Close)
		revoked = append(revoked, errs)
	}

	// JWTs carry their issue time in seconds, and a node keeps the newer of
	// two account JWTs: the revocation must not share the second of the
	// stanza's preload (nobody revokes within a second of configuring).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	var out strings.Builder
	if err := run(ctx, []string{"partner", "revoke", string(mecsActor.Institution), "--data", data, "--feeds-nats", cluster.URLs()}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "révocation appliquée par 3 nœud(s)") {
		t.Fatalf("partner revoke on the cluster said %q", out.String())
	}
	for i, errs := range revoked {
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrAuthRevoked) {
				t.Fatalf("partner connection %d: %v, want %v", i+1, err, nats.ErrAuthRevoked)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("partner connection %d: its node did not revoke it", i+1)
		}
	}
	for _, url := range urls {
		if nc, _, err := feeds.Dial(url, credsFile, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Fatalf("node %s still accepts the revoked credentials", url)
		}
	}

	// A node that restarts with its configuration unchanged (the stanza
	// printed before the revocation) still refuses them: it kept the
	// pushed account in its resolver directory. New credentials work there.
	// They go first, and the revoked ones wait until the node has loaded
	// the account: nats-server checks a client that authenticates while a
	// restarted node loads the account against no revocation (it marks the
	// account current before setting them). serve --feeds-nats closes such
	// a connection at its next push (feeds.WithRevocationRefresh,
	// TestAClusterFeedServerKeepsTheNodesToldOfRevocations); here no serve
	// runs.
	cluster.stop(1)
	cluster.start(1)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond))) // issued after the revocation's second
	nc, _, err := feeds.Dial(urls[1], writePartnerCreds(t, auth, mecsActor.Institution), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("the restarted node refuses credentials issued after the revocation: %v", err)
	}
	nc.Close()
	waitAccountLoaded(t, cluster.nodes[1], credsAccount(t, credsFile))
	if nc, _, err := feeds.Dial(urls[1], credsFile, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a node restarted with the configuration printed before the revocation accepts the revoked credentials")
	}
}

// credsAccount returns the account of the user of a credentials file.
func credsAccount(t *testing.T, path string) string {
	t.Helper()
	uc := credsUser(t, path)
	if uc.IssuerAccount != "" {
		return uc.IssuerAccount
	}
	return uc.Issuer
}

// waitAccountLoaded waits until node holds account with its claims
// applied (the monitoring's claim is the JWT the node set last, once the
// update was done).
func waitAccountLoaded(t *testing.T, node *natsserver.Server, account string) {
	t.Helper()
	for range 1000 {
		if az, err := node.Accountz(&natsserver.AccountzOptions{Account: account}); err == nil && az.Account != nil && az.Account.Claim != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s never loaded account %s", node.Name(), account)
}

// writePartnerCreds issues an hour's credentials of inst's partner feed and
// writes them to a file, whose path it returns.
func writePartnerCreds(t *testing.T, auth *feeds.Authority, inst domain.InstitutionID) string {
	t.Helper()
	creds, err := auth.PartnerCredentials(inst, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), string(inst)+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
