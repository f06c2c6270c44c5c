package replay

import (
	"encoding/binary"
	"net/netip"
	"time"
	"unicode/utf16"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Builders for synthetic captures: Ethernet/IPv4/TCP or UDP frames around
// SMB2, DCE/RPC, NTLMSSP and Kerberos messages laid out after the specs.

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u16le(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// frame builds an Ethernet/IPv4 frame with a TCP (proto 6) or UDP header.
func frame(src, dst netip.AddrPort, proto byte, seq, ack uint32, flags byte, payload []byte) []byte {
	var l4 []byte
	if proto == 6 {
		l4 = join(binary.BigEndian.AppendUint16(nil, src.Port()), binary.BigEndian.AppendUint16(nil, dst.Port()),
			binary.BigEndian.AppendUint32(nil, seq), binary.BigEndian.AppendUint32(nil, ack),
			[]byte{5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0})
	} else {
		l4 = join(binary.BigEndian.AppendUint16(nil, src.Port()), binary.BigEndian.AppendUint16(nil, dst.Port()),
			binary.BigEndian.AppendUint16(nil, uint16(8+len(payload))), []byte{0, 0})
	}
	s, d := src.Addr().As4(), dst.Addr().As4()
	ip := join([]byte{0x45, 0}, binary.BigEndian.AppendUint16(nil, uint16(20+len(l4)+len(payload))),
		[]byte{0, 1, 0x40, 0, 64, proto, 0, 0}, s[:], d[:])
	eth := join(make([]byte, 12), []byte{0x08, 0x00})
	f := join(eth, ip, l4, payload)
	for len(f) < 60 {
		f = append(f, 0) // Ethernet padding, which must not reach the stream
	}
	return f
}

// tcpFlow writes the packets of one connection with correct sequence
// numbers; tests reorder or drop the segments it returns.
type tcpFlow struct {
	cli, srv   netip.AddrPort
	cseq, sseq uint32
	t          time.Time
	pkts       []Packet
}

func newFlow(cli, srv string, t time.Time) *tcpFlow {
	f := &tcpFlow{cli: netip.MustParseAddrPort(cli), srv: netip.MustParseAddrPort(srv), cseq: 1000, sseq: 5000, t: t}
	f.add(frame(f.cli, f.srv, 6, f.cseq, 0, pkthdr.TCPSyn, nil))
	f.add(frame(f.srv, f.cli, 6, f.sseq, f.cseq+1, pkthdr.TCPSyn|pkthdr.TCPAck, nil))
	f.cseq++
	f.sseq++
	return f
}

func (f *tcpFlow) add(b []byte) {
	f.t = f.t.Add(time.Millisecond)
	f.pkts = append(f.pkts, Packet{Timestamp: f.t, LinkType: pkthdr.LinkEthernet, Data: b, OrigLen: len(b)})
}

// send writes payload from the client (toServer) or the server, cut into
// segments of at most mss bytes; it returns the indexes of the packets.
func (f *tcpFlow) send(toServer bool, payload []byte, mss int) []int {
	var idx []int
	for len(payload) > 0 {
		n := min(mss, len(payload))
		if toServer {
			f.add(frame(f.cli, f.srv, 6, f.cseq, f.sseq, pkthdr.TCPAck|pkthdr.TCPPsh, payload[:n]))
			f.cseq += uint32(n)
		} else {
			f.add(frame(f.srv, f.cli, 6, f.sseq, f.cseq, pkthdr.TCPAck|pkthdr.TCPPsh, payload[:n]))
			f.sseq += uint32(n)
		}
		idx = append(idx, len(f.pkts)-1)
		payload = payload[n:]
	}
	return idx
}

func nb(msg []byte) []byte {
	return join([]byte{0, byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg)
}

func smb2(cmd uint16, resp bool, status uint32, msgID uint64, tree uint32, sess uint64, body []byte) []byte {
	flags := uint32(0)
	if resp {
		flags = smbrpc.SMB2FlagResponse
	}
	return join([]byte{0xfe, 'S', 'M', 'B'}, le16(64), le16(1), le32(status), le16(cmd), le16(1),
		le32(flags), le32(0), le64(msgID), le32(0), le32(tree), le64(sess), make([]byte, 16), body)
}

func ntlmAuth(domain, user, ws string) []byte {
	d, u, w := u16le(domain), u16le(user), u16le(ws)
	nt := []byte{1, 2, 3, 4}
	off := uint32(72)
	field := func(b []byte) []byte {
		r := join(le16(uint16(len(b))), le16(uint16(len(b))), le32(off))
		off += uint32(len(b))
		return r
	}
	lm, ntf, df, uf, wf, kf := field(nil), field(nt), field(d), field(u), field(w), field(nil)
	return join([]byte("NTLMSSP\x00"), le32(3), lm, ntf, df, uf, wf, kf, le32(0xe2088215), make([]byte, 8), nt, d, u, w)
}

func sessionSetup(blob []byte) []byte {
	return join(le16(25), []byte{0, 1}, le32(1), le32(0), le16(64+24), le16(uint16(len(blob))), le64(0), blob)
}

func treeConnect(path string) []byte {
	p := u16le(path)
	return join(le16(9), le16(0), le16(72), le16(uint16(len(p))), p)
}

func treeConnectResp(shareType byte) []byte {
	return join(le16(16), []byte{shareType, 0}, le32(0), le32(0), le32(0x1f01ff))
}

func create(name string) []byte {
	n := u16le(name)
	return join(le16(57), []byte{0, 0}, le32(2), le64(0), le64(0), le32(0x12019f), le32(0x80), le32(7), le32(5), le32(0),
		le16(120), le16(uint16(len(n))), le32(0), le32(0), n)
}

func createResp(fid smbrpc.FileID) []byte {
	return join(le16(89), []byte{0, 0}, le32(2), make([]byte, 32), le64(0), le64(0), le32(0x80), le32(0), fid[:], le32(0), le32(0))
}

func write(fid smbrpc.FileID, off uint64, data []byte) []byte {
	return join(le16(49), le16(112), le32(uint32(len(data))), le64(off), fid[:], le32(0), le32(0), le16(0), le16(0), le32(0), data)
}

func closeReq(fid smbrpc.FileID) []byte { return join(le16(24), le16(0), le32(0), fid[:]) }

func ioctl(fid smbrpc.FileID, in []byte) []byte {
	return join(le16(57), le16(0), le32(smbrpc.FsctlPipeTransceive), fid[:], le32(120), le32(uint32(len(in))), le32(0),
		le32(0), le32(0), le32(4280), le32(1), le32(0), in)
}

func ioctlResp(fid smbrpc.FileID, out []byte) []byte {
	return join(le16(49), le16(0), le32(smbrpc.FsctlPipeTransceive), fid[:], le32(112), le32(0), le32(112), le32(uint32(len(out))),
		le32(0), le32(0), out)
}

func rpcPDU(ptype, flags byte, callID uint32, body []byte) []byte {
	return join([]byte{5, 0, ptype, flags, 0x10, 0, 0, 0}, le16(uint16(16+len(body))), le16(0), le32(callID), body)
}

func rpcBind(callID uint32, iface smbrpc.UUID, ver uint16) []byte {
	ndr := smbrpc.MustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	return rpcPDU(smbrpc.PTBind, 3, callID, join(le16(4280), le16(4280), le32(0), []byte{1, 0, 0, 0},
		le16(0), []byte{1, 0}, iface[:], le16(ver), le16(0), ndr[:], le32(2)))
}

func rpcRequest(callID uint32, flags byte, opnum uint16, stub []byte) []byte {
	return rpcPDU(smbrpc.PTRequest, flags, callID, join(le32(uint32(len(stub))), le16(0), le16(opnum), stub))
}

func rpcResponse(callID uint32, stub []byte) []byte {
	return rpcPDU(smbrpc.PTResponse, 3, callID, join(le32(uint32(len(stub))), le16(0), []byte{0, 0}, stub))
}

// sliceSource replays built packets.
type sliceSource struct {
	pkts []Packet
	i    int
}

func (s *sliceSource) Next() (Packet, error) {
	if s.i >= len(s.pkts) {
		return Packet{}, errEOF
	}
	s.i++
	return s.pkts[s.i-1], nil
}

// Kerberos builders (DER).
func mkder(tag byte, content ...[]byte) []byte {
	c := join(content...)
	n := len(c)
	switch {
	case n < 0x80:
		return join([]byte{tag, byte(n)}, c)
	case n < 0x100:
		return join([]byte{tag, 0x81, byte(n)}, c)
	}
	return join([]byte{tag, 0x82, byte(n >> 8), byte(n)}, c)
}

func krbPrincipal(parts ...string) []byte {
	var names []byte
	for _, p := range parts {
		names = append(names, mkder(0x1b, []byte(p))...)
	}
	return mkder(0x30, mkder(0xa0, mkder(0x02, []byte{1})), mkder(0xa1, mkder(0x30, names)))
}

func krbTicket(realm string, sname ...string) []byte {
	return mkder(0x61, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x1b, []byte(realm))),
		mkder(0xa2, krbPrincipal(sname...)), mkder(0xa3, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{1}))))))
}

func krbAPReq(realm string, sname ...string) []byte {
	return mkder(0x6e, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x02, []byte{14})),
		mkder(0xa2, mkder(0x03, []byte{0, 0, 0, 0, 0})), mkder(0xa3, krbTicket(realm, sname...)),
		mkder(0xa4, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{2}))))))
}

func krbRep(crealm, cname, realm string, sname ...string) []byte {
	return mkder(0x6d, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x02, []byte{13})),
		mkder(0xa3, mkder(0x1b, []byte(crealm))), mkder(0xa4, krbPrincipal(cname)), mkder(0xa5, krbTicket(realm, sname...)),
		mkder(0xa6, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{3}))))))
}

func gssKrb(apreq []byte) []byte {
	oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
	inner := mkder(0x60, oid, []byte{0x01, 0x00}, apreq)
	return mkder(0x60, []byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02},
		mkder(0xa0, mkder(0x30, mkder(0xa0, mkder(0x30, oid)), mkder(0xa2, mkder(0x04, inner)))))
}
