package feeds

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// Given a case relayed to three partners, when its personal data is erased,
// then each feed holds nothing of it but an erase notice (a stub of its
// last event), the partner's subscriber receives the notice, and no byte of
// what was relayed is left in the feed server's files; another case is
// untouched. Erasing again changes nothing, and a relay that reads the case
// again from the start (its checkpoint lost), or relays a later event of it,
// publishes nothing more to those feeds.
func TestErasureClearsTheFeeds(t *testing.T) {
	e := newEnv(t, WithPartnerListen("127.0.0.1:0"))
	r := e.startRelay()
	home := e.tail(mecs)
	const secret = "Lucas a parlé de sa sœur Emma-Lou"
	id, _ := e.openCase(mecs, ditep, school)
	e.observe(id, mecs, domain.CategoryDailyLife, secret)
	e.observe(id, ditep, domain.CategoryHealth, secret+" (bilan)")
	other, _ := e.openCase(mecs)
	e.observe(other, mecs, domain.CategoryDailyLife, "Semaine calme.")
	e.wait(r)
	home.until(e, mecs)
	if !bytes.Contains(feedFiles(t, e), []byte("Emma-Lou")) {
		t.Fatal("the feed files do not hold the observation before erasure: the test proves little")
	}
	otherBefore := caseMessages(e, mecs, other)

	if err := r.Erase(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	st, _, err := e.svc.Load(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	checkErased := func(when string) {
		t.Helper()
		for _, inst := range []domain.InstitutionID{mecs, ditep, school} {
			msgs := caseMessages(e, inst, id)
			if len(msgs) != 1 || msgs[0].Kind != KindErase || msgs[0].Sequence != st.Version ||
				msgs[0].View.Visibility != domain.Hidden || msgs[0].View.ChainHash != st.Head || msgs[0].View.Payload != nil {
				t.Fatalf("%s: %s holds %d messages of the erased case (%+v), want one erase notice at %d", when, inst, len(msgs), msgs, st.Version)
			}
		}
		if got := caseMessages(e, mecs, other); len(got) != len(otherBefore) {
			t.Fatalf("%s: another case's messages went from %d to %d", when, len(otherBefore), len(got))
		}
		if bytes.Contains(feedFiles(t, e), []byte("Emma-Lou")) {
			t.Fatalf("%s: the feed server's files still hold the observation", when)
		}
	}
	checkErased("after erasure")
	got := home.until(e, mecs)
	if last := got[len(got)-1]; last.Kind != KindErase || last.CaseID != id || last.Break != nil {
		t.Fatalf("the home's subscriber last got a %s of %s (break %v), want the erase notice", last.Kind, last.CaseID, last.Break)
	}

	if err := r.Erase(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	checkErased("after erasing again")

	// Without personal-data keys the case still takes events here: the
	// relay must not send them to the erased feeds (with keys, nothing
	// more is recorded on an erased case).
	e.observe(id, mecs, domain.CategoryDailyLife, "Après l'effacement.")
	e.observe(other, mecs, domain.CategoryDailyLife, "Retour de week-end.")
	e.wait(r)
	otherBefore = caseMessages(e, mecs, other)
	checkErased("after a later event")

	// The relay starts again from nothing: it reads every case again.
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	js, _ := njs.New(e.feeds.Conn())
	kv, err := js.KeyValue(e.ctx, CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(e.ctx, checkpointKey); err != nil {
		t.Fatal(err)
	}
	again := e.startRelay()
	e.wait(again)
	checkErased("after the relay read everything again")
	e.checkFeed(mecs, other)
}

// caseMessages returns the messages of one case on inst's feed.
func caseMessages(e *env, inst domain.InstitutionID, id domain.CaseID) []feedMsg {
	var out []feedMsg
	for _, m := range e.feed(inst) {
		if m.CaseID == id {
			out = append(out, m)
		}
	}
	return out
}

// feedFiles returns the bytes of every file of the feed server.
func feedFiles(t *testing.T, e *env) []byte {
	t.Helper()
	var all bytes.Buffer
	err := filepath.WalkDir(filepath.Join(e.dir, "feeds"), func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file the running server renamed meanwhile: its bytes are in the renamed one
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		all.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.Bytes()
}

// Given a member that left a case that then moved on, when the case is
// erased, then the erase notice on its feed is a stub of its leaving (the
// last sequence it was sent), not of the case's last event: a former member
// learns nothing of the case after its leaving, not even its version or
// head. A current member's notice is a stub of the case's last event.
func TestAFormerMembersEraseNoticeNamesNothingAfterItsLeaving(t *testing.T) {
	e := newEnv(t)
	r := e.startRelay()
	id, _ := e.openCase(mecs, school)
	e.observe(id, mecs, domain.CategoryDailyLife, "Semaine calme.")
	e.record(id, ase, "", &domain.PartnerLeftPayload{Institution: school, Reason: "changement d'établissement"})
	left := e.lastSequence(id)
	e.observe(id, mecs, domain.CategoryDailyLife, "Retour de week-end.")
	e.observe(id, mecs, domain.CategoryDailyLife, "Rendez-vous chez l'orthophoniste.")
	e.wait(r)
	if err := r.Erase(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	st, events, err := e.svc.Load(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for inst, want := range map[domain.InstitutionID]domain.Event{school: events[left-1], mecs: events[st.Version-1]} {
		msgs := caseMessages(e, inst, id)
		if len(msgs) != 1 || msgs[0].Kind != KindErase {
			t.Fatalf("%s holds %d messages of the erased case, want its erase notice", inst, len(msgs))
		}
		m := msgs[0]
		if m.Sequence != want.Sequence || m.Cause != want.Sequence || m.View.LeafHash != want.LeafHash || m.View.ChainHash != want.ChainHash {
			t.Errorf("%s: erase notice of %d (cause %d, chain %s), want a stub of %d (chain %s)", inst, m.Sequence, m.Cause, m.View.ChainHash, want.Sequence, want.ChainHash)
		}
	}
}
