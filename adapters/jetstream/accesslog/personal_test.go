package accesslog_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/personal"
)

// Given reads of a case recorded with their purposes, sealed with the
// case's key, when the case is erased, then no purpose of the case is
// readable anywhere (the log's answers, its messages, the server's files),
// a purpose given afterwards is not kept, another case's purposes still
// read, and the log's seals still verify.
func TestTheCaseErasureReachesThePurposesOfItsReads(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(dir), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys, err := casekeys.Open(ctx, store.JetStream(), casekeys.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	log, err := accesslog.Open(ctx, store.JetStream(), accesslog.WithPersonalData(keys))
	if err != nil {
		t.Fatal(err)
	}
	erased, kept := uuid.New(), uuid.New()
	const purpose, later, other = "synthèse sur Léo Martin, fugue du 3 mars", "contrôle après effacement", "préparation de l'audience"
	record := func(id domain.CaseID, purpose string) {
		t.Helper()
		r := domain.AccessRecord{Kind: domain.AccessTimeline, CaseID: id, FromSequence: 1, ToSequence: 9,
			Principal: uuid.New(), Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: purpose}
		if err := log.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	purposes := func(l *accesslog.Log, id domain.CaseID) []string {
		t.Helper()
		got, err := l.Access(ctx, audit.AccessFilter{CaseID: id})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range got {
			out = append(out, r.Purpose)
		}
		return out
	}
	record(erased, purpose)
	record(erased, "")
	record(kept, other)
	if got := fmt.Sprint(purposes(log, erased)); got != fmt.Sprint([]string{purpose, ""}) {
		t.Fatalf("purposes before erasure: %s", got)
	}
	stored := raw(t, store, dir)
	if bytes.Contains(stored, []byte("Léo Martin")) || bytes.Contains(stored, []byte("audience")) {
		t.Fatal("a purpose is stored in clear")
	}
	pub, signing, _ := ed25519.GenerateKey(nil)
	if n, err := log.Seal(ctx, signing); err != nil || n != 3 {
		t.Fatalf("sealed %d records: %v", n, err)
	}

	if _, err := keys.Erase(ctx, erased, personal.Erasure{CaseID: erased, At: time.Now(), Role: domain.RoleAuditor, Reason: "durée de conservation échue"}); err != nil {
		t.Fatal(err)
	}
	record(erased, later)
	if got := fmt.Sprint(purposes(log, erased)); got != fmt.Sprint([]string{personal.Erased, "", personal.Erased}) {
		t.Errorf("purposes after erasure: %s", got)
	}
	if got := purposes(log, kept); len(got) != 1 || got[0] != other {
		t.Errorf("the other case's purposes after erasure: %q", got)
	}
	stored = raw(t, store, dir)
	for _, s := range []string{"Léo Martin", "effacement"} {
		if bytes.Contains(stored, []byte(s)) {
			t.Errorf("%q is in the stream or the server's files", s)
		}
	}
	rep, err := log.VerifySeals(ctx, audit.Keys{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Verified != 3 || rep.Unsealed != 1 {
		t.Fatalf("the log after erasure: %+v", rep)
	}

	// A log opened without the keys never shows a sealed purpose.
	bare, err := accesslog.Open(ctx, store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(purposes(bare, kept)); got != fmt.Sprint([]string{""}) {
		t.Errorf("read without the keys: %s", got)
	}
}

// raw returns every message of the access log's stream and every file of
// the server's data directory.
func raw(t *testing.T, store *jetstream.Store, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	s, err := store.JetStream().Stream(t.Context(), accesslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(m.Data)
		if !bytes.Contains(m.Data, []byte(`"purpose"`)) || bytes.Contains(m.Data, []byte(`"purpose":"maillage:pd:v1:`)) || bytes.Contains(m.Data, []byte(`"purpose":"`+personal.Erased)) {
			continue
		}
		t.Errorf("record %d holds a purpose neither sealed nor erased: %s", seq, m.Data)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed by the running server meanwhile
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		out.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
