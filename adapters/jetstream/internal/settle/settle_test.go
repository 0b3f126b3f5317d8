package settle

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestRetryWaitsOutASettlingClusterOnly(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 400, ErrorCode: codeNoSuitablePeers, Description: "no suitable peers for placement, peer offline"}
	calls := 0
	v, err := Retry(t.Context(), func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, noPeers
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Fatalf("after two refusals of a settling cluster: %d, %v, %d calls", v, err, calls)
	}

	calls = 0
	if _, err := Retry(t.Context(), func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, context.DeadlineExceeded // a request nobody answered (no meta leader)
		}
		return 1, nil
	}); err != nil || calls != 2 {
		t.Fatalf("an unanswered request: %v after %d calls, want it asked again", err, calls)
	}

	bad := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}
	calls = 0
	if _, err := Retry(t.Context(), func(context.Context) (int, error) { calls++; return 0, bad }); !errors.Is(err, bad) || calls != 1 {
		t.Fatalf("a configuration error: %v after %d calls, want it at once", err, calls)
	}

	calls = 0
	if _, err := Retry(t.Context(), func(context.Context) (int, error) { calls++; return 0, jetstream.ErrJetStreamNotEnabled }); err == nil || calls != 1 {
		t.Fatalf("a server without JetStream: %v after %d calls, want it at once", err, calls)
	}

	ctx, cancel := context.WithCancel(t.Context())
	calls = 0
	_, err = Retry(ctx, func(context.Context) (int, error) {
		calls++
		cancel()
		return 0, noPeers
	})
	if !errors.Is(err, noPeers) || calls != 1 {
		t.Fatalf("a cancelled start: %v after %d calls", err, calls)
	}
}
