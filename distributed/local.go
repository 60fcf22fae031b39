package distributed

import (
	"fmt"
	"sync"
	"time"
)

// MaxLocalRanks bounds the ranks Local makes in one process.
const MaxLocalRanks = 1024

// Local returns the communicators of n ranks in this process (one per
// goroutine), for tests: the same collectives as under MPI, messages passed
// through channels. A wait longer than timeout fails naming the rank
// waited for; Abort on one rank makes every rank's waits fail with its
// error. n lies from 1 to MaxLocalRanks, timeout from a nanosecond to
// MaxTimeout.
func Local(n int, timeout time.Duration) ([]Comm, error) {
	if n < 1 || n > MaxLocalRanks {
		return nil, fmt.Errorf("%d ranks in one process: want 1 to %d", n, MaxLocalRanks)
	}
	if timeout <= 0 || timeout > MaxTimeout {
		return nil, fmt.Errorf("the ranks' timeout %s: want a positive duration of at most %s", timeout, MaxTimeout)
	}
	h := &hub{n: n, timeout: timeout, stop: make(chan struct{}), ch: make([][]chan []byte, n)}
	for i := range h.ch {
		h.ch[i] = make([]chan []byte, n)
		for j := range h.ch[i] {
			h.ch[i][j] = make(chan []byte, 4)
		}
	}
	out := make([]Comm, n)
	for r := range out {
		out[r] = newComm(&localTransport{h: h, r: r})
	}
	return out, nil
}

// hub connects the ranks of one process: ch[from][to] carries messages.
type hub struct {
	n       int
	timeout time.Duration
	ch      [][]chan []byte
	once    sync.Once
	stop    chan struct{}
	err     error // why stop closed
}

type localTransport struct {
	h *hub
	r int
}

func (t *localTransport) rank() int { return t.r }
func (t *localTransport) size() int { return t.h.n }
func (t *localTransport) describe() string {
	return fmt.Sprintf("%d ranks in one process", t.h.n)
}
func (t *localTransport) close() error { return nil }

func (t *localTransport) abort(err error) {
	t.h.once.Do(func() {
		t.h.err = fmt.Errorf("rank %d stopped every rank: %w", t.r, err)
		close(t.h.stop)
	})
}

func (t *localTransport) send(peer int, out []byte, what string) error {
	msg := append([]byte(nil), out...)
	select {
	case t.h.ch[t.r][peer] <- msg:
		return nil
	case <-t.h.stop:
		return fmt.Errorf("rank %d (%s): %w", t.r, what, t.h.err)
	case <-time.After(t.h.timeout):
		return timeoutError(t.r, peer, t.h.timeout, what)
	}
}

func (t *localTransport) recv(peer int, in []byte, what string) error {
	select {
	case msg := <-t.h.ch[peer][t.r]:
		if len(msg) != len(in) {
			return fmt.Errorf("rank %d (%s): %d bytes from rank %d, %d expected: the ranks disagree on the collective", t.r, what, len(msg), peer, len(in))
		}
		copy(in, msg)
		return nil
	case <-t.h.stop:
		return fmt.Errorf("rank %d (%s): %w", t.r, what, t.h.err)
	case <-time.After(t.h.timeout):
		return timeoutError(t.r, peer, t.h.timeout, what)
	}
}

func (t *localTransport) exchange(peer int, out, in []byte, what string) error {
	if err := t.send(peer, out, what); err != nil {
		return err
	}
	return t.recv(peer, in, what)
}
