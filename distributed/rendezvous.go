package distributed

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The rendezvous bootstraps a run without MPI (torchrun, srun): rank 0
// listens at MASTER_ADDR:MASTER_PORT, every other rank connects and says
// who it is, and rank 0 hands each the bytes it needs to join the device
// collectives (NCCL's unique id). It carries no collective: gradients and
// statistics go through NCCL. The connections stay open as a watch: when
// a rank's process ends without saying goodbye (killed, crashed), its
// connection closes, and rank 0 tells every other rank which one was lost.

// rdvMagic opens every hello, so that a stray connection is refused.
const rdvMagic = "proxykit-rendezvous-1"

// message kinds on a watch connection after the bootstrap
const (
	rdvBye  = 'b' // this rank is done
	rdvFail = 'f' // this rank failed: text follows
	rdvLost = 'l' // (from rank 0) a rank was lost: text follows
)

// rendezvous is one rank's end of the bootstrap and watch.
type rendezvous struct {
	rank, size int
	ln         net.Listener // rank 0
	peers      []net.Conn   // rank 0: by rank (nil for itself)
	up         net.Conn     // other ranks: to rank 0
	mu         sync.Mutex
	closing    bool
	onLost     func(error)
	lostOnce   sync.Once
}

// rendezvousAt bootstraps rank of size at addr (host:port): rank 0 sends
// payload to every rank, the others return it. Every rank waits at most
// timeout for the others. onLost is called once, from another goroutine,
// if a rank is lost afterwards (its process ended without Close, or it
// called fail).
func rendezvousAt(addr string, rank, size int, payload []byte, timeout time.Duration, onLost func(error)) (*rendezvous, []byte, error) {
	z := &rendezvous{rank: rank, size: size, onLost: onLost}
	deadline := time.Now().Add(timeout)
	if rank == 0 {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("rendezvous address %q: %w", addr, err)
		}
		// listen on every interface: MASTER_ADDR is how the others reach
		// this host, not necessarily one of its own names
		if z.ln, err = net.Listen("tcp", net.JoinHostPort("", port)); err != nil {
			return nil, nil, fmt.Errorf("rank 0: cannot serve the rendezvous on port %s (MASTER_PORT): %w", port, err)
		}
		z.peers = make([]net.Conn, size)
		for got := 1; got < size; {
			if tl, ok := z.ln.(*net.TCPListener); ok {
				tl.SetDeadline(deadline)
			}
			c, err := z.ln.Accept()
			if err != nil {
				missing := []string{}
				for r := 1; r < size; r++ {
					if z.peers[r] == nil {
						missing = append(missing, strconv.Itoa(r))
					}
				}
				z.close()
				return nil, nil, fmt.Errorf("rank 0: rank(s) %s did not reach the rendezvous at port %s within %s: %w",
					strings.Join(missing, ", "), port, timeout, errors.Join(err, ErrTimeout))
			}
			// a rank sends its hello as soon as it connects: a connection
			// that says nothing (a port scanner, a health check) is given
			// up after a quarter of the timeout (10 s at most), not at the
			// rendezvous's deadline
			helloBy := time.Now().Add(min(10*time.Second, timeout/4))
			if deadline.Before(helloBy) {
				helloBy = deadline
			}
			c.SetDeadline(helloBy)
			r, err := readHello(c, size)
			if err == nil && z.peers[r] != nil {
				err = fmt.Errorf("rank %d connected twice", r)
			}
			if err != nil {
				c.Close() // a stray connection: keep waiting for the ranks
				continue
			}
			c.SetDeadline(deadline)
			z.peers[r] = c
			got++
		}
		for r := 1; r < size; r++ {
			if err := writeFrame(z.peers[r], payload); err != nil {
				z.close()
				return nil, nil, fmt.Errorf("rank 0: rendezvous with rank %d: %w", r, err)
			}
			z.peers[r].SetDeadline(time.Time{})
			go z.watchPeer(r)
		}
		return z, payload, nil
	}
	var c net.Conn
	for {
		var err error
		c, err = net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("rank %d: cannot reach rank 0's rendezvous at %s (MASTER_ADDR:MASTER_PORT) within %s: %w",
				rank, addr, timeout, errors.Join(err, ErrTimeout))
		}
		time.Sleep(100 * time.Millisecond) // rank 0 may not listen yet
	}
	c.SetDeadline(deadline)
	hello := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte(rdvMagic), uint32(rank)), uint32(size))
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("rank %d: rendezvous at %s: %w", rank, addr, err)
	}
	got, err := readFrame(bufio.NewReader(c))
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("rank %d: rendezvous at %s: rank 0 did not answer: %w (do all ranks agree on WORLD_SIZE=%d?)", rank, addr, err, size)
	}
	c.SetDeadline(time.Time{})
	z.up = c
	go z.watchUp()
	return z, got, nil
}

// readHello reads and checks a rank's hello.
func readHello(c net.Conn, size int) (int, error) {
	buf := make([]byte, len(rdvMagic)+8)
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, err
	}
	if string(buf[:len(rdvMagic)]) != rdvMagic {
		return 0, fmt.Errorf("not a proxykit rank")
	}
	r, n := int(binary.BigEndian.Uint32(buf[len(rdvMagic):])), int(binary.BigEndian.Uint32(buf[len(rdvMagic)+4:]))
	if n != size || r < 1 || r >= size {
		return 0, fmt.Errorf("rank %d of %d connected to a rendezvous of %d ranks", r, n, size)
	}
	return r, nil
}

// writeFrame writes a length-prefixed message.
func writeFrame(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

// readFrame reads a length-prefixed message (at most 1 MB).
func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 1<<20 {
		return nil, fmt.Errorf("a rendezvous message of %d bytes", size)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}

// lost reports a lost rank once (to onLost) unless this rank is closing.
func (z *rendezvous) lost(err error) {
	z.mu.Lock()
	closing := z.closing
	z.mu.Unlock()
	if closing {
		return
	}
	z.lostOnce.Do(func() {
		if z.onLost != nil {
			z.onLost(err)
		}
	})
}

// watchPeer (rank 0) waits on rank r's connection: a goodbye ends the
// watch, a failure or a closed connection is a lost rank, told to all.
func (z *rendezvous) watchPeer(r int) {
	rd := bufio.NewReader(z.peers[r])
	kind, err := rd.ReadByte()
	var why error
	switch {
	case err == nil && kind == rdvBye:
		return
	case err == nil && kind == rdvFail:
		text, _ := readFrame(rd)
		why = fmt.Errorf("rank %d failed: %s", r, text)
	default:
		why = fmt.Errorf("rank %d's process ended without finishing (killed or crashed; its connection to rank 0 closed)", r)
	}
	z.tell(why, r)
	z.lost(why)
}

// tell sends a lost rank's news to every other rank (rank 0).
func (z *rendezvous) tell(why error, except int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closing {
		return
	}
	for p, c := range z.peers {
		if c != nil && p != except {
			c.Write([]byte{rdvLost})
			writeFrame(c, []byte(why.Error()))
		}
	}
}

// watchUp (other ranks) waits on the connection to rank 0.
func (z *rendezvous) watchUp() {
	rd := bufio.NewReader(z.up)
	kind, err := rd.ReadByte()
	if err == nil && kind == rdvBye {
		return // rank 0 finished
	}
	if err == nil && kind == rdvLost {
		text, _ := readFrame(rd)
		z.lost(errors.New(string(text)))
		return
	}
	z.lost(fmt.Errorf("rank 0's process ended without finishing (killed or crashed; the connection to it closed)"))
}

// fail tells the others that this rank failed with err.
func (z *rendezvous) fail(err error) {
	why := fmt.Errorf("rank %d failed: %v", z.rank, err)
	if z.rank == 0 {
		z.tell(why, 0)
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.up != nil && !z.closing {
		z.up.Write([]byte{rdvFail})
		writeFrame(z.up, []byte(err.Error()))
	}
}

// close says goodbye and closes the connections.
func (z *rendezvous) close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closing {
		return
	}
	z.closing = true
	if z.up != nil {
		z.up.Write([]byte{rdvBye})
		z.up.Close()
	}
	for _, c := range z.peers {
		if c != nil {
			c.Write([]byte{rdvBye})
			c.Close()
		}
	}
	if z.ln != nil {
		z.ln.Close()
	}
}
