package swarm

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/time/rate"
)

// Bandwidth caps are applied at the sockets, not through anacrolix's
// upload limiter: its reserve-then-cancel upload loop (v1.61) left a peer
// connection sending nothing for 30 s at a time under a cap, and the
// downloader then fell back to the origin. A shaped connection simply
// blocks in Write (or Read) until the shared token bucket allows the bytes,
// which keeps every connection moving at its share.

// shapedConn applies the up (Write) and down (Read) limiters.
type shapedConn struct {
	net.Conn
	up, down *rate.Limiter
}

func (c shapedConn) Write(p []byte) (int, error) {
	if c.up == nil {
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), c.up.Burst())]
		if err := c.up.WaitN(context.Background(), len(chunk)); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (c shapedConn) Read(p []byte) (int, error) {
	if c.down == nil {
		return c.Conn.Read(p)
	}
	if b := c.down.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.down.WaitN(context.Background(), n)
	}
	return n, err
}

type shapedListener struct {
	net.Listener
	up, down *rate.Limiter
}

func (l shapedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return shapedConn{c, l.up, l.down}, nil
}

type shapedDialer struct {
	d        net.Dialer
	up, down *rate.Limiter
}

func (d *shapedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return shapedConn{c, d.up, d.down}, nil
}

func newLimiter(perSec ByteSize) *rate.Limiter {
	if perSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSec), int(min(max(perSec/16, 64<<10), 1<<20)))
}

func shapedTCP(addr string, up, down *rate.Limiter) (net.Listener, *shapedDialer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for peers on %s: %w", addr, err)
	}
	return shapedListener{ln, up, down}, &shapedDialer{up: up, down: down}, nil
}
