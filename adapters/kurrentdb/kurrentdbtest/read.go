package kurrentdbtest

import (
	"encoding/binary"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Read implements the Streams service's Read: a read of a stream or of
// $all, or a subscription to $all.
func (d *TestDouble) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	opts := req.GetOptions()
	if opts == nil || opts.GetUuidOption() == nil {
		return status.Error(codes.InvalidArgument, "read: options and uuid option are required")
	}
	stringIDs := opts.GetUuidOption().GetString_() != nil
	filter, err := newFilter(opts.GetFilter())
	if err != nil {
		return err
	}
	_, subscription := opts.GetCountOption().(*api.ReadReq_Options_Subscription)
	switch {
	case subscription && opts.GetAll() != nil:
		return d.subscribe(srv, opts.GetAll(), filter, stringIDs)
	case subscription:
		return status.Error(codes.Unimplemented, "kurrentdbtest: subscriptions to a stream are not implemented")
	case opts.GetStream() != nil:
		if filter != nil {
			return status.Error(codes.InvalidArgument, "read: no filter on a stream read")
		}
		return d.readStream(srv, opts, stringIDs)
	case opts.GetAll() != nil:
		return d.readAll(srv, opts, filter, stringIDs)
	}
	return status.Error(codes.InvalidArgument, "read: neither a stream nor $all")
}

func (d *TestDouble) readStream(srv api.Streams_ReadServer, opts *api.ReadReq_Options, stringIDs bool) error {
	name := opts.GetStream().GetStreamIdentifier().GetStreamName()
	count := opts.GetCount()
	backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	d.mu.Lock()
	recorded := d.streams[string(name)]
	d.mu.Unlock()
	if len(recorded) == 0 {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: name},
		}}})
	}
	var from uint64
	switch r := opts.GetStream().GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *api.ReadReq_Options_StreamOptions_End:
		from = uint64(len(recorded))
		if backwards {
			from = uint64(len(recorded)) - 1
		}
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	default:
		return status.Error(codes.InvalidArgument, "read: no revision option")
	}
	var out []*record
	if backwards {
		for i := min(from, uint64(len(recorded)-1)) + 1; i > 0 && uint64(len(out)) < count; i-- {
			out = append(out, recorded[i-1])
		}
	} else {
		for i := from; i < uint64(len(recorded)) && uint64(len(out)) < count; i++ {
			out = append(out, recorded[i])
		}
	}
	return sendAll(srv, out, stringIDs)
}

func (d *TestDouble) readAll(srv api.Streams_ReadServer, opts *api.ReadReq_Options, filter *filter, stringIDs bool) error {
	count := opts.GetCount()
	backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	d.mu.Lock()
	log, end := d.log, d.end
	d.mu.Unlock()
	var from int // index of the first record to read (forwards), or one past it (backwards)
	switch p := opts.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		from = 0
	case *api.ReadReq_Options_AllOptions_End:
		from = len(log)
	case *api.ReadReq_Options_AllOptions_Position:
		i, err := indexAt(log, end, p.Position.GetCommitPosition(), p.Position.GetPreparePosition())
		if err != nil {
			return err
		}
		from = i
	default:
		return status.Error(codes.InvalidArgument, "read: no $all position")
	}
	var out []*record
	if backwards {
		for i := from; i > 0 && uint64(len(out)) < count; i-- {
			if filter.allows(log[i-1]) {
				out = append(out, log[i-1])
			}
		}
	} else {
		for i := from; i < len(log) && uint64(len(out)) < count; i++ {
			if filter.allows(log[i]) {
				out = append(out, log[i])
			}
		}
	}
	return sendAll(srv, out, stringIDs)
}

// indexAt returns the index of the record at a $all position, or the
// length of the log for its end (end) or beyond. Any other position is in
// the middle of a record, where the log cannot be read from.
func indexAt(log []*record, end, commit, prepare uint64) (int, error) {
	i := sort.Search(len(log), func(i int) bool { return log[i].pos >= commit })
	switch {
	case i < len(log) && log[i].pos == commit && prepare <= commit:
		return i, nil
	case i == len(log) && commit >= end:
		return i, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "invalid position: (%d, %d) is not the position of a record", commit, prepare)
}

func sendAll(srv api.Streams_ReadServer, records []*record, stringIDs bool) error {
	for _, r := range records {
		if err := srv.Send(eventResp(r, stringIDs)); err != nil {
			return err
		}
	}
	return nil
}

// eventResp is a read answer holding one record, with its $all position.
func eventResp(r *record, stringIDs bool) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               toUUID(r.id, stringIDs),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.eventType,
				"content-type": r.contentType,
				"created":      strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

// filter is a server-side filter of $all on stream names or event types.
type filter struct {
	streams    bool // on stream names, else on event types
	prefixes   []string
	regex      string
	checkpoint int // records considered between checkpoints
}

func newFilter(o *api.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	f := &filter{}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch x := o.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		f.streams, expr = true, x.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		expr = x.EventType
	default:
		return nil, status.Error(codes.InvalidArgument, "read: filter on neither stream nor event type")
	}
	f.prefixes, f.regex = expr.GetPrefix(), expr.GetRegex()
	if f.regex != "" {
		return nil, status.Error(codes.Unimplemented, "kurrentdbtest: regular expression filters are not implemented")
	}
	window := 32
	if o.GetMax() > 0 {
		window = int(o.GetMax())
	}
	f.checkpoint = window * max(1, int(o.GetCheckpointIntervalMultiplier()))
	return f, nil
}

// allows reports whether a record passes the filter (nil allows all).
func (f *filter) allows(r *record) bool {
	if f == nil {
		return true
	}
	name := r.eventType
	if f.streams {
		name = r.stream
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func toUUID(id uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

func fromUUID(u *shared.UUID) (uuid.UUID, error) {
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		return uuid.Parse(v.String_)
	}
	return uuid.Nil, errors.New("no id")
}
