package kurrentdbtest

import (
	"sort"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subscribe serves a subscription to $all: a confirmation, the records after
// the start position (exclusive) that pass the filter, with a checkpoint
// every filter.checkpoint records considered, a caught-up notice when it
// reaches the end, then new records as they are written, until the client
// leaves or the double stops.
func (d *TestDouble) subscribe(srv api.Streams_ReadServer, all *api.ReadReq_Options_AllOptions, filter *filter, stringIDs bool) error {
	d.mu.Lock()
	next := 0 // index of the next record to consider
	switch p := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
	case *api.ReadReq_Options_AllOptions_End:
		next = len(d.log)
	case *api.ReadReq_Options_AllOptions_Position:
		commit := p.Position.GetCommitPosition()
		next = sort.Search(len(d.log), func(i int) bool { return d.log[i].pos > commit })
	default:
		d.mu.Unlock()
		return status.Error(codes.InvalidArgument, "subscribe: no $all position")
	}
	d.mu.Unlock()
	confirm := &api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()}}}
	if err := srv.Send(confirm); err != nil {
		return err
	}
	considered, caughtUp := 0, false
	for {
		d.mu.Lock()
		pending, changed := d.log[next:], d.changed
		d.mu.Unlock()
		for _, r := range pending {
			next++
			considered++
			if filter.allows(r) {
				if err := srv.Send(eventResp(r, stringIDs)); err != nil {
					return err
				}
			}
			if filter != nil && considered%filter.checkpoint == 0 {
				checkpoint := &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{CommitPosition: r.pos, PreparePosition: r.pos}}}
				if err := srv.Send(checkpoint); err != nil {
					return err
				}
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-srv.Context().Done():
			return status.FromContextError(srv.Context().Err()).Err()
		}
	}
}
