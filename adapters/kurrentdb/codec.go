package kurrentdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// record is the data of a KurrentDB event: the domain event as JSON, without
// its position (where the event is stored gives it) nor SealedPayload (never
// stored). The payload is kept inline as JSON when JSON encoding leaves its
// bytes as they are (compact JSON, which is what the domain writes), and as
// base64 bytes otherwise: its exact bytes are hashed, so they must come back
// as they were.
type record struct {
	domain.Event
	Position      *struct{}       `json:"position,omitempty"`
	SealedPayload *struct{}       `json:"sealedPayload,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBytes  []byte          `json:"payloadBytes,omitempty"`
}

// metadata is the custom metadata of a KurrentDB event. $correlationId and
// $causationId are the names KurrentDB's system projections read.
type metadata struct {
	CorrelationID uuid.UUID `json:"$correlationId"`
	CausationID   uuid.UUID `json:"$causationId"`
	// FirstSequence is the sequence of the first event of the append: the
	// event's index in its append is Sequence - FirstSequence.
	FirstSequence uint64 `json:"firstSequence"`
	// Attempt identifies the Append call that wrote the event, so that an
	// append the server reports as written can be told from the server's
	// idempotent answer to a retry (see Append).
	Attempt uuid.UUID `json:"attempt"`
}

// encodeEvent returns the KurrentDB event recording e, the event of an append
// starting at sequence first.
func encodeEvent(e domain.Event, first uint64, attempt uuid.UUID) (esdb.EventData, error) {
	r := record{Event: e}
	if stableJSON(e.Payload) {
		r.Payload = e.Payload
	} else {
		r.PayloadBytes = e.Payload
	}
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return esdb.EventData{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	meta, err := json.Marshal(metadata{CorrelationID: e.CorrelationID, CausationID: e.CausationID, FirstSequence: first, Attempt: attempt})
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return esdb.EventData{
		EventID:     e.ID,
		EventType:   string(e.Type),
		ContentType: esdb.ContentTypeJson,
		Data:        bytes.TrimSuffix(data.Bytes(), []byte("\n")),
		Metadata:    meta,
	}, nil
}

// stableJSON reports whether p is JSON that encoding/json writes back byte
// for byte (without HTML escaping): valid and compact.
func stableJSON(p []byte) bool {
	if len(p) == 0 || !json.Valid(p) {
		return false
	}
	var b bytes.Buffer
	return json.Compact(&b, p) == nil && bytes.Equal(b.Bytes(), p)
}

// stored is a recorded event with what its metadata says of the append that
// wrote it.
type stored struct {
	domain.Event
	attempt uuid.UUID
}

// decodeEvent returns the domain event a KurrentDB event holds, with its
// position. It checks that the event is where it says it is: in the stream
// <prefix><its case id>, at the revision of its sequence, with its id.
func decodeEvent(prefix string, rec *esdb.RecordedEvent) (stored, error) {
	var r record
	if err := json.Unmarshal(rec.Data, &r); err != nil {
		return stored{}, corrupt(rec, fmt.Errorf("data: %w", err))
	}
	var m metadata
	if err := json.Unmarshal(rec.UserMetadata, &m); err != nil {
		return stored{}, corrupt(rec, fmt.Errorf("metadata: %w", err))
	}
	e := r.Event
	e.Payload = r.Payload
	if r.PayloadBytes != nil {
		e.Payload = r.PayloadBytes
	}
	switch {
	case rec.StreamID != prefix+e.CaseID.String():
		return stored{}, corrupt(rec, fmt.Errorf("case %s in stream %s", e.CaseID, rec.StreamID))
	case e.ID != rec.EventID:
		return stored{}, corrupt(rec, fmt.Errorf("event %s recorded with id %s", e.ID, rec.EventID))
	case e.Sequence != rec.EventNumber+1:
		return stored{}, corrupt(rec, fmt.Errorf("sequence %d at revision %d", e.Sequence, rec.EventNumber))
	case m.FirstSequence == 0 || m.FirstSequence > e.Sequence:
		return stored{}, corrupt(rec, fmt.Errorf("first sequence %d of its append", m.FirstSequence))
	case rec.Position.Commit == math.MaxUint64:
		return stored{}, fmt.Errorf("kurrentdb: event %s of %s: the server gives no $all position on stream reads (maillage needs EventStoreDB 22.6 or later, or KurrentDB)", rec.EventID, rec.StreamID)
	}
	pos, err := EncodePosition(rec.Position.Commit, int(e.Sequence-m.FirstSequence))
	if err != nil {
		return stored{}, corrupt(rec, err)
	}
	e.Position = pos
	return stored{Event: e, attempt: m.Attempt}, nil
}

func corrupt(rec *esdb.RecordedEvent, err error) error {
	return fmt.Errorf("kurrentdb: event %s at revision %d of %s is not a maillage event: %w", rec.EventID, rec.EventNumber, rec.StreamID, err)
}
