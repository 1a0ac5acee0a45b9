// Command pcapaudio writes the RTP payloads of a classic pcap capture
// (Ethernet, IPv4, UDP, RTP) one after the other: raw G.711 audio for
// sipp's rtp_stream action, which sends it in 20 ms packets. bench/run.sh
// turns the capture that ships with sipp into the callers' audio:
//
//	pcapaudio /usr/share/sip-tester/g711a.pcap > pcma.raw
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pcapaudio FILE.pcap > audio.raw")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcapaudio:", err)
		os.Exit(1)
	}
	defer f.Close()
	w := bufio.NewWriter(os.Stdout)
	n, err := extract(bufio.NewReader(f), w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcapaudio:", err)
		os.Exit(1)
	}
	if n == 0 {
		fmt.Fprintln(os.Stderr, "pcapaudio: no RTP packets in", os.Args[1])
		os.Exit(1)
	}
}

// extract copies the payload of every IPv4/UDP/RTP packet and returns how
// many it found.
func extract(r io.Reader, w io.Writer) (int, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("pcap header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return 0, errors.New("not a classic pcap file")
	}
	if link := order.Uint32(hdr[20:]); link != 1 {
		return 0, fmt.Errorf("link type %d, want Ethernet (1)", link)
	}
	n := 0
	var rec [16]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("record header: %w", err)
		}
		pkt := make([]byte, order.Uint32(rec[8:]))
		if _, err := io.ReadFull(r, pkt); err != nil {
			return n, fmt.Errorf("record: %w", err)
		}
		if p := rtpPayload(pkt); p != nil {
			if _, err := w.Write(p); err != nil {
				return n, err
			}
			n++
		}
	}
}

// rtpPayload returns the RTP payload of an Ethernet/IPv4/UDP frame, or nil.
func rtpPayload(frame []byte) []byte {
	const eth = 14
	if len(frame) < eth+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != 17 || len(ip) < ihl+8 {
		return nil
	}
	udp := ip[ihl:]
	rtp := udp[8:]
	if len(rtp) < 12 || rtp[0]>>6 != 2 {
		return nil
	}
	hl := 12 + 4*int(rtp[0]&0x0f)
	if rtp[0]&0x10 != 0 && len(rtp) >= hl+4 { // header extension
		hl += 4 + 4*int(binary.BigEndian.Uint16(rtp[hl+2:]))
	}
	if len(rtp) < hl {
		return nil
	}
	return rtp[hl:]
}
