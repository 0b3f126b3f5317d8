package projections

import (
	"context"
	"sync"

	"github.com/maillage/maillage/domain"
)

// watchSet is who waits to hear that a case changed: the web view's open
// pages. The runner tells it of every event it applies from the store's
// global order, so an append made by any replica reaches every page.
type watchSet struct {
	mu   sync.Mutex
	subs map[domain.CaseID]map[chan struct{}]struct{}
}

// notify signals the watchers of a case without blocking: a signal not yet
// taken stands for any number of events, since the watcher re-reads.
func (w *watchSet) notify(id domain.CaseID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Watch returns a channel that receives a signal after the read models
// applied one or more new events of the case, until ctx ends. The signal
// says nothing of the events: the watcher reads the case again, as its
// viewer may see it.
func (r *Runner) Watch(ctx context.Context, id domain.CaseID) <-chan struct{} {
	ch := make(chan struct{}, 1)
	w := &r.watch
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[domain.CaseID]map[chan struct{}]struct{}{}
	}
	if w.subs[id] == nil {
		w.subs[id] = map[chan struct{}]struct{}{}
	}
	w.subs[id][ch] = struct{}{}
	w.mu.Unlock()
	go func() {
		<-ctx.Done()
		w.mu.Lock()
		delete(w.subs[id], ch)
		if len(w.subs[id]) == 0 {
			delete(w.subs, id)
		}
		w.mu.Unlock()
	}()
	return ch
}
