package jetstream

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

func header(format string) nats.Header {
	h := nats.Header{}
	h.Set(HeaderFormat, format)
	return h
}

func TestCodecRoundTrip(t *testing.T) {
	events := storetest.NewEvents(uuid.New(), 41, domain.Hash{7}, 5)
	// Edge cases: zero times, a negative offset, empty strings, no salt, a
	// large sequence and schema version.
	events[1].OccurredAt = time.Time{}
	events[1].Actor = domain.Actor{}
	events[1].Salt = nil
	events[2].RecordedAt = time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.FixedZone("", -4*3600-30*60))
	events[3].Type = "SomethingNew"
	events[3].SchemaVersion = -3
	events[3].Category = ""
	events[4].Payload = []byte(`{"a":"\u00e9\"","b":[1,2.5e3,null]}`)
	for _, format := range []string{FormatBinary, FormatJSON} {
		data, err := encodeEvents(format, events)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMsg(77, header(format), data)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if len(got) != len(events) {
			t.Fatalf("%s: %d events", format, len(got))
		}
		for i := range events {
			if d := storetest.DiffEvent(events[i], got[i]); d != "" {
				t.Fatalf("%s: %s", format, d)
			}
			if got[i].Position != EncodePosition(77, i) {
				t.Fatalf("%s: position %d", format, got[i].Position)
			}
			if got[i].OccurredAt.IsZero() != events[i].OccurredAt.IsZero() {
				t.Fatalf("%s: zero time not kept", format)
			}
		}
		if _, off := got[2].RecordedAt.Zone(); off != -4*3600-30*60 {
			t.Fatalf("%s: offset %d not kept", format, off)
		}
	}
}

func TestCodecBadBodies(t *testing.T) {
	events := storetest.NewEvents(uuid.New(), 0, domain.Hash{}, 3)
	data := encodeBinary(events)
	for n := range len(data) {
		if _, err := DecodeMsg(1, header(FormatBinary), data[:n]); err == nil {
			t.Fatalf("a body cut at %d of %d bytes decoded", n, len(data))
		}
	}
	if _, err := DecodeMsg(1, header(FormatBinary), append(data, 0)); err == nil {
		t.Fatal("a body with a trailing byte decoded")
	}
	if _, err := DecodeMsg(1, header("nope"), data); err == nil {
		t.Fatal("an unknown format decoded")
	}
	if _, err := DecodeMsg(1, header(FormatJSON), []byte(`[]`)); err == nil {
		t.Fatal("an empty message decoded")
	}
	bad := append([]byte{9}, data[1:]...)
	if _, err := DecodeMsg(1, header(FormatBinary), bad); err == nil {
		t.Fatal("an unknown binary version decoded")
	}
}

func FuzzDecodeBinary(f *testing.F) {
	f.Add(encodeBinary(storetest.NewEvents(uuid.New(), 0, domain.Hash{}, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := decodeBinary(data)
		if err != nil {
			return
		}
		again, err := decodeBinary(encodeBinary(events))
		if err != nil || len(again) != len(events) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	events := storetest.NewEvents(uuid.New(), 0, domain.Hash{}, 1)
	for _, format := range []string{FormatBinary, FormatJSON} {
		data, _ := encodeEvents(format, events)
		b.Run(format, func(b *testing.B) {
			b.ReportMetric(float64(len(data)), "bytes")
			for b.Loop() {
				if _, err := DecodeMsg(1, header(format), data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
