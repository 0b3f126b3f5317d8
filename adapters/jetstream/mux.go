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

// open registers a request: its reply subject, its answers, and the function
// to call when done with it.
func (m *replyMux) open() (subject string, msgs <-chan *nats.Msg, closeFn func()) {
	r := &replies{msgs: make(chan *nats.Msg, 256), done: make(chan struct{})}
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
