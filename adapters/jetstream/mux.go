package jetstream

import (
	"context"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// replyMux receives the answers of multi-message requests (batched direct
// gets) on one wildcard subscription, <inbox>.*, created once: subscribing
// and unsubscribing for each request costs about half a millisecond on an
// embedded server, more than the request itself.
type replyMux struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	waiting map[string]*replies
}

// replies are the answers to one request, until it is done.
type replies struct {
	msgs chan *nats.Msg
	done chan struct{}
}

func newReplyMux(nc *nats.Conn) (*replyMux, error) {
	m := &replyMux{prefix: nc.NewInbox(), waiting: make(map[string]*replies)}
	sub, err := nc.Subscribe(m.prefix+".*", m.deliver)
	if err != nil {
		return nil, err
	}
	// The subscription's default limits (512k messages, 64 MB) hold a few
	// hundred full batches.
	m.sub = sub
	return m, nil
}

func (m *replyMux) deliver(msg *nats.Msg) {
	token := msg.Subject[len(m.prefix)+1:]
	m.mu.Lock()
	r := m.waiting[token]
	m.mu.Unlock()
	if r == nil {
		return // an abandoned request
	}
	select {
	case r.msgs <- msg:
	case <-r.done:
	}
}

// directBatchBuffer is how many answers of a batched direct get wait for
// their reader before the subscription's delivery waits for it.
const directBatchBuffer = 256

// open registers a request: its reply subject, its answers (buffered up to
// buffer; the subscription's delivery waits for the request's reader beyond
// that, or until the request is done), and the function to call when done
// with it. A single get asks for a buffer of 1: every read of a cached case
// makes one, and a buffer of 256 was 2 KB to allocate and collect.
func (m *replyMux) open(buffer int) (subject string, msgs <-chan *nats.Msg, closeFn func()) {
	r := &replies{msgs: make(chan *nats.Msg, buffer), done: make(chan struct{})}
	m.mu.Lock()
	m.next++
	token := strconv.FormatUint(m.next, 36)
	m.waiting[token] = r
	m.mu.Unlock()
	return m.prefix + "." + token, r.msgs, func() {
		m.mu.Lock()
		delete(m.waiting, token)
		m.mu.Unlock()
		close(r.done)
	}
}

// receive waits for the next answer.
func receive(ctx context.Context, msgs <-chan *nats.Msg, closed <-chan struct{}) (*nats.Msg, error) {
	select {
	case msg := <-msgs:
		return msg, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-closed:
		return nil, nats.ErrConnectionClosed
	}
}
