package kurrentdbtest

import (
	"errors"
	"io"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Expected revisions that are not a revision, as the server numbers them.
const (
	noStream     int64 = -1
	anyRevision  int64 = -2
	streamExists int64 = -4
)

// proposed is an event of an append request.
type proposed struct {
	id                     uuid.UUID
	eventType, contentType string
	data, meta             []byte
}

// Append implements the Streams service's Append: the options, then the
// events, then one answer.
func (d *TestDouble) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append: the first message must be the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "append: no stream name")
	}
	var expected int64
	switch r := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		expected = int64(r.Revision)
	case *api.AppendReq_Options_NoStream:
		expected = noStream
	case *api.AppendReq_Options_Any:
		expected = anyRevision
	case *api.AppendReq_Options_StreamExists:
		expected = streamExists
	default:
		return status.Error(codes.InvalidArgument, "append: no expected stream revision")
	}
	var events []proposed
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "append: options sent twice")
		}
		p, err := toProposed(m)
		if err != nil {
			return err
		}
		events = append(events, p)
	}
	return stream.SendAndClose(d.append(name, expected, events))
}

func toProposed(m *api.AppendReq_ProposedMessage) (proposed, error) {
	id, err := fromUUID(m.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "append: event id: %v", err)
	}
	eventType, ok := m.GetMetadata()["type"]
	if !ok {
		return proposed{}, status.Error(codes.InvalidArgument, "append: required metadata property is missing: type")
	}
	contentType, ok := m.GetMetadata()["content-type"]
	if !ok {
		return proposed{}, status.Error(codes.InvalidArgument, "append: required metadata property is missing: content-type")
	}
	return proposed{id: id, eventType: eventType, contentType: contentType, data: m.GetData(), meta: m.GetCustomMetadata()}, nil
}

// append decides and writes an append, atomically.
func (d *TestDouble) append(name string, expected int64, events []proposed) *api.AppendResp {
	d.mu.Lock()
	defer d.mu.Unlock()
	recorded := d.streams[name]
	current := int64(len(recorded)) - 1 // noStream when empty
	switch {
	case expected == anyRevision, expected == current, expected == streamExists && current >= 0:
	case expected >= noStream && expected < current:
		// KurrentDB's idempotency: the same ids at the same place were
		// written by an earlier request; the content is not compared.
		if last, ok := sameIDs(recorded, expected, events); ok {
			return success(int64(last.revision), last.pos)
		}
		return wrongExpectedVersion(expected, current)
	default:
		return wrongExpectedVersion(expected, current)
	}
	if len(events) == 0 {
		if current < 0 {
			return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
				CurrentRevisionOption: &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}},
				PositionOption:        &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}},
			}}}
		}
		last := recorded[current]
		return success(current, last.pos)
	}
	var last *record
	for _, e := range events {
		last = d.writeLocked(name, e.eventType, e.contentType, e.data, e.meta, e.id)
	}
	d.notifyLocked()
	return success(int64(last.revision), last.pos)
}

// sameIDs reports whether the events after revision expected of a stream
// have the ids of the batch, and returns the last of them.
func sameIDs(recorded []*record, expected int64, events []proposed) (*record, bool) {
	start := expected + 1
	if len(events) == 0 || start+int64(len(events)) > int64(len(recorded)) {
		return nil, false
	}
	for i, e := range events {
		if recorded[start+int64(i)].id != e.id {
			return nil, false
		}
	}
	return recorded[start+int64(len(events))-1], true
}

func success(revision int64, pos uint64) *api.AppendResp {
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(revision)},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: pos, PreparePosition: pos,
		}},
	}}}
}

// wrongExpectedVersion fills both generations of fields, as the server does.
func wrongExpectedVersion(expected, current int64) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	empty := &shared.Empty{}
	switch expected {
	case anyRevision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: empty}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: empty}
	case streamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: empty}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: empty}
	case noStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: empty}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: ^uint64(0)}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(expected)}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: uint64(expected)}
	}
	if current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: empty}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: empty}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(current)}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}
