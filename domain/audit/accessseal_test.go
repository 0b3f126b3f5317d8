package audit_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/maillage/maillage/domain/audit"
)

// storedRecord is a record of the access log as stored: its stream
// sequence, subject and body.
type storedRecord struct {
	seq     uint64
	subject string
	data    []byte
}

func accessRecords(from, to uint64) []storedRecord {
	var out []storedRecord
	for seq := from; seq <= to; seq++ {
		out = append(out, storedRecord{seq, fmt.Sprintf("maillage.access.case-%d.professional.mecs-35", seq%3),
			fmt.Appendf(nil, `{"at":"2026-11-30T10:00:%02dZ","kind":"timeline","from":1,"to":%d}`, seq%60, seq)})
	}
	return out
}

// sealAll seals the records in ranges ending at each of ends, as a sealer
// running now and then would.
func sealAll(key ed25519.PrivateKey, records []storedRecord, ends ...uint64) []audit.AccessSeal {
	var seals []audit.AccessSeal
	var prev *audit.AccessSeal
	i := 0
	for _, end := range ends {
		s := audit.NewAccessSeal(prev, records[0].seq)
		for ; i < len(records) && records[i].seq <= end; i++ {
			s.Add(records[i].seq, records[i].subject, records[i].data)
		}
		s.SealedAt = time.Date(2026, 11, 30, 10, len(seals), 0, 0, time.UTC)
		seals = append(seals, audit.SignSeal(key, s))
		prev = &seals[len(seals)-1]
	}
	return seals
}

func checkAccess(seals []audit.AccessSeal, records []storedRecord) audit.AccessReport {
	first := uint64(0)
	if len(records) > 0 {
		first = records[0].seq
	}
	c := audit.NewAccessSealCheck(seals, first)
	for _, r := range records {
		c.Add(r.seq, r.subject, r.data)
	}
	return c.Finish()
}

func TestAccessSeals(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	stored := accessRecords(1, 30)
	seals := sealAll(key, stored, 10, 20, 25) // 26..30 not sealed yet

	type want struct {
		seals, expired int
		verified       uint64
		unsealed       uint64
		breaks         []string // "<kind> <from>-<to>"
	}
	cases := []struct {
		name    string
		records func() []storedRecord
		seals   func() []audit.AccessSeal
		want    want
	}{
		{
			name:    "an untouched log verifies, and what follows the last seal is counted unsealed",
			records: func() []storedRecord { return stored },
			want:    want{seals: 3, verified: 25, unsealed: 5},
		},
		{
			name: "an altered record breaks the range of its seal only",
			records: func() []storedRecord {
				r := append([]storedRecord(nil), stored...)
				r[14].data = []byte(`{"kind":"timeline","purpose":"autre chose"}`)
				return r
			},
			want: want{seals: 3, verified: 25, unsealed: 5, breaks: []string{"digest 11-20"}},
		},
		{
			name:    "a removed record breaks its range",
			records: func() []storedRecord { return append(append([]storedRecord(nil), stored[:4]...), stored[5:]...) },
			want:    want{seals: 3, verified: 24, unsealed: 5, breaks: []string{"digest 1-10"}},
		},
		{
			name: "two records swapped break their range",
			records: func() []storedRecord {
				r := append([]storedRecord(nil), stored...)
				r[21].subject, r[22].subject = r[22].subject, r[21].subject
				r[21].data, r[22].data = r[22].data, r[21].data
				return r
			},
			want: want{seals: 3, verified: 25, unsealed: 5, breaks: []string{"digest 21-25"}},
		},
		{
			name: "a record that was not there when sealed breaks the range",
			records: func() []storedRecord {
				r := append([]storedRecord(nil), stored[:12]...)
				r = append(r, storedRecord{12, "maillage.access.x.family.-", []byte(`{}`)}) // a second record at 12
				return append(r, stored[12:]...)
			},
			want: want{seals: 3, verified: 26, unsealed: 5, breaks: []string{"digest 11-20"}},
		},
		{
			name:    "the last records of a sealed range removed break it",
			records: func() []storedRecord { return stored[:23] },
			want:    want{seals: 3, verified: 23, breaks: []string{"digest 21-25"}},
		},
		{
			name:    "a removed seal breaks the chain of seals",
			records: func() []storedRecord { return stored },
			seals:   func() []audit.AccessSeal { return []audit.AccessSeal{seals[0], seals[2]} },
			want:    want{seals: 2, verified: 15, unsealed: 5, breaks: []string{"seal_chain 21-25"}}, // 11-20 are then under no seal
		},
		{
			name:    "records expired before a seal's range: that seal is not checked, the others are",
			records: func() []storedRecord { return stored[7:] },
			want:    want{seals: 2, expired: 1, verified: 15, unsealed: 5},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := seals
			if c.seals != nil {
				s = c.seals()
			}
			rep := checkAccess(s, c.records())
			var breaks []string
			for _, b := range rep.Breaks {
				breaks = append(breaks, fmt.Sprintf("%s %d-%d", b.Kind, b.From, b.To))
			}
			got := want{seals: rep.Seals, expired: rep.Expired, verified: rep.Verified, unsealed: rep.Unsealed, breaks: breaks}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
			if rep.OK() != (len(c.want.breaks) == 0) {
				t.Fatalf("OK %v with breaks %v", rep.OK(), breaks)
			}
		})
	}
}

func TestAccessSealSignature(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	s := sealAll(key, accessRecords(1, 5), 5)[0]
	if err := s.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(other); err == nil {
		t.Fatal("a seal verifies with another key")
	}
	s.Records++
	if err := s.Verify(pub); err == nil {
		t.Fatal("a seal whose count was changed verifies")
	}
}

// Given heads and seals signed before and after a rotation of the signing
// key, each is checked with the key it names: both keys verify everything,
// the new key alone refuses what the old one signed.
func TestKeysAcrossARotation(t *testing.T) {
	oldPub, oldKey, _ := ed25519.GenerateKey(nil)
	newPub, newKey, _ := ed25519.GenerateKey(nil)
	records := accessRecords(1, 20)
	before := sealAll(oldKey, records, 10)
	after := audit.NewAccessSeal(&before[0], 1)
	for _, r := range records[10:] {
		after.Add(r.seq, r.subject, r.data)
	}
	seals := []audit.AccessSeal{before[0], audit.SignSeal(newKey, after)}
	both, onlyNew := audit.Keys{newPub, oldPub}, audit.Keys{newPub}
	for _, s := range seals {
		if err := both.VerifySeal(s); err != nil {
			t.Fatalf("seal %d-%d with both keys: %v", s.From, s.To, err)
		}
	}
	if err := onlyNew.VerifySeal(seals[0]); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("a seal of the old key with the new key only: %v", err)
	}
	if rep := checkAccess(seals, records); !rep.OK() || rep.Verified != 20 {
		t.Fatalf("the chain of seals across the rotation: %+v", rep)
	}
	h := audit.Sign(oldKey, audit.SignedHead{Version: 3, SignedAt: time.Now()})
	if err := both.VerifyHead(h); err != nil {
		t.Fatal(err)
	}
	if err := onlyNew.VerifyHead(h); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("a head of the old key with the new key only: %v", err)
	}
}
