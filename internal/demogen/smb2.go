package demogen

import (
	"encoding/binary"
	"time"
)

// SMB2 messages (MS-SMB2 2.2) framed for direct TCP (NetBIOS session
// message header), and a client that drives a conversation over a tcpConn.

// SMB2 commands.
const (
	smbNegotiate      = 0x00
	smbSessionSetup   = 0x01
	smbLogoff         = 0x02
	smbTreeConnect    = 0x03
	smbTreeDisconnect = 0x04
	smbCreate         = 0x05
	smbClose          = 0x06
	smbRead           = 0x08
	smbWrite          = 0x09
	smbIoctl          = 0x0b
)

// NT status codes.
const (
	statusOK             = 0x00000000
	statusMoreProcessing = 0xc0000016
)

const (
	fsctlPipeTransceive = 0x0011c017
	dialect302          = 0x0302
	smbMaxRead          = rpcMaxFrag
)

// Share types of a TREE_CONNECT response.
const (
	shareDisk = 1
	sharePipe = 2
)

// fileID is an SMB2 handle: persistent and volatile halves.
type fileID [16]byte

func smb2Header(cmd uint16, status uint32, response bool, msgID uint64, tree uint32, sess uint64, charge, credits uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64)
	binary.LittleEndian.PutUint16(h[6:], charge)
	binary.LittleEndian.PutUint32(h[8:], status)
	binary.LittleEndian.PutUint16(h[12:], cmd)
	binary.LittleEndian.PutUint16(h[14:], credits)
	if response {
		binary.LittleEndian.PutUint32(h[16:], 1)
	}
	binary.LittleEndian.PutUint64(h[24:], msgID)
	binary.LittleEndian.PutUint32(h[32:], 0xfeff) // process id, as Windows sends it
	binary.LittleEndian.PutUint32(h[36:], tree)
	binary.LittleEndian.PutUint64(h[40:], sess)
	return h
}

// nbFrame prefixes a NetBIOS session message header (24-bit length).
func nbFrame(msg []byte) []byte {
	b := make([]byte, 4, 4+len(msg))
	b[1], b[2], b[3] = byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	return append(b, msg...)
}

type le []byte

func (b le) u8(v uint8) le   { return append(b, v) }
func (b le) u16(v uint16) le { return binary.LittleEndian.AppendUint16(b, v) }
func (b le) u32(v uint32) le { return binary.LittleEndian.AppendUint32(b, v) }
func (b le) u64(v uint64) le { return binary.LittleEndian.AppendUint64(b, v) }
func (b le) raw(v []byte) le { return append(b, v...) }

func negotiateReq(clientGUID guid) []byte {
	dialects := []uint16{0x0202, 0x0210, 0x0300, 0x0302}
	b := le{}.u16(36).u16(uint16(len(dialects))).u16(1).u16(0).u32(0x7f).raw(clientGUID[:]).u64(0)
	for _, d := range dialects {
		b = b.u16(d)
	}
	return b
}

func negotiateResp(serverGUID guid, now, boot time.Time, blob []byte) []byte {
	return le{}.u16(65).u16(1).u16(dialect302).u16(0).raw(serverGUID[:]).u32(0x2f).
		u32(8 << 20).u32(8 << 20).u32(8 << 20).u64(filetime(now)).u64(filetime(boot)).
		u16(128).u16(uint16(len(blob))).u32(0).raw(blob)
}

func sessionSetupReq(blob []byte) []byte {
	return le{}.u16(25).u8(0).u8(1).u32(1).u32(0).u16(88).u16(uint16(len(blob))).u64(0).raw(blob)
}

func sessionSetupResp(blob []byte) []byte {
	return le{}.u16(9).u16(0).u16(72).u16(uint16(len(blob))).raw(blob)
}

func treeConnectReq(path string) []byte {
	p := utf16le(path)
	return le{}.u16(9).u16(0).u16(72).u16(uint16(len(p))).raw(p)
}

func treeConnectResp(shareType uint8, access uint32) []byte {
	flags := uint32(0)
	if shareType == sharePipe {
		flags = 0x30 // no caching
	}
	return le{}.u16(16).u8(shareType).u8(0).u32(flags).u32(0).u32(access)
}

// Access masks, dispositions and options used below.
const (
	accessGenericRW  = 0x0012019f // read/write data, attributes, EAs, sync
	accessFileRead   = 0x00120089
	accessDirList    = 0x00100081
	dispOpen         = 1
	dispOverwriteIf  = 5
	optNonDirectory  = 0x00000040
	optDirectory     = 0x00000001
	attrNormal       = 0x80
	attrDirectory    = 0x10
	shareReadWrite   = 0x3
	shareAll         = 0x7
	actionOpened     = 1
	actionCreated    = 2
	maxAccessAdmin   = 0x001f01ff
	maxAccessIPC     = 0x001f01ff
	maxAccessUserDir = 0x001200a9
)

func createReq(name string, access, attrs, share, disp, opts uint32) []byte {
	n := utf16le(name)
	return le{}.u16(57).u8(0).u8(0).u32(2).u64(0).u64(0).u32(access).u32(attrs).u32(share).
		u32(disp).u32(opts).u16(120).u16(uint16(len(n))).u32(0).u32(0).raw(n)
}

func createResp(action uint32, created time.Time, eof uint64, attrs uint32, fid fileID) []byte {
	ft := filetime(created)
	alloc := (eof + 4095) &^ 4095
	return le{}.u16(89).u8(0).u8(0).u32(action).u64(ft).u64(ft).u64(ft).u64(ft).
		u64(alloc).u64(eof).u32(attrs).u32(0).raw(fid[:]).u32(0).u32(0)
}

func closeReq(fid fileID) []byte { return le{}.u16(24).u16(0).u32(0).raw(fid[:]) }

func closeResp() []byte {
	return le{}.u16(60).u16(0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u32(0)
}

func writeReq(fid fileID, off uint64, data []byte) []byte {
	return le{}.u16(49).u16(112).u32(uint32(len(data))).u64(off).raw(fid[:]).
		u32(0).u32(0).u16(0).u16(0).u32(0).raw(data)
}

func writeResp(n int) []byte { return le{}.u16(17).u16(0).u32(uint32(n)).u32(0).u16(0).u16(0) }

func readReq(fid fileID, off uint64, n uint32) []byte {
	return le{}.u16(49).u8(0x50).u8(0).u32(n).u64(off).raw(fid[:]).u32(0).u32(0).u32(0).u16(0).u16(0).u8(0)
}

func readResp(data []byte) []byte {
	return le{}.u16(17).u8(80).u8(0).u32(uint32(len(data))).u32(0).u32(0).raw(data)
}

func ioctlReq(ctl uint32, fid fileID, in []byte, maxOut uint32) []byte {
	return le{}.u16(57).u16(0).u32(ctl).raw(fid[:]).u32(120).u32(uint32(len(in))).u32(0).
		u32(0).u32(0).u32(maxOut).u32(1).u32(0).raw(in)
}

func ioctlResp(ctl uint32, fid fileID, out []byte) []byte {
	return le{}.u16(49).u16(0).u32(ctl).raw(fid[:]).u32(112).u32(0).u32(112).u32(uint32(len(out))).
		u32(0).u32(0).raw(out)
}

func emptyReq() []byte { return le{}.u16(4).u16(0) }

// smbClient drives one SMB2 connection: each call sends a request and
// the server's response with the message IDs, session and tree IDs a real
// pair would use.
type smbClient struct {
	c        *tcpConn
	r        *rng
	msgID    uint64
	sess     uint64
	think    time.Duration // client time between its calls
	serve    time.Duration // server time to answer
	sessKey  uint64        // session id the server assigns
	nextTree uint32
}

// smbCall is one request/response pair.
type smbCall struct {
	cmd      uint16
	tree     uint32
	req      []byte
	status   uint32
	resp     []byte
	respTree uint32 // tree id of the response when it differs (TREE_CONNECT)
}

// do sends the call and returns when its request went out.
func (s *smbClient) do(x smbCall) time.Time {
	charge := uint16(1)
	if x.cmd == smbNegotiate {
		charge = 0
	}
	s.c.t = s.c.t.Add(s.think + time.Duration(s.r.intn(int(s.think/4)+1)))
	at := s.c.t
	req := append(smb2Header(x.cmd, 0, false, s.msgID, x.tree, s.sess, charge, 1), x.req...)
	s.c.send(0, nbFrame(req))
	s.c.turn(s.serve + time.Duration(s.r.intn(int(s.serve/2)+1)))
	tree := x.tree
	if x.respTree != 0 {
		tree = x.respTree
	}
	sess := s.sess
	if x.cmd == smbSessionSetup && sess == 0 {
		sess = s.sessKey
	}
	credits := uint16(1)
	if x.cmd == smbNegotiate || x.cmd == smbSessionSetup {
		credits = 31
	}
	resp := append(smb2Header(x.cmd, x.status, true, s.msgID, tree, sess, charge, credits), x.resp...)
	s.c.send(1, nbFrame(resp))
	s.msgID += uint64(max(charge, 1))
	if x.cmd == smbNegotiate {
		s.msgID = 1
	}
	return at
}

// smbPeer is what a client knows of the server it talks to.
type smbPeer struct {
	ntlm       ntlmServer
	guid       guid
	boot       time.Time
	name       string // NetBIOS name, as \\NAME\share paths use it
	clientGUID guid
}

// account is who authenticates.
type account struct {
	domain, user, workstation string
}

// login negotiates and authenticates with NTLMSSP inside SPNEGO.
func (s *smbClient) login(p smbPeer, a account) {
	s.do(smbCall{cmd: smbNegotiate, req: negotiateReq(p.clientGUID),
		resp: negotiateResp(p.guid, s.c.t, p.boot, spnegoInit(nil))})
	s.sessKey = 0x0000040000000001 | uint64(s.r.u32()&0xffff)<<16
	s.do(smbCall{cmd: smbSessionSetup, req: sessionSetupReq(spnegoInit(ntlmNegotiate())),
		status: statusMoreProcessing,
		resp:   sessionSetupResp(spnegoResp(negAcceptIncomplete, true, ntlmChallenge(p.ntlm, s.c.t, s.r), nil))})
	s.sess = s.sessKey
	auth := ntlmAuthenticate(a.domain, a.user, a.workstation, "cifs/"+p.ntlm.dnsComputer, p.ntlm, s.c.t, s.r)
	s.do(smbCall{cmd: smbSessionSetup, req: sessionSetupReq(spnegoResp(-1, false, auth, ntlmVerifier(0, s.r))),
		resp: sessionSetupResp(spnegoResp(negAcceptCompleted, false, nil, ntlmVerifier(0, s.r)))})
}

// treeConnect connects \\server\share and returns the tree id and when
// the request went out.
func (s *smbClient) treeConnect(path string, shareType uint8, access uint32) (uint32, time.Time) {
	if s.nextTree == 0 {
		s.nextTree = uint32(1 + s.r.intn(8))
	}
	tree := s.nextTree
	s.nextTree++
	at := s.do(smbCall{cmd: smbTreeConnect, req: treeConnectReq(path), resp: treeConnectResp(shareType, access), respTree: tree})
	return tree, at
}

func (s *smbClient) open(tree uint32, name string, access, attrs, share, disp, opts, action uint32, eof uint64) fileID {
	var fid fileID
	s.r.fill(fid[:])
	s.do(smbCall{cmd: smbCreate, tree: tree, req: createReq(name, access, attrs, share, disp, opts),
		resp: createResp(action, s.c.t.Add(-72*time.Hour), eof, attrs, fid)})
	return fid
}

func (s *smbClient) close(tree uint32, fid fileID) {
	s.do(smbCall{cmd: smbClose, tree: tree, req: closeReq(fid), resp: closeResp()})
}

// write writes data in chunks of at most 64 KiB and returns when the
// first write went out.
func (s *smbClient) write(tree uint32, fid fileID, data []byte) time.Time {
	var first time.Time
	for off := 0; off < len(data); {
		k := min(len(data)-off, 65536)
		at := s.do(smbCall{cmd: smbWrite, tree: tree, req: writeReq(fid, uint64(off), data[off:off+k]), resp: writeResp(k)})
		if off == 0 {
			first = at
		}
		off += k
	}
	return first
}

// logoff disconnects the trees and the session; the client then closes
// the connection.
func (s *smbClient) logoff(trees ...uint32) {
	for _, t := range trees {
		s.do(smbCall{cmd: smbTreeDisconnect, tree: t, req: emptyReq(), resp: emptyReq()})
	}
	s.do(smbCall{cmd: smbLogoff, req: emptyReq(), resp: emptyReq()})
	s.c.wait(s.think)
	s.c.close(0)
}

// smbPipe is DCE/RPC over a named pipe: the bind and calls either as
// WRITE then READ (impacket's way) or as FSCTL_PIPE_TRANSCEIVE (Windows').
type smbPipe struct {
	s      *smbClient
	tree   uint32
	fid    fileID
	ioctl  bool
	callID uint32
	name   string
}

func (s *smbClient) openPipe(tree uint32, name string, ioctl bool) *smbPipe {
	fid := s.open(tree, name, accessGenericRW, 0, shareReadWrite, dispOpen, optNonDirectory, actionOpened, 0)
	return &smbPipe{s: s, tree: tree, fid: fid, ioctl: ioctl, callID: 1, name: name}
}

// exchange sends one PDU and reads the PDU that answers it.
func (p *smbPipe) exchange(req, resp []byte) time.Time {
	s := p.s
	if p.ioctl {
		return s.do(smbCall{cmd: smbIoctl, tree: p.tree, req: ioctlReq(fsctlPipeTransceive, p.fid, req, smbMaxRead),
			resp: ioctlResp(fsctlPipeTransceive, p.fid, resp)})
	}
	at := s.do(smbCall{cmd: smbWrite, tree: p.tree, req: writeReq(p.fid, 0, req), resp: writeResp(len(req))})
	s.do(smbCall{cmd: smbRead, tree: p.tree, req: readReq(p.fid, 0, smbMaxRead), resp: readResp(resp)})
	return at
}

func (p *smbPipe) bind(ifc rpcIface) {
	assoc := 0x1000 + p.s.r.u32()&0xffff
	p.exchange(rpcPDU(ptBind, pfcFirst|pfcLast, p.callID, bindBody(ifc, 0), nil, 4),
		rpcPDU(ptBindAck, pfcFirst|pfcLast, p.callID, bindAckBody(`\PIPE\`+p.name, assoc), nil, 4))
	p.callID++
}

// call sends one request and its response, each a single fragment, and
// returns when the request went out.
func (p *smbPipe) call(opnum uint16, req, resp []byte) time.Time {
	q := rpcCallPDUs(ptRequest, p.callID, opnum, req, nil)
	a := rpcCallPDUs(ptResponse, p.callID, 0, resp, nil)
	if len(q) != 1 || len(a) != 1 {
		panic("demogen: pipe calls are single fragments")
	}
	p.callID++
	return p.exchange(q[0], a[0])
}

func (p *smbPipe) close() { p.s.close(p.tree, p.fid) }
