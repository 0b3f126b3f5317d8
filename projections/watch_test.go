package projections

import (
	"context"
	"testing"
)

// A watcher of a case hears of an event appended to the store, and of no
// other case's.
func TestWatchSignalsTheCaseThatChanged(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := mustStore(t)
	r := mustRunner(t, store)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	histories := generated(t, 3, 2, 5)
	a, b := histories[0], histories[1]
	watchA, watchB := r.Watch(ctx, a[0].CaseID), r.Watch(ctx, b[0].CaseID)
	for i := range a {
		a[i].Position = 0
	}
	res, err := store.Append(ctx, 0, a)
	if err != nil {
		t.Fatal(err)
	}
	<-watchA
	if err := r.WaitFor(ctx, res.Position); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watchB:
		t.Fatal("the watcher of another case was signalled")
	default:
	}
}
