package feeds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// writeCreds issues credentials for inst and writes them to a file.
func (e *env) writeCreds(inst domain.InstitutionID, validFor time.Duration, now time.Time) string {
	e.t.Helper()
	creds, err := e.feeds.Authority().PartnerCredentials(inst, validFor, now)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.t.TempDir(), Token(inst)+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// dialPartner connects as inst over TCP; the server's asynchronous errors
// (permission violations) arrive on the returned channel.
func (e *env) dialPartner(inst domain.InstitutionID, opts ...nats.Option) (*nats.Conn, <-chan error) {
	e.t.Helper()
	errs := make(chan error, 64)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	nc, got, err := Dial(e.feeds.ClientURL(), e.writeCreds(inst, time.Hour, time.Now()), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	if got != inst {
		e.t.Fatalf("credentials name %q, want %q", got, inst)
	}
	e.t.Cleanup(nc.Close)
	return nc, errs
}

// expectDenied runs action and checks that the server refuses it with a
// permission violation naming what (e.g. `Publish to "$JS.API.STREAM.INFO.`)
// and that action fails.
func expectDenied(t *testing.T, errs <-chan error, what string, action func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- action(ctx) }()
	for {
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
				continue // another refusal, still in flight from an earlier step
			}
			cancel()
			if aerr := <-done; aerr == nil {
				t.Errorf("%s: refused by the server but the call succeeded", what)
			}
			return
		case aerr := <-done:
			if aerr == nil {
				t.Fatalf("%s: allowed", what)
			}
			// A call can fail before the violation arrives (a timeout):
			// keep waiting for the server's word.
			done = nil
		case <-ctx.Done():
			t.Fatalf("%s: no permission violation from the server", what)
		}
	}
}

// Given partner credentials for the children's home (A) and the DITEP (B),
// then A reads its own feed, and B can read A's feed by no JetStream API
// (subscribe, create a consumer, pull from A's consumer, direct get, get a
// message, stream information) and can publish nothing anywhere, its own
// feed included: each refusal is the server's.
func TestPartnerCanReadOnlyItsOwnFeed(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	r := e.startRelay()
	id, _ := e.openCase(mecs, ditep)
	e.observe(id, ditep, domain.CategoryHealth, "Bilan psychologique.")
	e.wait(r)
	feedA, feedB := StreamName(mecs), StreamName(ditep)
	before := lastSeq(t, e, mecs)

	// A reads its feed: stream information, its consumer, a direct get.
	ncA, _ := e.dialPartner(mecs)
	jsA, _ := njs.New(ncA)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streamA, err := jsA.Stream(ctx, feedA)
	if err != nil {
		t.Fatalf("A cannot read its stream information: %v", err)
	}
	if _, err := streamA.GetLastMsgForSubject(ctx, Subject(mecs, id)); err != nil {
		t.Fatalf("A cannot direct-get from its feed: %v", err)
	}
	consA, err := jsA.Consumer(ctx, feedA, PartnerConsumer)
	if err != nil {
		t.Fatalf("A cannot read its consumer: %v", err)
	}
	batch, err := consA.Fetch(5, njs.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("A cannot acknowledge: %v", err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("A pulled %d messages, want 5", n)
	}

	ncB, errs := e.dialPartner(ditep)
	jsB, _ := njs.New(ncB)
	if _, err := jsB.Stream(ctx, feedB); err != nil {
		t.Fatalf("B cannot read its own stream information: %v", err)
	}
	for _, subj := range []string{Subject(mecs, id), Inbox(mecs) + ".>"} {
		expectDenied(t, errs, `Subscription to "`+subj+`"`, func(ctx context.Context) error {
			sub, err := ncB.SubscribeSync(subj)
			if err == nil {
				_, err = sub.NextMsgWithContext(ctx)
			}
			return err
		})
	}
	expectDenied(t, errs, `Publish to "$JS.API.STREAM.INFO.`+feedA+`"`, func(ctx context.Context) error {
		_, err := jsB.Stream(ctx, feedA)
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.CONSUMER.CREATE.`+feedA, func(ctx context.Context) error {
		_, err := jsB.CreateOrUpdateConsumer(ctx, feedA, njs.ConsumerConfig{Durable: "spy", AckPolicy: njs.AckExplicitPolicy})
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.CONSUMER.INFO.`+feedA+`.`+PartnerConsumer+`"`, func(ctx context.Context) error {
		_, err := jsB.Consumer(ctx, feedA, PartnerConsumer)
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.CONSUMER.MSG.NEXT.`+feedA+`.`+PartnerConsumer+`"`, func(ctx context.Context) error {
		_, err := ncB.RequestWithContext(ctx, "$JS.API.CONSUMER.MSG.NEXT."+feedA+"."+PartnerConsumer, []byte(`{"batch":1}`))
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.DIRECT.GET.`+feedA+`"`, func(ctx context.Context) error {
		_, err := ncB.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+feedA, []byte(`{"seq":1}`))
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.DIRECT.GET.`+feedA+`.`+Subject(mecs, id)+`"`, func(ctx context.Context) error {
		_, err := ncB.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+feedA+"."+Subject(mecs, id), nil)
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.STREAM.MSG.GET.`+feedA+`"`, func(ctx context.Context) error {
		_, err := ncB.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+feedA, []byte(`{"seq":1}`))
		return err
	})
	// Publishing: into A's feed, into its own, a consumer of its own (which
	// would deliver where B chooses), a stream of its own.
	for _, subj := range []string{Subject(mecs, id), Subject(ditep, id)} {
		expectDenied(t, errs, `Publish to "`+subj+`"`, func(ctx context.Context) error {
			_, err := jsB.Publish(ctx, subj, []byte("{}"))
			return err
		})
	}
	expectDenied(t, errs, `Publish to "$JS.API.CONSUMER.CREATE.`+feedB, func(ctx context.Context) error {
		_, err := jsB.CreateOrUpdateConsumer(ctx, feedB, njs.ConsumerConfig{Durable: "push", DeliverSubject: Subject(mecs, id)})
		return err
	})
	expectDenied(t, errs, `Publish to "$JS.API.STREAM.CREATE.MINE"`, func(ctx context.Context) error {
		_, err := jsB.CreateStream(ctx, njs.StreamConfig{Name: "MINE", Subjects: []string{"mine.>"}})
		return err
	})
	if after := lastSeq(t, e, mecs); after != before {
		t.Fatalf("A's feed moved from %d to %d messages", before, after)
	}
}

// Given expired credentials, the server refuses the connection.
func TestExpiredCredentialsAreRefused(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	path := e.writeCreds(mecs, time.Hour, time.Now().Add(-2*time.Hour))
	nc, _, err := Dial(e.feeds.ClientURL(), path, nats.MaxReconnects(0), nats.RetryOnFailedConnect(false))
	if err == nil {
		nc.Close()
		t.Fatal("connected with expired credentials")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "expired") && !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("refused with %v, want an expiry or authorization error", err)
	}
}

// Given a partner listener with TLS, a partner that trusts the server's
// certificate connects and reads its stream information; one that does not
// is refused.
func TestPartnerListenerWithTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"), WithPartnerTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	r := e.startRelay()
	e.openCase(mecs)
	e.wait(r)
	if !strings.HasPrefix(e.feeds.ClientURL(), "tls://") {
		t.Fatalf("client URL %s, want tls://", e.feeds.ClientURL())
	}
	nc, _ := e.dialPartner(mecs, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	js, _ := njs.New(nc)
	if _, err := js.Stream(context.Background(), StreamName(mecs)); err != nil {
		t.Fatal(err)
	}
	plain := strings.Replace(e.feeds.ClientURL(), "tls://", "nats://", 1)
	if nc, _, err := Dial(plain, e.writeCreds(mecs, time.Hour, time.Now()), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("connected without trusting the server's certificate")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "maillage-feeds"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
