package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/feeds"
)

// Given a data directory with two institutions, credentials issued by
// "partner credentials" and a feed server running on the directory, when
// "partner revoke" revokes the children's home's, then it says in French
// how many were revoked and what a NATS cluster needs, authority.json
// lists their user keys among the revocations (and not the DITEP's), the
// running server closes the home's connection, and a second revocation
// finds nothing left to revoke; the command needs an institution and keys.
func TestPartnerRevoke(t *testing.T) {
	t.Setenv("MAILLAGE_FEEDS_NATS", "")
	ctx := context.Background()
	dir := t.TempDir()
	for _, inst := range []struct{ id, kind, name string }{{"mecs-les-tilleuls", "mecs", "MECS Les Tilleuls"}, {"ditep-la-passerelle", "ditep", "DITEP La Passerelle"}} {
		if err := run(ctx, []string{"admin", "institution", "add", "--data", dir, "--id", inst.id, "--kind", inst.kind, "--name", inst.name, "--departement", "35"}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(ctx, []string{"partner", "revoke", "mecs-les-tilleuls", "--data", dir}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "aucun identifiant n'a été délivré") {
		t.Fatalf("revoke without keys: %v", err)
	}
	creds := func(inst string) string {
		f, err := os.CreateTemp(t.TempDir(), inst+"-*.creds")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := run(ctx, []string{"partner", "credentials", inst, "--data", dir, "--out", f.Name()}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	home1, home2, ditep := creds("mecs-les-tilleuls"), creds("mecs-les-tilleuls"), creds("ditep-la-passerelle")

	srv, err := feeds.StartServer(ctx, filepath.Join(dir, "feeds"), feeds.WithPartnerListen("127.0.0.1:0"),
		feeds.WithAuthorityPoll(50*time.Millisecond), feeds.WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	revoked := make(chan error, 16)
	nc, _, err := feeds.Dial(srv.ClientURL(), home1, nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { revoked <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	if err := run(ctx, []string{"partner", "revoke", "--data", dir}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "préciser l'identifiant de l'institution") {
		t.Fatalf("revoke without an institution: %v", err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"partner", "revoke", "mecs-les-tilleuls", "--data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 identifiants du flux partenaire de mecs-les-tilleuls révoqués",
		"ferme leurs connexions", "Si les flux sont sur un cluster NATS", "partner cluster-config", "--feeds-nats"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("partner revoke said %q, want %q in it", out.String(), want)
		}
	}

	var file struct {
		Revocations map[string]int64 `json:"revocations"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "feeds", "authority.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{home1: true, home2: true, ditep: false} {
		key := credsUser(t, path).Subject
		if _, got := file.Revocations[key]; got != want {
			t.Errorf("%s: revoked in authority.json %t, want %t", filepath.Base(path), got, want)
		}
	}

	select {
	case err := <-revoked:
		if !errors.Is(err, nats.ErrAuthRevoked) {
			t.Fatalf("the home's connection got %v, want %v", err, nats.ErrAuthRevoked)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the running server did not close the revoked connection")
	}

	creds("mecs-les-tilleuls")
	out.Reset()
	if err := run(ctx, []string{"partner", "revoke", "mecs-les-tilleuls", "--data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 identifiant du flux partenaire de mecs-les-tilleuls révoqué ") {
		t.Errorf("partner revoke said %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"partner", "revoke", "mecs-les-tilleuls", "--data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Aucun identifiant du flux partenaire de mecs-les-tilleuls à révoquer") {
		t.Errorf("second revocation said %q", out.String())
	}
}

// credsUser returns the user claims of a credentials file.
func credsUser(t *testing.T, path string) *jwt.UserClaims {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	return uc
}
