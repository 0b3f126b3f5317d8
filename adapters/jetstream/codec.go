package jetstream

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/domain"
)

// Headers of an events message (besides Nats-Msg-Id, the id of its first
// event).
const (
	HeaderCase     = "Maillage-Case"      // the case id
	HeaderFirstSeq = "Maillage-First-Seq" // sequence of the message's first event
	HeaderVersion  = "Maillage-Version"   // sequence of its last event: the case's version after it
	HeaderFormat   = "Maillage-Format"    // encoding of the body
)

// Body formats, named by the Maillage-Format header.
const (
	// FormatJSON is a JSON array of domain.Event, in sequence order, with
	// their position fields zero (the position comes from where the message
	// is stored).
	FormatJSON = "json-events/v1"
	// FormatBinary is a compact binary encoding of the same events (see
	// binary.go), about 20 times faster to decode.
	FormatBinary = "bin-events/v1"
)

// MaxBatch is the most events one Append (one message) may hold: the index of
// an event in its message takes the low 16 bits of its position.
const MaxBatch = 1 << indexBits

const (
	indexBits = 16
	indexMask = 1<<indexBits - 1
	maxSeq    = 1<<(64-indexBits) - 1
)

// EncodePosition returns the position of the event at index (from 0) in the
// message with stream sequence streamSeq: streamSeq<<16 | index.
func EncodePosition(streamSeq uint64, index int) domain.Position {
	return domain.Position(streamSeq<<indexBits | uint64(index)&indexMask)
}

// SplitPosition is the inverse of EncodePosition.
func SplitPosition(p domain.Position) (streamSeq uint64, index int) {
	return uint64(p) >> indexBits, int(uint64(p) & indexMask)
}

// encodeEvents returns the body of the message recording events, in format.
func encodeEvents(format string, events []domain.Event) ([]byte, error) {
	if format == FormatBinary {
		return encodeBinary(events), nil
	}
	stored := make([]domain.Event, len(events))
	copy(stored, events)
	for i := range stored {
		stored[i].Position = 0
	}
	return json.Marshal(stored)
}

// DecodeMsg returns the events recorded by the message with stream sequence
// streamSeq and body data, with their positions set. Other packages reading
// the stream directly (through Store.Conn) use it.
func DecodeMsg(streamSeq uint64, header nats.Header, data []byte) ([]domain.Event, error) {
	if streamSeq == 0 || streamSeq > maxSeq {
		return nil, fmt.Errorf("jetstream: message sequence %d out of range", streamSeq)
	}
	var (
		events []domain.Event
		err    error
	)
	switch f := header.Get(HeaderFormat); f {
	case FormatBinary:
		events, err = decodeBinary(data)
	case FormatJSON:
		err = json.Unmarshal(data, &events)
	default:
		err = fmt.Errorf("unknown format %q", f)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: message %d: %w", streamSeq, err)
	}
	if len(events) == 0 || len(events) > MaxBatch {
		return nil, fmt.Errorf("jetstream: message %d holds %d events", streamSeq, len(events))
	}
	for i := range events {
		events[i].Position = EncodePosition(streamSeq, i)
	}
	return events, nil
}

// msgVersion reads the case version a message leads to from its header.
func msgVersion(header nats.Header) (uint64, error) {
	v, err := strconv.ParseUint(header.Get(HeaderVersion), 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("jetstream: message without a valid %s header", HeaderVersion)
	}
	return v, nil
}
