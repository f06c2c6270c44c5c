package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Bounds on one SMB connection.
const (
	maxPending  = 4096
	maxFiles    = 4096
	maxTrees    = 1024
	maxSessions = 1024
	maxPipeText = 4096 // bytes of a raw pipe's data shown as a command
)

var allOnes = smbrpc.FileID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

type smbSession struct {
	acct     account
	lastTree string
	enc      *encState
	smb3     *smb3Sess // with secrets: the session's SMB3 decryption
}

// encState aggregates the SMB3-encrypted messages of one session into one
// operation.
type encState struct {
	first, last time.Time
	msgs        int
	bytes       int64
}

type smbTree struct {
	path  string // \\server\share
	share string // upper-case share name
	pipe  bool
}

func (t *smbTree) admin() bool {
	return t != nil && strings.HasSuffix(t.share, "$") && t.share != "IPC$"
}

type smbReq struct {
	cmd    uint16
	ts     time.Time
	sess   uint64
	tree   uint32
	path   string // tree connect
	name   string // create
	fid    smbrpc.FileID
	offset uint64
	acct   account
	acctOK bool
	// CREATE options; SET_INFO: the delete disposition set (dispose) and
	// its value (deletes).
	options          uint32
	dispose, deletes bool
}

// content follows the bytes of a file in one direction to hash them when
// every byte was seen in order.
type content struct {
	bytes      int64
	next       uint64
	h          hash.Hash
	contiguous bool
	started    bool
	head       []byte // the first bytes, in order (maxOutputText at most)
	first      time.Time
	last       time.Time
}

func (c *content) add(off uint64, data []byte, complete bool, ts time.Time) {
	if !c.started {
		c.started, c.contiguous, c.first = true, off == 0, ts
		c.h = sha256.New()
	}
	c.last = ts
	c.bytes += int64(len(data))
	switch {
	case !c.contiguous:
	case off == c.next && complete:
		c.h.Write(data)
		if n := maxOutputText - len(c.head); n > 0 {
			c.head = append(c.head, data[:min(n, len(data))]...)
		}
		c.next += uint64(len(data))
	case off+uint64(len(data)) <= c.next:
		// the same bytes again (a retried write): nothing new
	default:
		c.contiguous = false
	}
}

type smbFile struct {
	id     smbrpc.FileID
	name   string
	tree   *smbTree
	sess   uint64
	opened time.Time
	last   time.Time
	action uint32
	eof    uint64
	lossy  bool // a TCP gap hit the connection while the file was open
	// deleting: the file goes when this handle closes (opened with
	// delete-on-close, or its delete disposition set).
	deleting bool

	w, r content

	smb1    bool
	pipe    bool
	decided bool
	smb3    bool // opened or used by messages of a decrypted SMB3 transform
	rpc     *rpcAssoc
	text    [2][]byte
	rawN    [2]int64
	io      pipeIO
}

// smbConn follows one SMB connection (SMB1 or SMB2/3).
type smbConn struct {
	c        *conn
	decided  bool
	flip     bool
	cli, srv netip.AddrPort
	nbName   string // NetBIOS calling name from a 139 session request

	sessions map[uint64]*smbSession
	trees    map[uint32]*smbTree
	files    map[smbrpc.FileID]*smbFile
	pending  map[uint64]*smbReq
	lastFID  smbrpc.FileID // the handle of the newest CREATE, for related compound requests
	p        *Pipeline
	enc3     *smb3Conn // with secrets only: SMB3 decryption state
}

func newSMBConn(c *conn) *smbConn {
	return &smbConn{
		c: c, cli: c.client, srv: c.server,
		sessions: make(map[uint64]*smbSession),
		trees:    make(map[uint32]*smbTree),
		files:    make(map[smbrpc.FileID]*smbFile),
		pending:  make(map[uint64]*smbReq),
	}
}

func (s *smbConn) transport(smb1 bool) string {
	if smb1 {
		return "smb1"
	}
	return "smb2"
}

// orient fixes client and server from the first message whose direction
// is known from its content (a request goes client to server).
func (s *smbConn) orient(dir int, response bool) int {
	if !s.decided {
		s.decided = true
		if (dir == 0) == response {
			s.flip = true
			s.cli, s.srv = s.srv, s.cli
		}
	}
	if s.flip {
		return 1 - dir
	}
	return dir
}

func (s *smbConn) session(id uint64) *smbSession {
	ss := s.sessions[id]
	if ss == nil {
		if len(s.sessions) >= maxSessions {
			clear(s.sessions)
		}
		ss = &smbSession{}
		s.sessions[id] = ss
	}
	return ss
}

// sessAcct is the account of a session; when its setup was not captured,
// the Kerberos exchanges of the client may still name it.
func (s *smbConn) sessAcct(id uint64, tree *smbTree) account {
	if ss := s.sessions[id]; ss != nil && ss.acct.known() {
		return ss.acct
	}
	if tree != nil && s.p != nil {
		host := strings.TrimPrefix(tree.path, `\\`)
		host, _, _ = strings.Cut(host, `\`)
		if pr, ok := s.p.kerberosClient(s.cli.Addr(), "cifs/"+host); ok {
			return account{user: pr.name, domain: pr.realm, auth: "kerberos", service: "cifs/" + host, via: "kdc"}
		}
	}
	return account{}
}

func (s *smbConn) frame(p *Pipeline, dir int, msg []byte, ts time.Time) {
	s.p = p
	if s.enc3 == nil && (p.cfg.Secrets.Len() > 0 || p.cfg.Keys.Len() > 0) {
		s.enc3 = &smb3Conn{}
	}
	if len(msg) < smbrpc.NBHeaderLen {
		return
	}
	if msg[0] == smbrpc.NBSessionRequest {
		_, s.nbName = smbrpc.NBNames(msg[smbrpc.NBHeaderLen:])
		return
	}
	if msg[0] != smbrpc.NBSessionMessage {
		return
	}
	body := msg[smbrpc.NBHeaderLen:]
	switch smbrpc.SMBProto(body) {
	case smbrpc.ProtoSMB2:
		err := smbrpc.SplitSMB2(body, func(h smbrpc.SMB2Header, m []byte) {
			s.smb2(p, s.orient(dir, h.Response()), h, m, ts)
		})
		if err != nil {
			p.stats.DecodeErrors++
		}
	case smbrpc.ProtoSMB1:
		s.smb1(p, dir, body, ts)
	case smbrpc.ProtoTransform:
		t, err := smbrpc.ParseSMB2Transform(body)
		if err != nil {
			p.stats.DecodeErrors++
			return
		}
		if s.enc3 != nil && s.smb3Open(p, dir, body, t.SessionID, ts) {
			return
		}
		ss := s.session(t.SessionID)
		if ss.enc == nil {
			ss.enc = &encState{first: ts}
		}
		ss.enc.last = ts
		ss.enc.msgs++
		ss.enc.bytes += int64(t.OriginalSize)
	}
}

func (s *smbConn) addPending(key uint64, r *smbReq) {
	if len(s.pending) >= maxPending {
		return
	}
	s.pending[key] = r
}

func (s *smbConn) smb2(p *Pipeline, dir int, h smbrpc.SMB2Header, m []byte, ts time.Time) {
	if !h.Response() {
		r := &smbReq{cmd: h.Command, ts: ts, sess: h.SessionID, tree: h.TreeID}
		switch h.Command {
		case smbrpc.SMB2SessionSetup:
			blob, _, err := smbrpc.ParseSMB2SessionSetup(m, false)
			if err != nil {
				p.stats.DecodeErrors++
				break
			}
			r.acct, r.acctOK = p.accountFromBlob(blob, s.cli.Addr())
			if r.acctOK && h.SessionID != 0 {
				s.session(h.SessionID).acct = r.acct
			}
			if s.enc3 != nil {
				s.smb3SetupReq(p, h, m, blob)
			}
		case smbrpc.SMB2Negotiate:
			if s.enc3 != nil {
				s.smb3Negotiate(h, m)
			}
			return
		case smbrpc.SMB2TreeConnect:
			r.path, _ = smbrpc.ParseSMB2TreeConnect(m)
		case smbrpc.SMB2Create:
			c, err := smbrpc.ParseSMB2Create(m)
			if err != nil {
				p.stats.DecodeErrors++
			}
			r.name, r.options = c.Name, c.Options
		case smbrpc.SMB2SetInfo:
			q, err := smbrpc.ParseSMB2SetInfo(m)
			if err != nil {
				p.stats.DecodeErrors++
				break
			}
			r.fid = q.FileID
			r.deletes, r.dispose = q.Disposition()
		case smbrpc.SMB2Close:
			fid, err := smbrpc.ParseSMB2Close(m)
			if err == nil {
				s.closeFile(p, s.fid(fid), ts, false)
			}
		case smbrpc.SMB2Read:
			q, err := smbrpc.ParseSMB2Read(m)
			if err != nil {
				p.stats.DecodeErrors++
			}
			r.fid, r.offset = q.FileID, q.Offset
		case smbrpc.SMB2Write:
			w, err := smbrpc.ParseSMB2Write(m)
			if err != nil {
				p.stats.DecodeErrors++
				break
			}
			f := s.files[s.fid(w.FileID)]
			if _, _, ok := smbrpc.DCERPCHeader(w.Data); ok && w.Offset == 0 {
				f = s.rpcPipe(f, s.fid(w.FileID), h.TreeID, h.SessionID, ts, false)
			}
			if f != nil {
				s.data(p, f, 0, w.Offset, w.Data, w.Complete, ts)
			}
		case smbrpc.SMB2Ioctl:
			io, err := smbrpc.ParseSMB2Ioctl(m, false)
			if err != nil {
				p.stats.DecodeErrors++
				break
			}
			r.fid = io.FileID
			if io.CtlCode == smbrpc.FsctlPipeTransceive {
				// Only a named pipe takes a transceive, whatever its
				// tree connect (maybe not captured) said.
				f := s.rpcPipe(s.files[s.fid(io.FileID)], s.fid(io.FileID), h.TreeID, h.SessionID, ts, true)
				s.data(p, f, 0, 0, io.Input, true, ts)
			}
		default:
			return
		}
		s.addPending(h.MessageID, r)
		return
	}
	if h.Status == smbrpc.StatusPending && h.Async() {
		return // interim reply: the final one follows with the same MessageId
	}
	if s.enc3 != nil {
		switch h.Command {
		case smbrpc.SMB2Negotiate:
			s.smb3Negotiate(h, m)
		case smbrpc.SMB2SessionSetup:
			s.smb3SetupResp(h, m)
		}
	}
	ok := h.Status == smbrpc.StatusSuccess
	r := s.pending[h.MessageID]
	if r == nil {
		if h.Command == smbrpc.SMB2Read && (ok || h.Status == smbrpc.StatusBufferOverflow) {
			s.orphanRead(p, m, ts)
		}
		return
	}
	delete(s.pending, h.MessageID)
	switch r.cmd {
	case smbrpc.SMB2SessionSetup:
		if r.acctOK && (ok || h.Status == smbrpc.StatusMoreProcessing) {
			s.session(h.SessionID).acct = r.acct
		}
		if r.acctOK && h.Status != smbrpc.StatusMoreProcessing {
			s.logonOp(p, r, h.Status, ts, false)
		}
	case smbrpc.SMB2TreeConnect:
		if !ok {
			return
		}
		st, _ := smbrpc.ParseSMB2TreeConnectResp(m)
		t := s.addTree(h.TreeID, r.path, st == smbrpc.SharePipe)
		s.session(h.SessionID).lastTree = t.path
		s.treeOp(p, r, t, h.SessionID, ts, false, false)
	case smbrpc.SMB2Create:
		if !ok {
			return
		}
		c, err := smbrpc.ParseSMB2CreateResp(m)
		if err != nil {
			p.stats.DecodeErrors++
			return
		}
		s.lastFID = c.FileID
		s.openFile(c.FileID, r.name, s.trees[r.tree], r.sess, c.Action, c.EndOfFile, r.ts, false)
		if f := s.files[c.FileID]; f != nil {
			f.deleting = r.options&smbrpc.FileDeleteOnClose != 0
		}
	case smbrpc.SMB2SetInfo:
		if f := s.files[s.fid(r.fid)]; ok && r.dispose && f != nil {
			f.deleting = r.deletes
		}
	case smbrpc.SMB2Read:
		if !ok && h.Status != smbrpc.StatusBufferOverflow {
			return
		}
		data, complete, err := smbrpc.ParseSMB2ReadResp(m)
		if err != nil {
			p.stats.DecodeErrors++
			return
		}
		if f := s.files[s.fid(r.fid)]; f != nil {
			s.data(p, f, 1, r.offset, data, complete, ts)
		}
	case smbrpc.SMB2Ioctl:
		if !ok && h.Status != smbrpc.StatusBufferOverflow {
			return
		}
		io, err := smbrpc.ParseSMB2Ioctl(m, true)
		if err != nil {
			p.stats.DecodeErrors++
			return
		}
		if io.CtlCode == smbrpc.FsctlPipeTransceive {
			if f := s.files[s.fid(r.fid)]; f != nil {
				s.data(p, f, 1, 0, io.Output, true, ts)
			}
		}
	}
}

// orphanRead places a READ response whose request was not captured (the
// response does not name its file). A client reads the rest of a DCE/RPC
// reply that overflowed its transceive buffer this way, so the data goes
// to the one pipe still waiting for exactly that many bytes of a reply
// PDU; with no such pipe, or several, it is dropped.
func (s *smbConn) orphanRead(p *Pipeline, m []byte, ts time.Time) {
	data, complete, err := smbrpc.ParseSMB2ReadResp(m)
	if err != nil || len(data) == 0 {
		return
	}
	var match *smbFile
	for _, f := range s.files {
		if f.rpc != nil && f.rpc.fr[1] != nil && f.rpc.fr[1].need() == len(data) {
			if match != nil {
				return
			}
			match = f
		}
	}
	if match != nil {
		s.data(p, match, 1, 0, data, complete, ts)
	}
}

// fid resolves the all-ones handle of a related compound request.
func (s *smbConn) fid(id smbrpc.FileID) smbrpc.FileID {
	if id == allOnes {
		return s.lastFID
	}
	return id
}

func (s *smbConn) addTree(id uint32, p string, pipe bool) *smbTree {
	share := p
	if i := strings.LastIndexByte(p, '\\'); i >= 0 {
		share = p[i+1:]
	}
	share = strings.ToUpper(share)
	t := &smbTree{path: p, share: share, pipe: pipe || share == "IPC$"}
	if len(s.trees) >= maxTrees {
		clear(s.trees)
	}
	s.trees[id] = t
	return t
}

func (s *smbConn) openFile(id smbrpc.FileID, name string, t *smbTree, sess uint64, action uint32, eof uint64, ts time.Time, smb1 bool) {
	if len(s.files) >= maxFiles {
		for _, f := range s.files {
			s.closeFile(s.p, f.id, ts, true)
			break
		}
	}
	// With its tree connect not captured, a file named like an RPC pipe
	// (atsvc, svcctl...) is taken for one.
	pipe := t != nil && t.pipe || t == nil && rpcops.KnownPipe(name)
	s.files[id] = &smbFile{id: id, name: name, tree: t, sess: sess, opened: ts, last: ts, action: action, eof: eof,
		pipe: pipe, smb1: smb1, smb3: s.decrypting()}
}

// rpcPipe returns the pipe a DCE/RPC PDU was written to (or a transceive
// sent on: sure is set). A file whose CREATE was not captured (the capture
// began inside the session) is registered without a name, and rpcops
// guesses its interface from the opnum and stub. A file opened on a tree
// whose connect was not captured, and so taken for a file, becomes a pipe
// when nothing was read or written yet; one on a known disk share stays a
// file unless sure.
func (s *smbConn) rpcPipe(f *smbFile, id smbrpc.FileID, tree uint32, sess uint64, ts time.Time, sure bool) *smbFile {
	if f == nil {
		s.openFile(id, "", s.trees[tree], sess, 0, 0, ts, false)
		f = s.files[id]
		f.pipe = true
		return f
	}
	if !f.pipe && (sure || f.tree == nil) && f.w.bytes == 0 && f.r.bytes == 0 {
		f.pipe = true
	}
	return f
}

// data handles bytes written to (dir 0) or read from (dir 1) a file or pipe.
func (s *smbConn) data(p *Pipeline, f *smbFile, dir int, off uint64, b []byte, complete bool, ts time.Time) {
	f.last = ts
	if s.decrypting() {
		f.smb3 = true
	}
	if !f.pipe {
		if dir == 0 {
			f.w.add(off, b, complete, ts)
		} else {
			f.r.add(off, b, complete, ts)
		}
		return
	}
	if len(b) == 0 {
		return
	}
	if !f.decided {
		f.decided = true
		if _, _, ok := smbrpc.DCERPCHeader(b); ok {
			f.rpc = newAssoc(p, rpcEndpoint{
				client: s.cli, server: s.srv, transport: s.transport(f.smb1),
				pipe: pipeName(f.name), share: treePath(f.tree),
				session:   func() account { return s.sessAcct(f.sess, f.tree) },
				decrypted: &f.smb3,
			})
		}
	}
	if f.rpc != nil {
		f.rpc.pipeData(p, dir, b, ts)
		return
	}
	f.rawN[dir] += int64(len(b))
	f.io.add(dir, b, ts)
	if room := maxPipeHead - len(f.text[dir]); room > 0 {
		f.text[dir] = append(f.text[dir], b[:min(room, len(b))]...)
	}
}

func pipeName(n string) string {
	n = strings.TrimLeft(n, `\`)
	if len(n) > 5 && strings.EqualFold(n[:5], `pipe\`) {
		n = n[5:]
	}
	return n
}

func treePath(t *smbTree) string {
	if t == nil {
		return ""
	}
	return t.path
}

func (s *smbConn) treeOp(p *Pipeline, r *smbReq, t *smbTree, sess uint64, ts time.Time, partial, smb1 bool) {
	acct := s.sessAcct(sess, t)
	op := s.baseOp(r.ts, ts, acct, smb1)
	op.Kind, op.Interface, op.Operation = "tree", "smb", "tree connect"
	op.Target, op.Share = t.path, t.path
	op.Partial = partial
	if s.decrypting() {
		op.Decrypted = decryptedSMB3
	}
	if t.admin() {
		op.Technique, op.Phase = "T1021.002", "lateral-movement"
	} else {
		op.Noise = true
	}
	p.out(op)
}

// logonOp reports an SMB session setup that carried an account (NTLMSSP
// AUTHENTICATE, Kerberos AP-REQ) and its final status: plumbing for the
// timeline, but who logged on where, also when it failed or no tree
// followed (a coerced server authenticating to the attacker's listener).
func (s *smbConn) logonOp(p *Pipeline, r *smbReq, status uint32, ts time.Time, smb1 bool) {
	op := s.baseOp(r.ts, ts, r.acct, smb1)
	op.Kind, op.Interface, op.Operation = "logon", "smb", "session setup"
	op.Target = op.Account()
	if op.Target == "" {
		op.Target = firstNonEmpty(r.acct.service, "anonymous")
	}
	op.Status, op.HasStatus, op.Noise = status, true, true
	p.out(op)
}

// decrypting reports whether the message being handled came out of a
// decrypted SMB3 transform.
func (s *smbConn) decrypting() bool { return s.enc3 != nil && s.enc3.inDecrypted }

func (s *smbConn) baseOp(start, end time.Time, acct account, smb1 bool) Operation {
	return Operation{
		Time: start, End: end, Opnum: -1,
		Src: s.cli.Addr(), Dst: s.srv.Addr(), SrcPort: s.cli.Port(), DstPort: s.srv.Port(),
		User: acct.user, Domain: acct.domain, Workstation: firstNonEmpty(acct.workstation, s.nbName),
		Auth: acct.auth, Service: acct.service, AccountVia: acct.via,
		Transport: s.transport(smb1),
	}
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

// Executable extensions: a file of these written over an admin share is a
// tool being moved (T1570).
var execExt = map[string]bool{
	".exe": true, ".dll": true, ".sys": true, ".ps1": true, ".bat": true, ".cmd": true, ".vbs": true,
	".js": true, ".hta": true, ".msi": true, ".scr": true, ".xll": true, ".cpl": true, ".com": true,
}

// closeFile reports what happened to a file or raw pipe and forgets it.
func (s *smbConn) closeFile(p *Pipeline, id smbrpc.FileID, ts time.Time, partial bool) {
	f := s.files[id]
	if f == nil {
		return
	}
	delete(s.files, id)
	smb1 := f.smb1
	acct := s.sessAcct(f.sess, f.tree)
	dec := ""
	if f.smb3 {
		dec = decryptedSMB3
	}
	target := treePath(f.tree) + `\` + f.name
	if f.pipe {
		if f.rpc != nil {
			f.rpc.closeAll(p)
			f.rpc.release(p)
			return
		}
		if f.rawN[0]+f.rawN[1] == 0 {
			return
		}
		op := s.baseOp(f.opened, f.last, acct, smb1)
		op.Kind, op.Interface, op.Operation = "pipe", "pipe", "pipe i/o"
		op.Decrypted = dec
		op.Pipe, op.Target, op.Share = pipeName(f.name), pipeName(f.name), treePath(f.tree)
		op.Fields = []Field{{"written", itoa(int(f.rawN[0])) + " bytes"}, {"read", itoa(int(f.rawN[1])) + " bytes"}}
		rawPipeOp(&op, f)
		op.Partial = partial || f.lossy
		p.out(op)
		return
	}
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(f.name, `\`, "/")))
	for d, c := range []*content{&f.w, &f.r} {
		if c.bytes == 0 {
			continue
		}
		op := s.baseOp(c.first, c.last, acct, smb1)
		op.Kind, op.Interface, op.Share, op.Target = "file", "smb", treePath(f.tree), target
		op.Decrypted = dec
		op.Size = c.bytes
		full := c.contiguous && !f.lossy && !partial
		if d == 0 {
			op.Operation = "write file"
			full = full && c.next == uint64(c.bytes)
			switch {
			case execExt[ext]:
				op.Technique, op.Phase = "T1570", "lateral-movement"
			case f.tree.admin():
				op.Technique, op.Phase = "T1021.002", "lateral-movement"
			}
			if op.Technique != "" {
				p.noteTransfer(op.Dst, f.name, target)
			}
		} else {
			op.Operation = "read file"
			full = full && c.next == f.eof && f.eof > 0
			op.Technique, op.Phase = "T1039", "collection"
		}
		// Where the file lies says more than the share does: a command's
		// output read back, a hive, a dump or a DPAPI key read, a policy
		// or Startup entry written.
		linked := d == 1 && p.linkOutput(op.Dst, &op, shareName(f.tree), f.name, c.head)
		if d == 0 {
			// Written over SMB: no longer what a command wrote there.
			p.endOutput(op.Dst, shareName(f.tree), f.name, op.Src)
		}
		if k, ok := classifyFile(shareName(f.tree), f.name, d == 0); ok && !linked {
			op.Technique, op.Phase = k.technique, k.phase
			op.Fields = append(op.Fields, Field{"file kind", k.what})
		}
		if full {
			op.SHA256 = hex.EncodeToString(c.h.Sum(nil))
		}
		op.Partial = !full
		p.out(op)
	}
	if f.deleting {
		p.endOutput(s.srv.Addr(), shareName(f.tree), f.name, netip.Addr{})
	}
}

// printable returns the text of pipe data when it reads as text (ASCII or
// UTF-16LE): at least three letters and nine in ten bytes printable.
func printable(b []byte) (string, bool) {
	s := string(b)
	if len(b) >= 4 && b[1] == 0 && b[3] == 0 {
		s = smbrpc.UTF16(b)
	}
	letters, bad := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			letters++
		case c >= 0x20 && c < 0x7f || c == '\n' || c == '\r' || c == '\t':
		default:
			bad++
		}
	}
	if letters < 3 || bad*10 > len(s) {
		return "", false
	}
	return strings.TrimSpace(s), true
}

func (s *smbConn) gap(p *Pipeline, _ int) {
	for _, f := range s.files {
		f.lossy = true
		if f.rpc != nil {
			f.rpc.pipeGap(p, 0)
			f.rpc.pipeGap(p, 1)
		}
	}
}

func (s *smbConn) expire(p *Pipeline, before time.Time) {
	for id, r := range s.pending {
		if r.ts.Before(before) {
			delete(s.pending, id)
			if (r.cmd == smbrpc.SMB2TreeConnect || r.cmd == smbrpc.SMB1TreeConnect) && r.path != "" {
				// The reply was not captured: the connect still happened.
				t := s.addTree(r.tree, r.path, false)
				s.treeOp(p, r, t, r.sess, r.ts, true, r.cmd == smbrpc.SMB1TreeConnect)
			}
		}
	}
	for _, f := range s.files {
		if f.rpc != nil {
			f.rpc.expire(p, before)
		}
	}
	for id, ss := range s.sessions {
		if ss.enc != nil && ss.enc.last.Before(before) {
			s.encOp(p, id, ss)
		}
	}
}

func (s *smbConn) encOp(p *Pipeline, id uint64, ss *smbSession) {
	e := ss.enc
	ss.enc = nil
	op := s.baseOp(e.first, e.last, ss.acct, false)
	op.Transport = "smb3"
	op.Kind, op.Interface, op.Operation = "smb3-encrypted", "smb", "encrypted session traffic"
	op.Target, op.Share = ss.lastTree, ss.lastTree
	op.Encrypted = true
	op.Fields = []Field{
		{"messages", itoa(e.msgs)},
		{"bytes", itoa(int(e.bytes))},
		{"session", "0x" + hex.EncodeToString([]byte{byte(id >> 56), byte(id >> 48), byte(id >> 40), byte(id >> 32), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)})},
	}
	if why := ss.smb3.smb3Why(); why != "" {
		// The secrets named the account, and still these messages stay
		// closed: say why, as a sealed call does.
		op.Sealed = SealedUndecryptable
		op.Fields = append(op.Fields, Field{"sealed", "not decrypted: " + why})
	}
	p.out(op)
}

func (s *smbConn) close(p *Pipeline, expired bool) {
	now := p.now
	for id := range s.files {
		s.closeFile(p, id, now, true)
	}
	s.expire(p, now.Add(time.Hour)) // report every pending tree connect and call
	for id, ss := range s.sessions {
		if ss.enc != nil {
			s.encOp(p, id, ss)
		}
	}
}
