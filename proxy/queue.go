package proxy

import (
	"sync"
	"sync/atomic"
)

// appState is the mutable state of one app, shared by every table version.
type appState struct {
	name  string
	queue waitQueue
	stats statsWindow
}

// waitQueue is a FIFO of requests waiting for a free instance slot.
//
// A waiter joins, then retries to acquire, then blocks on its channel. A
// request that releases a slot first decrements the instance's in-flight
// count and then, if n > 0, wakes the oldest waiter not yet woken. Both
// sides use sequentially consistent atomics, so a release either is seen by
// the waiter's retry or sees the waiter: no wake-up is lost.
type waitQueue struct {
	n       atomic.Int64 // number of waiters
	mu      sync.Mutex
	waiters []*waiter
}

type waiter struct {
	ch chan struct{} // capacity 1: a pending wake-up
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

func (q *waitQueue) push() *waiter {
	w := waiterPool.Get().(*waiter)
	q.mu.Lock()
	q.waiters = append(q.waiters, w)
	q.n.Add(1)
	q.mu.Unlock()
	return w
}

// remove takes w out of the queue. A wake-up it received but did not use
// is passed on to the next waiter.
func (q *waitQueue) remove(w *waiter) {
	q.mu.Lock()
	for i, x := range q.waiters {
		if x == w {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			q.n.Add(-1)
			break
		}
	}
	q.mu.Unlock()
	select {
	case <-w.ch:
		q.wakeOne()
	default:
	}
	waiterPool.Put(w)
}

// wakeOne wakes the oldest waiter that has no pending wake-up.
func (q *waitQueue) wakeOne() {
	q.mu.Lock()
	for _, w := range q.waiters {
		select {
		case w.ch <- struct{}{}:
			q.mu.Unlock()
			return
		default:
		}
	}
	q.mu.Unlock()
}

// wakeAll wakes every waiter, after the set of instances changed.
func (q *waitQueue) wakeAll() {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	for _, w := range q.waiters {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	q.mu.Unlock()
}
