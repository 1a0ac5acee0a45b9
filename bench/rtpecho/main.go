// Command rtpecho is the callee's media end in the SIP load benchmark
// (bench/run.sh): it sends every UDP packet it receives back to where it
// came from and counts what it received and sent, so that the loss of each
// direction can be told apart.
//
//	rtpecho -listen 127.0.0.1:40000 -stats /tmp/echo.stats
//
// The sipp callee advertises this address in its SDP instead of running
// sipp -rtp_echo, which is one thread on a socket with the default 208 KiB
// receive buffer: it dropped 12 % of 50,000 packets/s with no Switchboard
// in the path. This one asks for a 4 MiB buffer (capped by
// net.core.rmem_max) and reads with several goroutines.
//
// The stats file is rewritten every 200 ms and at exit (SIGTERM, SIGINT)
// as one line of key=value pairs: in, out, send_errors, sources (distinct
// source addresses seen) and last_ms (Unix milliseconds of the last packet).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type counters struct {
	in, out, sendErrors atomic.Uint64
	last                atomic.Int64 // Unix milliseconds

	mu      sync.Mutex
	sources map[netip.AddrPort]struct{}
}

func (c *counters) line() string {
	c.mu.Lock()
	n := len(c.sources)
	c.mu.Unlock()
	return fmt.Sprintf("in=%d out=%d send_errors=%d sources=%d last_ms=%d\n",
		c.in.Load(), c.out.Load(), c.sendErrors.Load(), n, c.last.Load())
}

// writeStats replaces the stats file atomically so a reader never sees half
// a line.
func (c *counters) writeStats(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.line()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:40000", "UDP address to echo on")
	stats := flag.String("stats", "", "file the counters are written to")
	readers := flag.Int("readers", 2, "goroutines reading the socket")
	rcvbuf := flag.Int("rcvbuf", 32<<20, "socket receive and send buffer, bytes (above net.core.rmem_max when run as root)")
	flag.Parse()

	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(*listen)))
	if err != nil {
		log.Fatalf("rtpecho: %v", err)
	}
	if err := forceReadBuffer(conn, *rcvbuf); err != nil {
		log.Printf("rtpecho: receive buffer: %v", err)
	}
	if err := conn.SetWriteBuffer(*rcvbuf); err != nil {
		log.Printf("rtpecho: send buffer: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	c := &counters{sources: map[netip.AddrPort]struct{}{}}
	var wg sync.WaitGroup
	for range max(*readers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			echo(conn, c)
		}()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if *stats != "" {
				if err := c.writeStats(*stats); err != nil {
					log.Printf("rtpecho: %v", err)
				}
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	conn.Close()
	wg.Wait()
	if *stats != "" {
		if err := c.writeStats(*stats); err != nil {
			log.Printf("rtpecho: %v", err)
		}
	}
	fmt.Print(c.line())
}

// echo returns every packet to its source until the socket is closed.
func echo(conn *net.UDPConn, c *counters) {
	buf := make([]byte, 2048)
	var seen netip.AddrPort
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c.in.Add(1)
		c.last.Store(time.Now().UnixMilli())
		if from != seen { // new source: note it (calls mostly arrive in runs)
			seen = from
			c.mu.Lock()
			c.sources[from] = struct{}{}
			c.mu.Unlock()
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			c.sendErrors.Add(1)
			continue
		}
		c.out.Add(1)
	}
}

// soRcvBufForce is Linux's SO_RCVBUFFORCE: a receive buffer above
// net.core.rmem_max (4 MiB on the project machine), for a root process.
const soRcvBufForce = 33

// forceReadBuffer sizes conn's receive buffer to n bytes, past rmem_max
// where the OS allows it. The echo shares two CPUs with the system under
// test: a deep buffer rides out the moments it does not get one, so that
// what the run counts as lost is the system's loss, not the tool's.
func forceReadBuffer(conn *net.UDPConn, n int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soRcvBufForce, n)
	}); err != nil {
		return err
	}
	if serr != nil {
		return conn.SetReadBuffer(n) // not root, or not Linux: up to rmem_max
	}
	return nil
}
