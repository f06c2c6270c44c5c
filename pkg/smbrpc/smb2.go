package smbrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SMB2 commands (MS-SMB2 2.2.1).
const (
	SMB2Negotiate      = 0x00
	SMB2SessionSetup   = 0x01
	SMB2Logoff         = 0x02
	SMB2TreeConnect    = 0x03
	SMB2TreeDisconnect = 0x04
	SMB2Create         = 0x05
	SMB2Close          = 0x06
	SMB2Flush          = 0x07
	SMB2Read           = 0x08
	SMB2Write          = 0x09
	SMB2Lock           = 0x0a
	SMB2Ioctl          = 0x0b
	SMB2Cancel         = 0x0c
	SMB2Echo           = 0x0d
	SMB2QueryDirectory = 0x0e
	SMB2ChangeNotify   = 0x0f
	SMB2QueryInfo      = 0x10
	SMB2SetInfo        = 0x11
	SMB2OplockBreak    = 0x12
)

// SMB2 header flags.
const (
	SMB2FlagResponse = 0x00000001
	SMB2FlagAsync    = 0x00000002
	SMB2FlagRelated  = 0x00000004
	SMB2FlagSigned   = 0x00000008
)

// NT status values the session layer branches on.
const (
	StatusSuccess         = 0x00000000
	StatusPending         = 0x00000103
	StatusBufferOverflow  = 0x80000005 // named pipe message longer than the read
	StatusMoreProcessing  = 0xc0000016 // session setup continues
	StatusEndOfFile       = 0xc0000011
	StatusPipeEmpty       = 0xc00000d9
	StatusAccessDenied    = 0xc0000022
	StatusLogonFailure    = 0xc000006d
	StatusObjectNotFound  = 0xc0000034
	StatusPipeDisconnect  = 0xc00000b0
	StatusPipeBroken      = 0xc000014b
	StatusNotFound        = 0xc0000225
	StatusInvalidParamter = 0xc000000d
)

// FSCTL_PIPE_TRANSCEIVE: write a request to a pipe and read the reply in one
// IOCTL, the usual carrier of DCE/RPC over SMB2.
const FsctlPipeTransceive = 0x0011c017

// SMB2HeaderLen is the fixed size of an SMB2 header.
const SMB2HeaderLen = 64

// SMB2TransformLen is the fixed size of the SMB3 transform header.
const SMB2TransformLen = 52

var errNotSMB2 = errors.New("smbrpc: not an SMB2 message")

// SMB2Header is the fixed header of one SMB2 message.
type SMB2Header struct {
	CreditCharge uint16
	Status       uint32 // responses only; ChannelSequence in requests
	Command      uint16
	Flags        uint32
	NextCommand  uint32 // offset of the next message of a compound, 0 for the last
	MessageID    uint64
	AsyncID      uint64 // when Flags has SMB2FlagAsync
	TreeID       uint32 // when not async
	SessionID    uint64
}

// Response reports whether the message goes from server to client.
func (h *SMB2Header) Response() bool { return h.Flags&SMB2FlagResponse != 0 }

// Async reports whether the header carries an AsyncId instead of a TreeId.
func (h *SMB2Header) Async() bool { return h.Flags&SMB2FlagAsync != 0 }

// ParseSMB2Header decodes the header at the start of b.
func ParseSMB2Header(b []byte) (SMB2Header, error) {
	var h SMB2Header
	if len(b) < SMB2HeaderLen || SMBProto(b) != ProtoSMB2 {
		return h, errNotSMB2
	}
	if ss := binary.LittleEndian.Uint16(b[4:]); ss != SMB2HeaderLen {
		return h, fmt.Errorf("smbrpc: smb2 header size %d", ss)
	}
	h.CreditCharge = binary.LittleEndian.Uint16(b[6:])
	h.Status = binary.LittleEndian.Uint32(b[8:])
	h.Command = binary.LittleEndian.Uint16(b[12:])
	h.Flags = binary.LittleEndian.Uint32(b[16:])
	h.NextCommand = binary.LittleEndian.Uint32(b[20:])
	h.MessageID = binary.LittleEndian.Uint64(b[24:])
	if h.Async() {
		h.AsyncID = binary.LittleEndian.Uint64(b[32:])
	} else {
		h.TreeID = binary.LittleEndian.Uint32(b[36:])
	}
	h.SessionID = binary.LittleEndian.Uint64(b[40:])
	return h, nil
}

// SplitSMB2 calls fn for each message of a (possibly compound) SMB2 PDU,
// with the message's own bytes: offsets inside an SMB2 body count from the
// start of its header. It stops at the first damaged header and returns
// its error; a NextCommand that points backwards or past the end ends the
// chain.
func SplitSMB2(pdu []byte, fn func(h SMB2Header, msg []byte)) error {
	for n := 0; n < 64 && len(pdu) > 0; n++ { // compounds are short; a bound keeps loops finite
		h, err := ParseSMB2Header(pdu)
		if err != nil {
			return err
		}
		next := int(h.NextCommand)
		if next == 0 || next < SMB2HeaderLen || next > len(pdu) {
			fn(h, pdu)
			return nil
		}
		fn(h, pdu[:next])
		pdu = pdu[next:]
	}
	return nil
}

// bodyBuf returns a buffer at an offset relative to the message start,
// clipped to what was captured; ok is false when it lies outside.
func bodyBuf(msg []byte, off, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	if uint64(off) > uint64(len(msg)) {
		return nil, false
	}
	end := uint64(off) + uint64(n)
	if end > uint64(len(msg)) {
		return msg[off:len(msg):len(msg)], false
	}
	return msg[off:end:end], true
}

// SMB2Body returns the command body after the header and its StructureSize.
func smb2Body(msg []byte) (rd, uint16) {
	r := rd{b: msg, off: SMB2HeaderLen}
	ss := r.u16()
	return r, ss
}

// SMB2NegotiateResp is what replay keeps of a NEGOTIATE response.
type SMB2NegotiateResp struct {
	Dialect  uint16
	Security []byte // SPNEGO init token
	// SMB 3.1.1 negotiate contexts (MS-SMB2 2.2.3.1): the cipher the
	// server chose (0 when none was offered), and whether compression
	// was negotiated.
	Cipher      uint16
	Compression bool
}

// Negotiate context types (MS-SMB2 2.2.3.1).
const (
	ctxEncryption  = 0x0002
	ctxCompression = 0x0003
	maxNegContexts = 32 // Windows sends at most a handful
)

// ParseSMB2NegotiateResp decodes a NEGOTIATE response.
func ParseSMB2NegotiateResp(msg []byte) (SMB2NegotiateResp, error) {
	var n SMB2NegotiateResp
	r, ss := smb2Body(msg)
	if ss != 65 {
		return n, fmt.Errorf("smbrpc: negotiate response size %d", ss)
	}
	r.skip(2)
	n.Dialect = r.u16()
	count := r.u16()
	r.skip(56 - 8)
	off, l := r.u16(), r.u16()
	ctxOff := r.u32()
	if r.err != nil {
		return n, r.err
	}
	n.Security, _ = bodyBuf(msg, uint32(off), uint32(l))
	if n.Dialect != 0x0311 {
		return n, nil
	}
	// Contexts start 8-byte aligned, each a type, a data length, 4
	// reserved bytes and the data.
	at := uint64(ctxOff)
	for i := 0; i < int(count) && i < maxNegContexts; i++ {
		at = (at + 7) &^ 7
		if at+8 > uint64(len(msg)) {
			return n, ErrShort
		}
		typ := binary.LittleEndian.Uint16(msg[at:])
		dl := uint64(binary.LittleEndian.Uint16(msg[at+2:]))
		data := msg[at+8:]
		if dl > uint64(len(data)) {
			return n, ErrShort
		}
		data = data[:dl]
		switch typ {
		case ctxEncryption:
			// CipherCount, then the ciphers: a response names one.
			if len(data) >= 4 && binary.LittleEndian.Uint16(data) >= 1 {
				n.Cipher = binary.LittleEndian.Uint16(data[2:])
			}
		case ctxCompression:
			// CompressionAlgorithmCount, padding, flags, algorithms:
			// NONE (0) alone means no compression.
			if len(data) >= 10 && binary.LittleEndian.Uint16(data) >= 1 {
				for j := 8; j+2 <= len(data); j += 2 {
					if binary.LittleEndian.Uint16(data[j:]) != 0 {
						n.Compression = true
					}
				}
			}
		}
		at += 8 + dl
	}
	return n, nil
}

// ParseSMB2SessionSetup returns the security blob (SPNEGO, NTLMSSP or
// Kerberos) of a SESSION_SETUP request or response.
func ParseSMB2SessionSetup(msg []byte, response bool) (blob []byte, sessionFlags uint16, err error) {
	r, ss := smb2Body(msg)
	var off, l uint16
	if response {
		if ss != 9 {
			return nil, 0, fmt.Errorf("smbrpc: session setup response size %d", ss)
		}
		sessionFlags = r.u16()
		off, l = r.u16(), r.u16()
	} else {
		if ss != 25 {
			return nil, 0, fmt.Errorf("smbrpc: session setup request size %d", ss)
		}
		r.skip(10)
		off, l = r.u16(), r.u16()
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	blob, _ = bodyBuf(msg, uint32(off), uint32(l))
	return blob, sessionFlags, nil
}

// ParseSMB2TreeConnect returns the UNC path of a TREE_CONNECT request.
func ParseSMB2TreeConnect(msg []byte) (string, error) {
	r, ss := smb2Body(msg)
	if ss != 9 {
		return "", fmt.Errorf("smbrpc: tree connect size %d", ss)
	}
	r.skip(2)
	off, l := r.u16(), r.u16()
	if r.err != nil {
		return "", r.err
	}
	p, ok := bodyBuf(msg, uint32(off), uint32(l))
	if !ok {
		return UTF16(p), ErrShort
	}
	return UTF16(p), nil
}

// SMB2 share types in a TREE_CONNECT response.
const (
	ShareDisk  = 1
	SharePipe  = 2
	SharePrint = 3
)

// ParseSMB2TreeConnectResp returns the share type of a TREE_CONNECT response.
func ParseSMB2TreeConnectResp(msg []byte) (shareType uint8, err error) {
	r, ss := smb2Body(msg)
	if ss != 16 {
		return 0, fmt.Errorf("smbrpc: tree connect response size %d", ss)
	}
	t := r.u8()
	return t, r.err
}

// FileID is an SMB2 file handle (persistent and volatile halves).
type FileID [16]byte

// SMB2CreateReq is a CREATE request.
type SMB2CreateReq struct {
	Name          string
	DesiredAccess uint32
	Disposition   uint32
	Options       uint32
}

// ParseSMB2Create decodes a CREATE request.
func ParseSMB2Create(msg []byte) (SMB2CreateReq, error) {
	var c SMB2CreateReq
	r, ss := smb2Body(msg)
	if ss != 57 {
		return c, fmt.Errorf("smbrpc: create size %d", ss)
	}
	r.skip(22)
	c.DesiredAccess = r.u32()
	r.skip(8)
	c.Disposition = r.u32()
	c.Options = r.u32()
	off, l := r.u16(), r.u16()
	if r.err != nil {
		return c, r.err
	}
	p, ok := bodyBuf(msg, uint32(off), uint32(l))
	c.Name = UTF16(p)
	if !ok {
		return c, ErrShort
	}
	return c, nil
}

// FileDeleteOnClose is the CREATE option (MS-SMB2 2.2.13) that deletes
// the file when its last handle closes.
const FileDeleteOnClose = 0x00001000

// SMB2SetInfoReq is a SET_INFO request (MS-SMB2 2.2.39).
type SMB2SetInfoReq struct {
	InfoType, Class uint8
	FileID          FileID
	Buffer          []byte // aliases the message
}

// ParseSMB2SetInfo decodes a SET_INFO request.
func ParseSMB2SetInfo(msg []byte) (SMB2SetInfoReq, error) {
	var q SMB2SetInfoReq
	r, ss := smb2Body(msg)
	if ss != 33 {
		return q, fmt.Errorf("smbrpc: set info size %d", ss)
	}
	q.InfoType, q.Class = r.u8(), r.u8()
	n := r.u32()
	off := r.u16()
	r.skip(6)
	copy(q.FileID[:], r.bytes(16))
	if r.err != nil {
		return q, r.err
	}
	b, ok := bodyBuf(msg, uint32(off), n)
	q.Buffer = b
	if !ok {
		return q, ErrShort
	}
	return q, nil
}

// Disposition reports whether the request sets a file's delete
// disposition (MS-FSCC 2.4.11 FileDispositionInformation, 2.4.12
// FileDispositionInformationEx), and to what: delete is true when the
// file goes at its last close.
func (q SMB2SetInfoReq) Disposition() (delete, ok bool) {
	const (
		infoFile         = 1
		classDisposition = 13
		classDispoEx     = 64
		dispoExDelete    = 0x1
	)
	switch {
	case q.InfoType != infoFile:
	case q.Class == classDisposition && len(q.Buffer) >= 1:
		return q.Buffer[0] != 0, true
	case q.Class == classDispoEx && len(q.Buffer) >= 4:
		return binary.LittleEndian.Uint32(q.Buffer)&dispoExDelete != 0, true
	}
	return false, false
}

// SMB2CreateResp is a CREATE response.
type SMB2CreateResp struct {
	Action    uint32 // 0 superseded, 1 opened, 2 created, 3 overwritten
	EndOfFile uint64
	FileID    FileID
}

// ParseSMB2CreateResp decodes a CREATE response.
func ParseSMB2CreateResp(msg []byte) (SMB2CreateResp, error) {
	var c SMB2CreateResp
	r, ss := smb2Body(msg)
	if ss != 89 {
		return c, fmt.Errorf("smbrpc: create response size %d", ss)
	}
	r.skip(2)
	c.Action = r.u32()
	r.skip(40)
	c.EndOfFile = r.u64()
	r.skip(8)
	copy(c.FileID[:], r.bytes(16))
	return c, r.err
}

// ParseSMB2Close returns the handle a CLOSE request closes.
func ParseSMB2Close(msg []byte) (FileID, error) {
	var f FileID
	r, ss := smb2Body(msg)
	if ss != 24 {
		return f, fmt.Errorf("smbrpc: close size %d", ss)
	}
	r.skip(6)
	copy(f[:], r.bytes(16))
	return f, r.err
}

// SMB2ReadReq is a READ request.
type SMB2ReadReq struct {
	Length uint32
	Offset uint64
	FileID FileID
}

// ParseSMB2Read decodes a READ request.
func ParseSMB2Read(msg []byte) (SMB2ReadReq, error) {
	var q SMB2ReadReq
	r, ss := smb2Body(msg)
	if ss != 49 {
		return q, fmt.Errorf("smbrpc: read size %d", ss)
	}
	r.skip(2)
	q.Length = r.u32()
	q.Offset = r.u64()
	copy(q.FileID[:], r.bytes(16))
	return q, r.err
}

// ParseSMB2ReadResp returns the data of a READ response. complete is false
// when the capture holds fewer bytes than the response claims.
func ParseSMB2ReadResp(msg []byte) (data []byte, complete bool, err error) {
	r, ss := smb2Body(msg)
	if ss != 17 {
		return nil, false, fmt.Errorf("smbrpc: read response size %d", ss)
	}
	off := r.u8()
	r.skip(1)
	l := r.u32()
	if r.err != nil {
		return nil, false, r.err
	}
	data, complete = bodyBuf(msg, uint32(off), l)
	return data, complete, nil
}

// SMB2WriteReq is a WRITE request.
type SMB2WriteReq struct {
	Offset   uint64
	FileID   FileID
	Data     []byte
	Length   uint32 // as claimed; len(Data) is less when the capture is short
	Complete bool
}

// ParseSMB2Write decodes a WRITE request.
func ParseSMB2Write(msg []byte) (SMB2WriteReq, error) {
	var w SMB2WriteReq
	r, ss := smb2Body(msg)
	if ss != 49 {
		return w, fmt.Errorf("smbrpc: write size %d", ss)
	}
	off := r.u16()
	w.Length = r.u32()
	w.Offset = r.u64()
	copy(w.FileID[:], r.bytes(16))
	if r.err != nil {
		return w, r.err
	}
	w.Data, w.Complete = bodyBuf(msg, uint32(off), w.Length)
	return w, nil
}

// SMB2IoctlMsg is an IOCTL request or response.
type SMB2IoctlMsg struct {
	CtlCode uint32
	FileID  FileID
	Input   []byte
	Output  []byte
}

// ParseSMB2Ioctl decodes an IOCTL request or response; both carry the
// control code, handle and input/output buffers at the same offsets.
func ParseSMB2Ioctl(msg []byte, response bool) (SMB2IoctlMsg, error) {
	var io SMB2IoctlMsg
	r, ss := smb2Body(msg)
	want := uint16(57)
	if response {
		want = 49
	}
	if ss != want {
		return io, fmt.Errorf("smbrpc: ioctl size %d", ss)
	}
	r.skip(2)
	io.CtlCode = r.u32()
	copy(io.FileID[:], r.bytes(16))
	inOff, inLen := r.u32(), r.u32()
	if !response {
		r.skip(4)
	}
	outOff, outLen := r.u32(), r.u32()
	if r.err != nil {
		return io, r.err
	}
	io.Input, _ = bodyBuf(msg, inOff, inLen)
	io.Output, _ = bodyBuf(msg, outOff, outLen)
	return io, nil
}

// SMB2IsError reports whether a response body is the 9-byte ERROR response
// (any failed command) rather than the command's own response.
func SMB2IsError(msg []byte) bool {
	if len(msg) < SMB2HeaderLen+2 {
		return true
	}
	return binary.LittleEndian.Uint16(msg[SMB2HeaderLen:]) == 9 &&
		binary.LittleEndian.Uint16(msg[12:]) != SMB2SessionSetup &&
		binary.LittleEndian.Uint16(msg[12:]) != SMB2TreeConnect
}

// SMB2Transform is the SMB3 TRANSFORM_HEADER of an encrypted message: only
// the session and size are visible.
type SMB2Transform struct {
	SessionID    uint64
	OriginalSize uint32
}

// ParseSMB2Transform decodes the transform header at the start of b.
func ParseSMB2Transform(b []byte) (SMB2Transform, error) {
	var t SMB2Transform
	if len(b) < SMB2TransformLen || SMBProto(b) != ProtoTransform {
		return t, errors.New("smbrpc: not an smb3 transform message")
	}
	t.OriginalSize = binary.LittleEndian.Uint32(b[36:])
	t.SessionID = binary.LittleEndian.Uint64(b[44:])
	return t, nil
}

// SMB2CommandName names a command for messages and docs.
func SMB2CommandName(c uint16) string {
	names := [...]string{"NEGOTIATE", "SESSION_SETUP", "LOGOFF", "TREE_CONNECT", "TREE_DISCONNECT",
		"CREATE", "CLOSE", "FLUSH", "READ", "WRITE", "LOCK", "IOCTL", "CANCEL", "ECHO",
		"QUERY_DIRECTORY", "CHANGE_NOTIFY", "QUERY_INFO", "SET_INFO", "OPLOCK_BREAK"}
	if int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("0x%02x", c)
}
