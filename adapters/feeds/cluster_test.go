package feeds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/domain"
)

// trustingNode is a real nats-server node with JetStream whose
// configuration holds the stanza of Authority.ServerConfig, as an operator
// sets up a node of the feeds' cluster. It can be stopped and started
// again on its port, resolver directory and storage.
type trustingNode struct {
	t    *testing.T
	conf string
	port int
	srv  *server.Server
	url  string
}

func startTrustingNode(t *testing.T, auth *Authority) *trustingNode {
	t.Helper()
	stanza, err := auth.ServerConfig(filepath.Join(t.TempDir(), "jwt"))
	if err != nil {
		t.Fatal(err)
	}
	n := &trustingNode{t: t, conf: filepath.Join(t.TempDir(), "node.conf"), port: server.RANDOM_PORT}
	body := fmt.Sprintf("listen: \"127.0.0.1:-1\"\njetstream { store_dir: %q }\n%s", t.TempDir(), stanza)
	if err := os.WriteFile(n.conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *trustingNode) start() {
	n.t.Helper()
	opts, err := server.ProcessConfigFile(n.conf)
	if err != nil {
		n.t.Fatalf("the stanza of ServerConfig: %v", err)
	}
	opts.Port = n.port
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		n.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		n.t.Fatal("the node is not ready for connections")
	}
	n.srv, n.url = srv, srv.ClientURL()
	n.port = srv.Addr().(*net.TCPAddr).Port
}

func (n *trustingNode) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// forgetRevocations makes the node at url hold the PARTNERS account
// without its revocations, as a node does when it let a revoked user in
// while loading the account after a restart: the account is updated with
// claims that list none, pushed as the system account.
func forgetRevocations(t *testing.T, auth *Authority, url string) {
	t.Helper()
	claims := auth.partnersAccount()
	claims.Revocations = nil
	token, err := claims.Encode(auth.operator)
	if err != nil {
		t.Fatal(err)
	}
	user, seed, err := auth.toolUser(auth.system, "test-forget", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(user, string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("$SYS.REQ.ACCOUNT."+claims.Subject+".CLAIMS.UPDATE", []byte(token), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitRevoked waits until the partner's connection was closed for
// revocation.
func waitRevoked(t *testing.T, p *partnerConn, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !p.sawErr(nats.ErrAuthRevoked) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the connection of revoked credentials is still open after %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchPushes counts the PARTNERS account JWTs pushed to the node at url
// other than by forgetRevocations: it returns how many so far.
func watchPushes(t *testing.T, auth *Authority, url string) func() int {
	t.Helper()
	user, seed, err := auth.toolUser(auth.system, "test-watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(user, string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pub, _ := auth.partners.PublicKey()
	var mu sync.Mutex
	n := 0
	if _, err := nc.Subscribe("$SYS.REQ.ACCOUNT."+pub+".CLAIMS.UPDATE", func(m *nats.Msg) {
		if ac, err := jwt.DecodeAccountClaims(string(m.Data)); err == nil && len(ac.Revocations) > 0 {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// Given a node that trusts the authority and a partner connected to it,
// feeds on it (ConnectCluster) tell it of the revocations written while no
// feed server ran, at start; then, running, of one written by another
// process (as maillage partner revoke without --feeds-nats does); each
// time the node closes the revoked connection and refuses the credentials,
// while the DITEP reads on. And when the node later holds the account
// without the revocations and lets revoked credentials in again (as
// nats-server can while a restarted node loads the account), the next
// refresh closes that connection too, authority.json unchanged.
func TestAClusterFeedServerKeepsTheNodesToldOfRevocations(t *testing.T) {
	dir := t.TempDir()
	auth, err := OpenAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	url := startTrustingNode(t, auth).url
	connect := func(refresh time.Duration) *Server {
		t.Helper()
		srv, err := ConnectCluster(t.Context(), dir, url, WithAuthorityPoll(20*time.Millisecond),
			WithRevocationRefresh(refresh), WithServerLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	revokeOffline := func(inst domain.InstitutionID) {
		t.Helper()
		offline, err := OpenAuthority(dir)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := offline.Revoke(inst, time.Now()); err != nil || n != 1 {
			t.Fatalf("revoke %s: %d, %v", inst, n, err)
		}
	}
	kept := connectPartner(t, url, writeCredsWith(t, auth, ditep))

	// Revoked while no feed server ran: told at start.
	schoolCreds := writeCredsWith(t, auth, school)
	schoolConn := connectPartner(t, url, schoolCreds)
	revokeOffline(school)
	srv := connect(0)
	waitRevoked(t, schoolConn, 10*time.Second, "revoked before the feed server started")

	// Revoked while it runs: told when authority.json changes.
	mecsCreds := writeCredsWith(t, auth, mecs)
	mecsConn := connectPartner(t, url, mecsCreds)
	revokeOffline(mecs)
	waitRevoked(t, mecsConn, 10*time.Second, "authority.json changed")
	for _, creds := range []string{schoolCreds, mecsCreds} {
		if err := refused(url, creds); err == nil {
			t.Fatal("the node accepts revoked credentials")
		}
	}
	srv.Close()

	// The node forgets; revoked credentials get in; a refresh closes them.
	// The start push is awaited first, so that only a refresh can.
	pushes := watchPushes(t, auth, url)
	connect(time.Second)
	for deadline := time.Now().Add(10 * time.Second); pushes() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no push at start while revocations are in force")
		}
	}
	var again *partnerConn
	for attempt := 1; again == nil; attempt++ {
		forgetRevocations(t, auth, url)
		if again, err = tryConnectPartner(url, mecsCreds); err != nil {
			if attempt == 20 {
				t.Fatalf("the node never let the revoked credentials in again: %v", err)
			}
			again = nil // a refresh came in between
		}
	}
	t.Cleanup(again.nc.Close)
	waitRevoked(t, again, 10*time.Second, "a node that forgot the revocations")
	if err := refused(url, mecsCreds); err == nil {
		t.Fatal("the node accepts the revoked credentials after the refresh")
	}
	if err := kept.nc.FlushTimeout(2 * time.Second); err != nil || kept.sawErr(nats.ErrAuthRevoked) {
		t.Fatalf("the DITEP's connection: %v", err)
	}
}

// PushPartners tells the nodes it can reach and says how many confirmed:
// a node that is down does not stop the others being told.
func TestPushPartnersSkipsANodeThatIsDown(t *testing.T) {
	auth, err := OpenAuthority(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := startTrustingNode(t, auth).url
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := auth.PushPartners(ctx, url+",nats://127.0.0.1:1", 5*time.Second)
	if err != nil || n != 1 {
		t.Fatalf("push with one node down: %d nodes, %v; want 1, nil", n, err)
	}
	n, err = auth.PushPartners(ctx, "nats://127.0.0.1:1", 5*time.Second)
	if n != 0 || err == nil || !errors.Is(err, nats.ErrNoServers) {
		t.Fatalf("push with no node up: %d nodes, %v; want 0 and %v", n, err, nats.ErrNoServers)
	}
}

// Given feeds on a node that trusts the authority, with no refresh, when
// a revocation is written while the node is down, then the push fails and
// is tried again: once the node is back (without the revocation, which it
// never received), the retry tells it: the revoked partner, reconnecting,
// is closed or refused.
func TestAClusterFeedServerRetriesAPushThatFailed(t *testing.T) {
	dir := t.TempDir()
	auth, err := OpenAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	node := startTrustingNode(t, auth)
	srv, err := ConnectCluster(t.Context(), dir, node.url, WithAuthorityPoll(20*time.Millisecond),
		WithRevocationRefresh(0), WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	creds := writeCredsWith(t, auth, mecs)
	p := connectPartner(t, node.url, creds) // reconnects as a partner system does

	node.stop()
	offline, err := OpenAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := offline.Revoke(mecs, time.Now()); err != nil || n != 1 {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	time.Sleep(200 * time.Millisecond) // several checks: the push fails
	node.start()
	// The partner may get in before the retry (then it is closed) or after
	// (then refused): either way, in the end it is out and stays out.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if refused(node.url, creds) != nil && !p.nc.IsConnected() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node back without the revocation was never told it (partner connected: %v)", p.nc.IsConnected())
		}
	}
}
