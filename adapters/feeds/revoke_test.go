package feeds

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// partnerConn is a partner's connection, with the errors the server sent
// it.
type partnerConn struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []error
}

func (p *partnerConn) sawErr(target error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, err := range p.errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// connectPartner dials the feed server with the credentials file at path,
// reconnecting as a partner system would (Dial's default).
func connectPartner(t *testing.T, url, path string) *partnerConn {
	t.Helper()
	p, err := tryConnectPartner(url, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.nc.Close)
	return p
}

// tryConnectPartner is connectPartner for a connection that may be refused: the
// caller closes it.
func tryConnectPartner(url, path string) (*partnerConn, error) {
	p := &partnerConn{}
	record := func(err error) {
		if err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		}
	}
	nc, _, err := Dial(url, path, nats.ReconnectWait(20*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { record(err) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { record(err) }))
	if err != nil {
		return nil, err
	}
	p.nc = nc
	return p, nil
}

// readFeedOnce reads inst's stream information and the last message of a
// case from its feed, as a partner does.
func readFeedOnce(nc *nats.Conn, inst domain.InstitutionID, id domain.CaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, StreamName(inst))
	if err != nil {
		return err
	}
	_, err = stream.GetLastMsgForSubject(ctx, Subject(inst, id))
	return err
}

// writeCredsWith issues credentials with auth and writes them to a file.
func writeCredsWith(t *testing.T, auth *Authority, inst domain.InstitutionID) string {
	t.Helper()
	creds, err := auth.PartnerCredentials(inst, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), Token(inst)+"-*.creds")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(creds); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// refused dials with the credentials at path, without retrying, and
// returns the server's refusal (nil if it accepted them).
func refused(url, path string) error {
	nc, _, err := Dial(url, path, nats.MaxReconnects(0), nats.RetryOnFailedConnect(false))
	if err == nil {
		nc.Close()
		return nil
	}
	return err
}

// Given a feed server with two connected credentials of the children's
// home and one of the DITEP, when the home's credentials are revoked by
// another process (a second Authority on the same directory, as maillage
// partner revoke does offline), then within a bounded wait the server
// closes both connections of the home (User Authentication Revoked) and
// they can no longer read, its old credentials are refused on a new
// connection, credentials issued afterwards work, and the DITEP reads on
// untouched; authority.json holds the revocations, and a server started
// again on the directory still refuses the revoked credentials.
func TestRevokedCredentialsLoseAccessAtOnce(t *testing.T) {
	poll := WithAuthorityPoll(50 * time.Millisecond)
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"), poll)
	r := e.newRelay()
	r.Start()
	id, _ := e.openCase(mecs, ditep)
	e.wait(r)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	url := e.feeds.ClientURL()

	credsA1 := writeCredsWith(t, e.feeds.Authority(), mecs)
	credsA2 := writeCredsWith(t, e.feeds.Authority(), mecs)
	credsB := writeCredsWith(t, e.feeds.Authority(), ditep)
	a1, a2, b := connectPartner(t, url, credsA1), connectPartner(t, url, credsA2), connectPartner(t, url, credsB)
	for _, p := range []struct {
		c    *partnerConn
		inst domain.InstitutionID
	}{{a1, mecs}, {a2, mecs}, {b, ditep}} {
		if err := readFeedOnce(p.c.nc, p.inst, id); err != nil {
			t.Fatalf("%s cannot read its feed before the revocation: %v", p.inst, err)
		}
	}

	other, err := OpenAuthority(filepath.Join(e.dir, "feeds"))
	if err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	n, err := other.Revoke(mecs, revokedAt)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("revoked %d credentials, want 2", n)
	}
	if n, err := other.Revoke(mecs, revokedAt); err != nil || n != 0 {
		t.Fatalf("revoking again: %d revoked, %v; want 0, nil", n, err)
	}

	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for _, a := range []*partnerConn{a1, a2} {
		for a.nc.IsConnected() {
			if time.Now().After(deadline) {
				t.Fatalf("a revoked connection still open %s after the revocation", time.Since(start))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("revoked connections closed %s after the revocation", time.Since(start).Round(time.Millisecond))
	for i, a := range []*partnerConn{a1, a2} {
		if err := readFeedOnce(a.nc, mecs, id); err == nil {
			t.Errorf("revoked connection %d still reads its feed", i+1)
		}
		if !a.sawErr(nats.ErrAuthRevoked) {
			t.Errorf("revoked connection %d: errors %v, want the server's %v", i+1, a.errs, nats.ErrAuthRevoked)
		}
	}
	for _, path := range []string{credsA1, credsA2} {
		if err := refused(url, path); err == nil {
			t.Fatal("revoked credentials accepted on a new connection")
		} else if !errors.Is(err, nats.ErrAuthRevoked) && !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("revoked credentials refused with %v, want a revocation", err)
		}
	}
	if err := readFeedOnce(b.nc, ditep, id); err != nil || !b.nc.IsConnected() {
		t.Fatalf("the DITEP lost its feed with the home's revocation: %v", err)
	}

	// Credentials issued after the revocation, by either authority.
	for _, auth := range []*Authority{e.feeds.Authority(), other} {
		fresh := connectPartner(t, url, writeCredsWith(t, auth, mecs))
		if err := readFeedOnce(fresh.nc, mecs, id); err != nil {
			t.Fatalf("credentials issued after the revocation: %v", err)
		}
	}

	var file authorityFile
	b2, err := os.ReadFile(filepath.Join(e.dir, "feeds", authorityFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b2, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Issued[string(mecs)]) != 4 || len(file.Issued[string(ditep)]) != 1 || len(file.Revocations) != 2 {
		t.Fatalf("authority.json records %d users of the home, %d of the DITEP and %d revocations; want 4, 1, 2",
			len(file.Issued[string(mecs)]), len(file.Issued[string(ditep)]), len(file.Revocations))
	}
	if strings.Contains(string(b2), `"SU`) { // user seeds start with SU

		t.Fatal("authority.json records a user's seed")
	}
	if got := len(other.Revoked(mecs)); got != 2 {
		t.Fatalf("Revoked lists %d users of the home, want 2", got)
	}

	// Started again, the server knows the revocations from authority.json.
	e.feeds.Close()
	e.startFeeds(WithPartnerListen("127.0.0.1:0"), poll)
	url = e.feeds.ClientURL()
	for _, path := range []string{credsA1, credsA2} {
		if err := refused(url, path); err == nil {
			t.Fatal("revoked credentials accepted after a restart")
		}
	}
	if err := refused(url, credsB); err != nil {
		t.Fatalf("the DITEP's credentials refused after a restart: %v", err)
	}
	if err := readFeedOnce(connectPartner(t, url, writeCredsWith(t, e.feeds.Authority(), mecs)).nc, mecs, id); err != nil {
		t.Fatalf("new credentials after a restart: %v", err)
	}
	// The cluster stanza carries them too.
	conf, err := other.ServerConfig(DefaultResolverDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "resolver_preload") {
		t.Fatal("no resolver_preload in the cluster stanza")
	}
}

// Given credentials of an institution, Revoke at a time before they were
// issued (the JWT's issue time is when it was signed) revokes none of
// them, and one at or after it revokes them; expired credentials are
// dropped from authority.json rather than revoked; an empty institution id
// is refused.
func TestRevokeTimes(t *testing.T) {
	dir := t.TempDir()
	auth, err := OpenAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Hour)
	if _, err := auth.PartnerCredentials(mecs, 24*time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.PartnerCredentials(mecs, time.Minute, time.Now().Add(-2*time.Hour)); err != nil { // expired
		t.Fatal(err)
	}
	if n, err := auth.Revoke(mecs, before); err != nil || n != 0 {
		t.Fatalf("revoked before issue: %d, %v; want 0, nil", n, err)
	}
	if n, err := auth.Revoke(mecs, time.Now()); err != nil || n != 1 {
		t.Fatalf("revoked after issue: %d, %v; want 1, nil", n, err)
	}
	reopened, err := OpenAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(reopened.Revoked(mecs)); got != 1 {
		t.Fatalf("%d revoked after reopening, want 1", got)
	}
	if got := len(reopened.issued[string(mecs)]); got != 1 {
		t.Fatalf("%d users of the home recorded, want 1 (the expired one dropped)", got)
	}
	_, accounts, _, err := reopened.accounts()
	if err != nil {
		t.Fatal(err)
	}
	partnersPub, _ := reopened.partners.PublicKey()
	ac, err := jwt.DecodeAccountClaims(accounts[partnersPub])
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Revocations) != 1 {
		t.Fatalf("the PARTNERS account JWT carries %d revocations, want 1", len(ac.Revocations))
	}
	if _, err := auth.Revoke("", time.Now()); err == nil {
		t.Fatal("revoked an empty institution id")
	}
}
