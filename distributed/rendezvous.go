package distributed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// The rendezvous bootstraps a run without MPI (torchrun, srun): rank 0
// listens at MASTER_ADDR:MASTER_PORT, every other rank connects and says
// who it is, and rank 0 hands each the bytes it needs to join the device
// collectives (NCCL's unique id). It carries no collective: gradients and
// statistics go through NCCL. The connections stay open as a watch: when
// a rank's process ends without saying goodbye (killed, crashed), its
// connection closes, and rank 0 tells every other rank which one was lost.
//
// Strangers may reach the port (a port scanner, a health check, another
// service, a rank of another job): rank 0 reads every connection's hello
// at once, each in its own goroutine, under the one deadline of the
// rendezvous, so that silent connections cannot hold the ranks back; every
// message in either direction starts with a magic and the protocol's
// version, so that each end can say what the other is when it is not a
// proxykit rank; and a refused rank is told why.

// A rendezvous message: rdvMagic, the version, a kind, the body's length
// (4 bytes, big-endian), the body.
const (
	rdvMagic   = "proxykit"
	rdvVersion = 2
	rdvHead    = len(rdvMagic) + 1 + 1 + 4
	// rdvMaxBody bounds a body: NCCL's id is 128 bytes, a reason a line.
	rdvMaxBody = 1 << 16
	// rdvMaxPending bounds the connections whose hello rank 0 awaits at
	// once; one beyond is closed at once (a rank whose connection closes
	// before any answer tries again).
	rdvMaxPending = 4096
)

// message kinds
const (
	rdvHello   = 'h' // rank → 0: rank, size (4 bytes each)
	rdvWelcome = 'w' // 0 → rank: the payload
	rdvRefuse  = 'r' // 0 → rank: why it was refused
	rdvBye     = 'b' // either way: this rank is done
	rdvFail    = 'f' // rank → 0: this rank failed, text follows
	rdvLost    = 'l' // 0 → rank: a rank was lost, text follows
)

// rdvKinds names the kinds, for messages.
var rdvKinds = map[byte]string{rdvHello: "hello", rdvWelcome: "welcome", rdvRefuse: "refusal", rdvBye: "goodbye", rdvFail: "failure", rdvLost: "lost rank"}

// rdvMsg is one message.
type rdvMsg struct {
	kind byte
	body []byte
}

// encode is m's bytes on the wire.
func (m rdvMsg) encode() []byte {
	b := append([]byte(rdvMagic), rdvVersion, m.kind)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.body)))
	return append(b, m.body...)
}

// writeMsg sends one message.
func writeMsg(w io.Writer, kind byte, body []byte) error {
	_, err := w.Write(rdvMsg{kind, body}.encode())
	return err
}

// strangerError is what a peer that does not speak the rendezvous sent.
type strangerError struct {
	got []byte // its first bytes
}

func (e *strangerError) Error() string { return "it is " + describeStranger(e.got) }

// readMsg reads one message, checking its magic, version, kind and length.
func readMsg(r io.Reader) (rdvMsg, error) {
	var head [rdvHead]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil {
		if n == 0 {
			if errors.Is(err, io.EOF) {
				return rdvMsg{}, io.EOF
			}
			return rdvMsg{}, err
		}
		if !bytes.HasPrefix([]byte(rdvMagic), head[:min(n, len(rdvMagic))]) {
			return rdvMsg{}, &strangerError{head[:n]}
		}
		return rdvMsg{}, fmt.Errorf("a rendezvous message cut short after %d bytes: %w", n, err)
	}
	if string(head[:len(rdvMagic)]) != rdvMagic {
		return rdvMsg{}, &strangerError{head[:]}
	}
	if head[len(rdvMagic)] == '-' { // "proxykit-rendezvous-1"
		return rdvMsg{}, fmt.Errorf("it is an older proxykit (rendezvous version 1) and this rank speaks version %d: every rank must run the same proxykit", rdvVersion)
	}
	if v := head[len(rdvMagic)]; v != rdvVersion {
		return rdvMsg{}, fmt.Errorf("it speaks version %d of proxykit's rendezvous and this rank version %d: every rank must run the same proxykit", v, rdvVersion)
	}
	m := rdvMsg{kind: head[len(rdvMagic)+1]}
	if _, ok := rdvKinds[m.kind]; !ok {
		return rdvMsg{}, fmt.Errorf("a rendezvous message of unknown kind %q", m.kind)
	}
	size := binary.BigEndian.Uint32(head[len(rdvMagic)+2:])
	if size > rdvMaxBody {
		return rdvMsg{}, fmt.Errorf("a rendezvous %s of %d bytes (at most %d)", rdvKinds[m.kind], size, rdvMaxBody)
	}
	m.body = make([]byte, size)
	if _, err := io.ReadFull(r, m.body); err != nil {
		return rdvMsg{}, fmt.Errorf("a rendezvous %s cut short: %w", rdvKinds[m.kind], err)
	}
	return m, nil
}

// describeStranger says what a peer that does not speak the rendezvous
// looks like from its first bytes.
func describeStranger(b []byte) string {
	s := string(b)
	switch {
	case len(s) == 0:
		return "a peer that closed the connection without a word"
	case strings.HasPrefix(s, "HTTP/"):
		return fmt.Sprintf("an HTTP server (it sent %s)", quoteBytes(b))
	case strings.HasPrefix(s, "SSH-"):
		return fmt.Sprintf("an SSH server (it sent %s)", quoteBytes(b))
	case hasAnyPrefix(s, "GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "DELETE ", "PRI * "):
		return fmt.Sprintf("an HTTP client (it sent %s)", quoteBytes(b))
	case len(b) >= 3 && b[0] == 0x16 && b[1] == 0x03:
		return "a TLS peer (it sent a TLS handshake)"
	}
	return fmt.Sprintf("not a proxykit rank (it sent %s)", quoteBytes(b))
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// quoteBytes shows a peer's first bytes on one line: quoted text where
// they are printable, hexadecimal otherwise.
func quoteBytes(b []byte) string {
	b = b[:min(len(b), 32)]
	printable := utf8.Valid(b)
	for _, r := range string(b) {
		if r < 0x20 && r != '\r' && r != '\n' && r != '\t' || r == 0x7f {
			printable = false
		}
	}
	if printable {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("the bytes % x", b)
}

// checkHello reads a hello's rank and size: a rank from 1 of a run of
// size ranks.
func checkHello(m rdvMsg, size int) (int, error) {
	if m.kind != rdvHello || len(m.body) != 8 {
		return 0, fmt.Errorf("a rendezvous %s of %d bytes where a hello of 8 was due", rdvKinds[m.kind], len(m.body))
	}
	r, n := int64(binary.BigEndian.Uint32(m.body)), int64(binary.BigEndian.Uint32(m.body[4:]))
	switch {
	case n != int64(size):
		return 0, fmt.Errorf("it is rank %d of %d ranks, and this rendezvous is of %d ranks: do all ranks agree on the number of ranks (WORLD_SIZE, SLURM_STEP_NUM_TASKS)?", r, n, size)
	case r < 1 || r >= int64(size):
		return 0, fmt.Errorf("it says it is rank %d: ranks other than 0 number 1 to %d", r, size-1)
	}
	return int(r), nil
}

// answer is a rank's side after its hello: rank 0's welcome (its
// payload) or its refusal, or what the peer is if it is not rank 0.
func answer(r io.Reader) ([]byte, error) {
	m, err := readMsg(r)
	if err != nil {
		return nil, err
	}
	switch m.kind {
	case rdvWelcome:
		return m.body, nil
	case rdvRefuse:
		return nil, &refusedError{oneLine(string(m.body))}
	}
	return nil, fmt.Errorf("a rendezvous %s where rank 0's answer was due", rdvKinds[m.kind])
}

// refusedError is rank 0's refusal, as it said it.
type refusedError struct{ why string }

func (e *refusedError) Error() string { return "rank 0 refused this rank: " + e.why }

// rendezvous is one rank's end of the bootstrap and watch.
type rendezvous struct {
	rank, size int
	peers      []net.Conn // rank 0: by rank (nil for itself)
	up         net.Conn   // other ranks: to rank 0
	notice     string     // how rank 0 listens, where that is worth saying
	mu         sync.Mutex
	closing    bool
	onLost     func(error)
	lostOnce   sync.Once
}

// rendezvousAt bootstraps rank of size at addr (host:port): rank 0 sends
// payload to every rank, the others return it. Every rank waits at most
// timeout for the others. onLost is called once, from another goroutine,
// if a rank is lost afterwards (its process ended without close, or it
// called fail).
func rendezvousAt(addr string, rank, size int, payload []byte, timeout time.Duration, onLost func(error)) (*rendezvous, []byte, error) {
	if rank < 0 || size < 2 || rank >= size || size > MaxRanks {
		return nil, nil, fmt.Errorf("rendezvous of rank %d of %d ranks", rank, size)
	}
	if len(payload) > rdvMaxBody {
		return nil, nil, fmt.Errorf("rendezvous: a payload of %d bytes (at most %d)", len(payload), rdvMaxBody)
	}
	z := &rendezvous{rank: rank, size: size, onLost: onLost}
	deadline := time.Now().Add(timeout)
	if rank == 0 {
		if err := z.serve(addr, payload, timeout, deadline); err != nil {
			return nil, nil, err
		}
		return z, payload, nil
	}
	got, err := z.join(addr, timeout, deadline)
	if err != nil {
		return nil, nil, err
	}
	return z, got, nil
}

// listenHost is the address rank 0 listens on for MASTER_ADDR host: host's
// own address when it is one of this machine's, else every interface
// (host is how the others reach this one: a name behind NAT, a
// container's service), with a notice saying why.
func listenHost(host string, deadline time.Time) (listen, notice string) {
	if host == "localhost" {
		return host, ""
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return "", fmt.Sprintf("listening on every interface: MASTER_ADDR %q does not resolve here", host)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	local := map[string]bool{}
	if ifaddrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifaddrs {
			if n, ok := a.(*net.IPNet); ok {
				local[n.IP.String()] = true
			}
		}
	}
	loopbackOnly := false
	for _, ip := range ips {
		switch {
		case ip.IsLoopback() && net.ParseIP(host) != nil:
			return ip.String(), "" // an address literal: the ranks share this host
		case ip.IsLoopback():
			loopbackOnly = true // a name of this host that resolves to 127.0.1.1 here, and elsewhere to its network address
		case local[ip.String()]:
			return ip.String(), ""
		}
	}
	if loopbackOnly {
		return "", fmt.Sprintf("listening on every interface: MASTER_ADDR %q resolves here only to a loopback address, which other hosts cannot reach", host)
	}
	return "", fmt.Sprintf("listening on every interface: MASTER_ADDR %q is not one of this host's addresses (a name behind NAT or a container's service?)", host)
}

// arrival is a connection's hello, read: the rank it is, or why it was
// refused.
type arrival struct {
	c    net.Conn
	rank int
	err  error
}

// serve is rank 0's side: it listens at addr's port, reads every
// connection's hello at once under the one deadline, refuses strangers
// and mistaken ranks (telling those that speak the rendezvous why), and
// once every rank is there sends each the payload.
func (z *rendezvous) serve(addr string, payload []byte, timeout time.Duration, deadline time.Time) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rendezvous address %q: %v", addr, err)
	}
	if _, err := ParsePort(port); err != nil {
		return fmt.Errorf("rendezvous address %q: port %v", addr, err)
	}
	listen, notice := listenHost(host, deadline)
	z.notice = notice
	ln, err := net.Listen("tcp", net.JoinHostPort(listen, port))
	if err != nil {
		return fmt.Errorf("rank 0: cannot serve the rendezvous on port %s (MASTER_PORT): %v", port, oneLine(err.Error()))
	}
	defer ln.Close()
	if tl, ok := ln.(*net.TCPListener); ok {
		tl.SetDeadline(deadline)
	}
	arrivals := make(chan arrival)
	stop := make(chan struct{})
	defer close(stop)
	acceptErr := make(chan error, 1)
	go func() {
		var slots = make(chan struct{}, rdvMaxPending)
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				c.Close() // too many at once: a rank tries again
				continue
			}
			go func() {
				defer func() { <-slots }()
				// a rank says hello as soon as it connects: a connection
				// that says nothing is dropped after a quarter of the
				// timeout (10 s at most), its slot freed
				c.SetDeadline(minTime(deadline, time.Now().Add(min(10*time.Second, timeout/4))))
				a := arrival{c: c}
				var m rdvMsg
				if m, a.err = readMsg(c); a.err == nil {
					a.rank, a.err = checkHello(m, z.size)
				}
				select {
				case arrivals <- a:
				case <-stop:
					c.Close()
				}
			}()
		}
	}()
	z.peers = make([]net.Conn, z.size)
	var refused []string // why connections were refused, for the timeout's message
	silent := 0
	joined := 1
	fail := func(err error) error {
		ln.Close()
		for _, c := range z.peers {
			if c != nil {
				writeMsg(c, rdvRefuse, []byte("the rendezvous failed: "+err.Error()))
				c.Close()
			}
		}
		return err
	}
	for joined < z.size {
		select {
		case a := <-arrivals:
			from := a.c.RemoteAddr().String()
			var stranger *strangerError
			switch {
			case a.err == nil && z.peers[a.rank] != nil:
				why := fmt.Sprintf("rank %d has joined already, from %s", a.rank, z.peers[a.rank].RemoteAddr())
				writeMsg(a.c, rdvRefuse, []byte(why))
				a.c.Close()
				refused = append(refused, fmt.Sprintf("%s (a second rank %d)", from, a.rank))
			case a.err == nil:
				a.c.SetDeadline(deadline)
				z.peers[a.rank] = a.c
				joined++
			case errors.Is(a.err, io.EOF):
				a.c.Close() // connected and closed: a port check
			case isTimeout(a.err):
				a.c.Close()
				silent++
			case errors.As(a.err, &stranger):
				a.c.Close()
				refused = append(refused, fmt.Sprintf("%s (%s)", from, a.err))
			default:
				writeMsg(a.c, rdvRefuse, []byte(a.err.Error()))
				a.c.Close()
				refused = append(refused, fmt.Sprintf("%s (%s)", from, a.err))
			}
		case err := <-acceptErr:
			var missing []string
			for r := 1; r < z.size && len(missing) < 16; r++ {
				if z.peers[r] == nil {
					missing = append(missing, strconv.Itoa(r))
				}
			}
			if z.size-joined > len(missing) {
				missing = append(missing, fmt.Sprintf("and %d more", z.size-joined-len(missing)))
			}
			msg := fmt.Sprintf("rank 0: rank(s) %s did not reach the rendezvous at port %s within %s", strings.Join(missing, ", "), port, timeout)
			if silent > 0 {
				msg += fmt.Sprintf("; %d connection(s) said nothing", silent)
			}
			if len(refused) > 0 {
				msg += "; refused: " + strings.Join(refused[max(0, len(refused)-4):], "; ")
			}
			if !isTimeout(err) {
				return fail(fmt.Errorf("%s: %s", msg, oneLine(err.Error())))
			}
			return fail(fmt.Errorf("%s: %w", msg, ErrTimeout))
		}
	}
	ln.Close() // the ranks are all here: strangers find the port closed
	for r := 1; r < z.size; r++ {
		if err := writeMsg(z.peers[r], rdvWelcome, payload); err != nil {
			z.close()
			return fmt.Errorf("rank 0: rendezvous with rank %d: %v", r, oneLine(err.Error()))
		}
		z.peers[r].SetDeadline(time.Time{})
	}
	for r := 1; r < z.size; r++ {
		go z.watchPeer(r)
	}
	return nil
}

// join is the side of a rank other than 0: it connects to rank 0 (trying
// again until the deadline: rank 0 may not listen yet), says hello and
// waits for rank 0's answer.
func (z *rendezvous) join(addr string, timeout time.Duration, deadline time.Time) ([]byte, error) {
	hello := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(z.rank)), uint32(z.size))
	where := fmt.Sprintf("rank %d: rank 0's rendezvous at %s (MASTER_ADDR:MASTER_PORT)", z.rank, addr)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: cannot connect within %s (%s): %w", where, timeout, oneLine(err.Error()), ErrTimeout)
			}
			time.Sleep(100 * time.Millisecond) // rank 0 may not listen yet
			continue
		}
		c.SetDeadline(deadline)
		if err := writeMsg(c, rdvHello, hello); err != nil {
			c.Close()
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: %v", where, oneLine(err.Error()))
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		got, err := answer(c)
		var stranger *strangerError
		var refused *refusedError
		switch {
		case err == nil:
			c.SetDeadline(time.Time{})
			z.up = c
			go z.watchUp()
			return got, nil
		case errors.As(err, &refused):
			c.Close()
			return nil, fmt.Errorf("rank %d: %v", z.rank, err)
		case errors.As(err, &stranger):
			c.Close()
			return nil, fmt.Errorf("%s: the server there is not a proxykit rank 0: %v", where, err)
		case isTimeout(err):
			c.Close()
			return nil, fmt.Errorf("%s: no answer within %s (rank 0 waits for other ranks, or what listens there is not proxykit; do all ranks agree on the number of ranks, %d?): %w",
				where, timeout, z.size, ErrTimeout)
		case errors.Is(err, io.EOF) || isReset(err):
			// closed without a word: rank 0 had too many connections at
			// once, or a stranger that ends every connection
			c.Close()
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: every connection was closed without an answer for %s (what listens there is not rank 0's rendezvous, or it refuses connections): %w",
					where, timeout, ErrTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		default:
			c.Close()
			return nil, fmt.Errorf("%s: %v", where, oneLine(err.Error()))
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// isTimeout reports a deadline passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, ErrTimeout)
}

// isReset reports a connection the peer reset.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
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
	m, err := readMsg(z.peers[r])
	var why error
	switch {
	case err == nil && m.kind == rdvBye:
		return
	case err == nil && m.kind == rdvFail:
		why = fmt.Errorf("rank %d failed: %s", r, oneLine(string(m.body)))
	case err == nil:
		why = fmt.Errorf("rank %d sent a rendezvous %s where a goodbye was due", r, rdvKinds[m.kind])
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
			writeMsg(c, rdvLost, []byte(why.Error()))
		}
	}
}

// watchUp (other ranks) waits on the connection to rank 0.
func (z *rendezvous) watchUp() {
	m, err := readMsg(z.up)
	switch {
	case err == nil && m.kind == rdvBye:
		return // rank 0 finished
	case err == nil && m.kind == rdvLost:
		z.lost(errors.New(oneLine(string(m.body))))
	case err == nil:
		z.lost(fmt.Errorf("rank 0 sent a rendezvous %s where news or a goodbye was due", rdvKinds[m.kind]))
	default:
		z.lost(fmt.Errorf("rank 0's process ended without finishing (killed or crashed; the connection to it closed)"))
	}
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
		writeMsg(z.up, rdvFail, []byte(oneLine(err.Error())))
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
		writeMsg(z.up, rdvBye, nil)
		z.up.Close()
	}
	for _, c := range z.peers {
		if c != nil {
			writeMsg(c, rdvBye, nil)
			c.Close()
		}
	}
}
