package replay

import (
	"net/netip"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// smb1FID makes an SMB2-style handle of an SMB1 FID so both dialects share
// the file table.
func smb1FID(fid uint16) smbrpc.FileID {
	return smbrpc.FileID{byte(fid), byte(fid >> 8), 0xfe}
}

// rpcPipe1 is rpcPipe for an SMB1 FID.
func (s *smbConn) rpcPipe1(f *smbFile, fid uint16, h smbrpc.SMB1Header, ts time.Time, sure bool) *smbFile {
	if f == nil {
		s.openFile(smb1FID(fid), "", s.trees[uint32(h.TID)], uint64(h.UID), 0, 0, ts, true)
		f = s.files[smb1FID(fid)]
		f.pipe = true
		return f
	}
	return s.rpcPipe(f, smb1FID(fid), uint32(h.TID), uint64(h.UID), ts, sure)
}

func smb1Key(h smbrpc.SMB1Header, cmd byte) uint64 {
	return uint64(h.MID) | uint64(h.PID)<<16 | uint64(cmd)<<32 | 1<<63
}

// smb1 follows the commands of one SMB1 message (an AndX chain) that
// matter for named pipes, files and accounts.
func (s *smbConn) smb1(p *Pipeline, dir int, msg []byte, ts time.Time) {
	_, err := smbrpc.ParseSMB1(msg, func(h smbrpc.SMB1Header, c smbrpc.SMB1Cmd) {
		s.orient(dir, h.Reply())
		if !h.Reply() {
			s.smb1Request(p, msg, h, c, ts)
		} else {
			s.smb1Reply(p, msg, h, c, ts)
		}
	})
	if err != nil {
		p.stats.DecodeErrors++
	}
}

func (s *smbConn) smb1Request(p *Pipeline, msg []byte, h smbrpc.SMB1Header, c smbrpc.SMB1Cmd, ts time.Time) {
	r := &smbReq{cmd: uint16(c.Command), ts: ts, sess: uint64(h.UID), tree: uint32(h.TID)}
	switch c.Command {
	case smbrpc.SMB1SessionSetup:
		if blob := smbrpc.SMB1SessionSetupBlob(c, false); len(blob) > 0 {
			r.acct, r.acctOK = p.accountFromBlob(blob, s.cli.Addr())
		} else if u, d, ok := smbrpc.SMB1PlainLogon(h, c); ok {
			r.acct, r.acctOK = account{user: u, domain: d, auth: "ntlm"}, true
		}
		if r.acctOK && h.UID != 0 {
			s.session(uint64(h.UID)).acct = r.acct
		}
	case smbrpc.SMB1TreeConnect:
		r.path = smbrpc.SMB1TreePath(h, c)
	case smbrpc.SMB1NTCreate:
		r.name = smbrpc.SMB1CreateName(h, c)
		r.options = smbrpc.SMB1CreateOptions(c)
	case smbrpc.SMB1Delete:
		name, ok := smbrpc.SMB1DeleteName(h, c)
		if !ok {
			return
		}
		r.name = name
	case smbrpc.SMB1WriteAndX:
		if w, ok := smbrpc.ParseSMB1Write(msg, c); ok {
			f := s.files[smb1FID(w.FID)]
			if _, _, rpc := smbrpc.DCERPCHeader(w.Data); rpc && w.Offset == 0 {
				f = s.rpcPipe1(f, w.FID, h, ts, false)
			}
			if f != nil {
				s.data(p, f, 0, w.Offset, w.Data, w.Complete, ts)
			}
		}
	case smbrpc.SMB1WriteCore:
		// Never DCE/RPC in practice (clients use WRITE_ANDX or
		// transactions for it), but winexe writes its pipes this way.
		if w, ok := smbrpc.ParseSMB1WriteCore(c); ok {
			if f := s.files[smb1FID(w.FID)]; f != nil {
				s.data(p, f, 0, w.Offset, w.Data, w.Complete, ts)
			}
		}
	case smbrpc.SMB1ReadAndX:
		fid, ok := smbrpc.SMB1ReadFID(c)
		if !ok {
			return
		}
		r.fid = smb1FID(fid)
	case smbrpc.SMB1Trans:
		t, ok := smbrpc.ParseSMB1Trans(msg, h, c)
		if !ok || t.Function != 0x26 { // TransactNmPipe
			return
		}
		r.fid = smb1FID(t.FID)
		// TransactNmPipe only works on a named pipe, whether or not its
		// NT_CREATE or tree connect was captured.
		f := s.rpcPipe1(s.files[r.fid], t.FID, h, ts, true)
		s.data(p, f, 0, 0, t.Data, t.Complete, ts)
	case smbrpc.SMB1Close:
		if fid, ok := smbrpc.SMB1CloseFID(c); ok {
			s.closeFile(p, smb1FID(fid), ts, false)
		}
		return
	default:
		return
	}
	s.addPending(smb1Key(h, c.Command), r)
}

func (s *smbConn) smb1Reply(p *Pipeline, msg []byte, h smbrpc.SMB1Header, c smbrpc.SMB1Cmd, ts time.Time) {
	key := smb1Key(h, c.Command)
	r := s.pending[key]
	if r == nil {
		return
	}
	delete(s.pending, key)
	ok := h.Status == smbrpc.StatusSuccess
	switch c.Command {
	case smbrpc.SMB1SessionSetup:
		if r.acctOK && (ok || h.Status == smbrpc.StatusMoreProcessing) {
			s.session(uint64(h.UID)).acct = r.acct
		}
		if r.acctOK && h.Status != smbrpc.StatusMoreProcessing {
			s.logonOp(p, r, h.Status, ts, true)
		}
	case smbrpc.SMB1TreeConnect:
		if ok {
			t := s.addTree(uint32(h.TID), r.path, false)
			s.session(uint64(h.UID)).lastTree = t.path
			s.treeOp(p, r, t, uint64(h.UID), ts, false, true)
		}
	case smbrpc.SMB1NTCreate:
		if fid, got := smbrpc.SMB1CreateFID(c); ok && got {
			s.openFile(smb1FID(fid), r.name, s.trees[r.tree], r.sess, 0, smbrpc.SMB1CreateSize(c), r.ts, true)
			if f := s.files[smb1FID(fid)]; f != nil {
				f.deleting = r.options&smbrpc.FileDeleteOnClose != 0
			}
		}
	case smbrpc.SMB1Delete:
		if ok {
			p.endOutput(s.srv.Addr(), shareName(s.trees[r.tree]), r.name, netip.Addr{})
		}
	case smbrpc.SMB1ReadAndX:
		if !ok && h.Status != smbrpc.StatusBufferOverflow {
			return
		}
		if f := s.files[r.fid]; f != nil {
			data, complete := smbrpc.SMB1ReadData(msg, c)
			s.data(p, f, 1, r.offset, data, complete, ts)
		}
	case smbrpc.SMB1Trans:
		if !ok && h.Status != smbrpc.StatusBufferOverflow {
			return
		}
		if f := s.files[r.fid]; f != nil {
			if t, got := smbrpc.ParseSMB1Trans(msg, h, c); got {
				s.data(p, f, 1, 0, t.Data, t.Complete, ts)
			}
		}
	}
}
