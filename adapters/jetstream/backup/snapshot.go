package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Streams are copied with JetStream's own snapshot and restore API
// ($JS.API.STREAM.SNAPSHOT / RESTORE): the server streams a stream's files
// (s2-compressed tar) in chunks the client acknowledges, and takes them
// back the same way. A restored stream is the stream as it was, to the
// byte: its configuration, its sequence numbers (the access log's seals
// name them), its messages' timestamps (the access log's retention counts
// from them), its gaps. nats.go has no client for it; this is that client.

const (
	apiTimeout   = 10 * time.Minute // a snapshot request checks every message first (jsck)
	chunkTimeout = time.Minute      // the server sends or takes a chunk at least this often
	chunkSize    = 256 << 10
)

// apiError is the error of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (code %d, err_code %d)", e.Description, e.Code, e.ErrCode)
}

const errCodeStreamNotFound = 10059

// errNoStream: the stream is not on the server.
var errNoStream = errors.New("stream not found")

// streamState is the part of a stream's state a summary keeps.
type streamState struct {
	Messages uint64 `json:"messages"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// snapshotStream writes stream name's snapshot to w: a stream frame with
// its configuration and state at the snapshot, its chunks, a done frame.
// The server takes the snapshot when asked: what is stored after that is
// not in it. progress is called with the bytes written so far.
func snapshotStream(ctx context.Context, nc *nats.Conn, name string, w *writer, progress func(uint64)) (StreamSummary, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return StreamSummary{}, err
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, 64<<20); err != nil {
		return StreamSummary{}, err
	}
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "no_consumers": true, "jsck": true, "chunk_size": chunkSize})
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	msg, err := nc.RequestWithContext(actx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	cancel()
	if err != nil {
		return StreamSummary{}, fmt.Errorf("snapshot of %s: %w", name, err)
	}
	var resp struct {
		Error  *apiError       `json:"error"`
		Config json.RawMessage `json:"config"`
		State  json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return StreamSummary{}, fmt.Errorf("snapshot of %s: %w", name, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == errCodeStreamNotFound {
			return StreamSummary{}, errNoStream
		}
		return StreamSummary{}, fmt.Errorf("snapshot of %s: %w", name, resp.Error)
	}
	var st streamState
	if err := json.Unmarshal(resp.State, &st); err != nil {
		return StreamSummary{}, fmt.Errorf("snapshot of %s: state: %w", name, err)
	}
	sum := StreamSummary{Name: name, Messages: st.Messages, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq}
	if err := w.json(frameStream, streamStart{Name: name, Config: resp.Config, State: resp.State}); err != nil {
		return sum, err
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, chunkTimeout)
		m, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			return sum, fmt.Errorf("snapshot of %s, after %d bytes: %w", name, sum.Bytes, err)
		}
		if len(m.Data) == 0 {
			if status := m.Header.Get("Status"); status != "" && status != "204" {
				return sum, fmt.Errorf("snapshot of %s, after %d bytes: the server stopped it: %s %s", name, sum.Bytes, status, m.Header.Get("Description"))
			}
			break
		}
		if err := w.frame(frameChunk, m.Data); err != nil {
			return sum, err
		}
		sum.Bytes += uint64(len(m.Data))
		if m.Reply != "" {
			if err := m.Respond(nil); err != nil {
				return sum, err
			}
		}
		if progress != nil {
			progress(sum.Bytes)
		}
	}
	return sum, w.json(frameDone, streamDone{Name: name, Bytes: sum.Bytes})
}

// streamRestore gives a stream's snapshot back to a server, chunk by
// chunk: begin, chunk..., finish.
type streamRestore struct {
	nc      *nats.Conn
	name    string
	deliver string
	want    streamState
}

// beginRestore asks the server to restore a stream from its snapshot's
// configuration (on one replica: the server is a single node) and state.
// The stream must not exist.
func beginRestore(ctx context.Context, nc *nats.Conn, start streamStart) (*streamRestore, error) {
	var cfg map[string]any
	if err := json.Unmarshal(start.Config, &cfg); err != nil {
		return nil, fmt.Errorf("restore of %s: configuration: %w", start.Name, err)
	}
	cfg["num_replicas"] = 1
	delete(cfg, "placement")
	var want streamState
	if err := json.Unmarshal(start.State, &want); err != nil {
		return nil, fmt.Errorf("restore of %s: state: %w", start.Name, err)
	}
	req, err := json.Marshal(map[string]any{"config": cfg, "state": start.State})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, chunkTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(actx, "$JS.API.STREAM.RESTORE."+start.Name, req)
	if err != nil {
		return nil, fmt.Errorf("restore of %s: %w", start.Name, err)
	}
	var resp struct {
		Error          *apiError `json:"error"`
		DeliverSubject string    `json:"deliver_subject"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("restore of %s: %w", start.Name, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("restore of %s: %w", start.Name, resp.Error)
	}
	return &streamRestore{nc: nc, name: start.Name, deliver: resp.DeliverSubject, want: want}, nil
}

// chunk sends one chunk and waits until the server has taken it.
func (r *streamRestore) chunk(ctx context.Context, b []byte) error {
	actx, cancel := context.WithTimeout(ctx, chunkTimeout)
	defer cancel()
	msg, err := r.nc.RequestWithContext(actx, r.deliver, b)
	if err != nil {
		return fmt.Errorf("restore of %s: %w", r.name, err)
	}
	if len(msg.Data) > 0 {
		var resp struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(msg.Data, &resp) == nil && resp.Error != nil {
			return fmt.Errorf("restore of %s: %w", r.name, resp.Error)
		}
	}
	return nil
}

// finish ends the transfer, waits for the stream and checks that it holds
// what the snapshot did.
func (r *streamRestore) finish(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	msg, err := r.nc.RequestWithContext(actx, r.deliver, nil)
	if err != nil {
		return fmt.Errorf("restore of %s: %w", r.name, err)
	}
	var resp struct {
		Error *apiError   `json:"error"`
		State streamState `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("restore of %s: %w", r.name, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("restore of %s: %w", r.name, resp.Error)
	}
	if got := resp.State; got.Messages < r.want.Messages || got.LastSeq < r.want.LastSeq {
		return fmt.Errorf("restore of %s: %d messages up to %d, the snapshot had %d up to %d", r.name, got.Messages, got.LastSeq, r.want.Messages, r.want.LastSeq)
	}
	return nil
}
