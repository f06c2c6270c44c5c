package smbrpc

import (
	"encoding/binary"
	"errors"
)

// SMB1 commands replay follows (MS-CIFS 2.2.2.1).
const (
	SMB1Close          = 0x04
	SMB1Delete         = 0x06
	SMB1WriteCore      = 0x0b // SMB_COM_WRITE, as winexe writes its pipes
	SMB1Trans          = 0x25
	SMB1ReadAndX       = 0x2e
	SMB1WriteAndX      = 0x2f
	SMB1TreeDisconnect = 0x71
	SMB1Negotiate      = 0x72
	SMB1SessionSetup   = 0x73
	SMB1Logoff         = 0x74
	SMB1TreeConnect    = 0x75
	SMB1NTCreate       = 0xa2
	smb1NoAndX         = 0xff
)

// SMB1 header flags.
const (
	smb1FlagReply     = 0x80
	smb1Flags2Unicode = 0x8000
)

// SMB1HeaderLen is the fixed SMB1 header size.
const SMB1HeaderLen = 32

// SMB1Header is the fixed header of an SMB1 message.
type SMB1Header struct {
	Command byte
	Status  uint32
	Flags   byte
	Flags2  uint16
	TID     uint16
	PID     uint16
	UID     uint16
	MID     uint16
}

// Reply reports whether the message is a server response.
func (h *SMB1Header) Reply() bool { return h.Flags&smb1FlagReply != 0 }

// Unicode reports whether strings in the message are UTF-16.
func (h *SMB1Header) Unicode() bool { return h.Flags2&smb1Flags2Unicode != 0 }

// SMB1Cmd is one command of an AndX chain: its parameter words and data
// bytes, and where the data starts in the message (offsets in SMB1 count
// from the header and unicode strings are aligned to it).
type SMB1Cmd struct {
	Command byte
	Words   []byte
	Bytes   []byte
	BytesAt int
}

var errNotSMB1 = errors.New("smbrpc: not an SMB1 message")

// ParseSMB1 decodes the header and follows the AndX chain, calling fn for
// each command. A damaged command ends the chain with an error.
func ParseSMB1(msg []byte, fn func(h SMB1Header, c SMB1Cmd)) (SMB1Header, error) {
	var h SMB1Header
	if len(msg) < SMB1HeaderLen+1 || SMBProto(msg) != ProtoSMB1 {
		return h, errNotSMB1
	}
	h.Command = msg[4]
	h.Status = binary.LittleEndian.Uint32(msg[5:])
	h.Flags = msg[9]
	h.Flags2 = binary.LittleEndian.Uint16(msg[10:])
	h.TID = binary.LittleEndian.Uint16(msg[24:])
	h.PID = binary.LittleEndian.Uint16(msg[26:])
	h.UID = binary.LittleEndian.Uint16(msg[28:])
	h.MID = binary.LittleEndian.Uint16(msg[30:])
	cmd, off := h.Command, SMB1HeaderLen
	for i := 0; i < 8; i++ { // AndX chains are short; offsets must move forward
		c, ok := smb1Cmd(msg, cmd, off)
		if !ok {
			return h, ErrShort
		}
		fn(h, c)
		if !smb1IsAndX(cmd) || len(c.Words) < 4 || c.Words[0] == smb1NoAndX {
			return h, nil
		}
		next := int(binary.LittleEndian.Uint16(c.Words[2:]))
		if next <= off || next >= len(msg) {
			return h, nil
		}
		cmd, off = c.Words[0], next
	}
	return h, nil
}

func smb1IsAndX(c byte) bool {
	switch c {
	case SMB1SessionSetup, SMB1TreeConnect, SMB1NTCreate, SMB1ReadAndX, SMB1WriteAndX, SMB1Logoff, 0x2d, 0x24:
		return true
	}
	return false
}

func smb1Cmd(msg []byte, cmd byte, off int) (SMB1Cmd, bool) {
	c := SMB1Cmd{Command: cmd}
	if off >= len(msg) {
		return c, false
	}
	wc := int(msg[off])
	words, ok := span(msg, off+1, 2*wc)
	if !ok {
		return c, false
	}
	c.Words = words
	at := off + 1 + 2*wc
	if len(msg) < at+2 {
		return c, wc == 0 // an error reply may stop after a zero word count
	}
	bc := int(binary.LittleEndian.Uint16(msg[at:]))
	c.BytesAt = at + 2
	c.Bytes, ok = span(msg, c.BytesAt, bc)
	if !ok { // keep what was captured; callers treat data as incomplete
		c.Bytes = msg[c.BytesAt:]
	}
	return c, true
}

func w16(w []byte, i int) uint16 {
	if len(w) < 2*i+2 {
		return 0
	}
	return binary.LittleEndian.Uint16(w[2*i:])
}

func w32(w []byte, i int) uint32 {
	return uint32(w16(w, i)) | uint32(w16(w, i+1))<<16
}

// smb1String reads a NUL-terminated string from the data bytes at position
// i, aligning unicode strings to an even offset from the header.
func smb1String(h SMB1Header, c SMB1Cmd, i int) (string, int) {
	if i < 0 || i > len(c.Bytes) {
		return "", len(c.Bytes)
	}
	b := c.Bytes[i:]
	if !h.Unicode() {
		for j, x := range b {
			if x == 0 {
				return OEM(b[:j]), i + j + 1
			}
		}
		return OEM(b), len(c.Bytes)
	}
	if (c.BytesAt+i)%2 == 1 && len(b) > 0 {
		b, i = b[1:], i+1
	}
	for j := 0; j+1 < len(b); j += 2 {
		if b[j] == 0 && b[j+1] == 0 {
			return UTF16(b[:j]), i + j + 2
		}
	}
	return UTF16(b), len(c.Bytes)
}

// SMB1SessionSetupBlob returns the security blob of an extended-security
// SESSION_SETUP_ANDX request (12 words) or response (4 words).
func SMB1SessionSetupBlob(c SMB1Cmd, reply bool) []byte {
	var l int
	switch {
	case reply && len(c.Words) == 8:
		l = int(w16(c.Words, 3))
	case !reply && len(c.Words) == 24:
		l = int(w16(c.Words, 7))
	default:
		return nil
	}
	if l > len(c.Bytes) {
		l = len(c.Bytes)
	}
	return c.Bytes[:l]
}

// SMB1PlainLogon returns the account of a pre-NTLMSSP SESSION_SETUP_ANDX
// request (13 words: passwords in the clear or LM/NT responses).
func SMB1PlainLogon(h SMB1Header, c SMB1Cmd) (user, domain string, ok bool) {
	if len(c.Words) != 26 {
		return "", "", false
	}
	skip := int(w16(c.Words, 7)) + int(w16(c.Words, 8))
	if skip > len(c.Bytes) {
		return "", "", false
	}
	user, i := smb1String(h, c, skip)
	domain, _ = smb1String(h, c, i)
	return user, domain, true
}

// SMB1TreePath returns the UNC path of a TREE_CONNECT_ANDX request.
func SMB1TreePath(h SMB1Header, c SMB1Cmd) string {
	if len(c.Words) != 8 {
		return ""
	}
	pw := int(w16(c.Words, 3))
	p, _ := smb1String(h, c, pw)
	return p
}

// SMB1CreateName returns the file name of an NT_CREATE_ANDX request.
func SMB1CreateName(h SMB1Header, c SMB1Cmd) string {
	if len(c.Words) != 48 {
		return ""
	}
	n, _ := smb1String(h, c, 0)
	return n
}

// SMB1CreateOptions returns the CreateOptions of an NT_CREATE_ANDX
// request (MS-SMB 2.2.4.9.1: FILE_DELETE_ON_CLOSE among them).
func SMB1CreateOptions(c SMB1Cmd) uint32 {
	if len(c.Words) != 48 {
		return 0
	}
	return binary.LittleEndian.Uint32(c.Words[39:])
}

// SMB1DeleteName returns the file name of an SMB_COM_DELETE request
// (MS-CIFS 2.2.4.7.1: SearchAttributes, then a buffer format 0x04 and the
// name).
func SMB1DeleteName(h SMB1Header, c SMB1Cmd) (string, bool) {
	if len(c.Words) != 2 || len(c.Bytes) < 2 || c.Bytes[0] != 0x04 {
		return "", false
	}
	n, _ := smb1String(h, c, 1)
	return n, n != ""
}

// SMB1CreateFID returns the FID an NT_CREATE_ANDX response assigned.
func SMB1CreateFID(c SMB1Cmd) (uint16, bool) {
	if len(c.Words) < 7 { // AndX(4) oplock(1) FID(2)
		return 0, false
	}
	return binary.LittleEndian.Uint16(c.Words[5:]), true
}

// SMB1CreateSize returns the end-of-file an NT_CREATE_ANDX response reports.
func SMB1CreateSize(c SMB1Cmd) uint64 {
	if len(c.Words) < 63 {
		return 0
	}
	return binary.LittleEndian.Uint64(c.Words[55:])
}

// SMB1Write is a WRITE_ANDX request.
type SMB1Write struct {
	FID      uint16
	Offset   uint64
	Data     []byte
	Complete bool
}

// ParseSMB1Write decodes a WRITE_ANDX request (12 or 14 words).
func ParseSMB1Write(msg []byte, c SMB1Cmd) (SMB1Write, bool) {
	var w SMB1Write
	if len(c.Words) != 24 && len(c.Words) != 28 {
		return w, false
	}
	w.FID = w16(c.Words, 2)
	w.Offset = uint64(w32(c.Words, 3))
	if len(c.Words) == 28 {
		w.Offset |= uint64(w32(c.Words, 12)) << 32
	}
	l := int(w16(c.Words, 10)) | int(w16(c.Words, 9))<<16
	off := int(w16(c.Words, 11))
	w.Data, w.Complete = span(msg, off, l)
	if !w.Complete && off >= 0 && off <= len(msg) {
		w.Data = msg[off:]
	}
	return w, true
}

// ParseSMB1WriteCore decodes an SMB_COM_WRITE request (MS-CIFS 2.2.4.12:
// 5 words FID, count, 32-bit offset, remaining; data as a buffer of
// format 0x01 with its own 16-bit length). Data past what was captured is
// cut and marked incomplete.
func ParseSMB1WriteCore(c SMB1Cmd) (SMB1Write, bool) {
	var w SMB1Write
	if len(c.Words) != 10 || len(c.Bytes) < 3 || c.Bytes[0] != 0x01 {
		return w, false
	}
	w.FID = w16(c.Words, 0)
	w.Offset = uint64(w32(c.Words, 2))
	l := int(binary.LittleEndian.Uint16(c.Bytes[1:]))
	w.Data, w.Complete = span(c.Bytes, 3, l)
	if !w.Complete {
		w.Data = c.Bytes[3:]
	}
	return w, true
}

// SMB1ReadFID returns the FID of a READ_ANDX request (10 or 12 words).
func SMB1ReadFID(c SMB1Cmd) (uint16, bool) {
	if len(c.Words) != 20 && len(c.Words) != 24 {
		return 0, false
	}
	return w16(c.Words, 2), true
}

// SMB1ReadData returns the data of a READ_ANDX response (12 words).
func SMB1ReadData(msg []byte, c SMB1Cmd) ([]byte, bool) {
	if len(c.Words) != 24 {
		return nil, false
	}
	l := int(w16(c.Words, 5)) | int(w16(c.Words, 7))<<16
	off := int(w16(c.Words, 6))
	d, ok := span(msg, off, l)
	if !ok && off >= 0 && off <= len(msg) {
		return msg[off:], false
	}
	return d, ok
}

// SMB1Transaction is a TRANSACTION request or response on a named pipe.
type SMB1Transaction struct {
	Function uint16 // setup word 0 of a request: 0x26 TransactNmPipe
	FID      uint16 // setup word 1 of a request
	Name     string // request only: \PIPE\ or \PIPE\LANMAN
	Data     []byte
	Complete bool
}

// ParseSMB1Trans decodes a TRANSACTION request (14+ words) or response
// (10+ words). Only the first part of a multi-part transaction is read.
func ParseSMB1Trans(msg []byte, h SMB1Header, c SMB1Cmd) (SMB1Transaction, bool) {
	var t SMB1Transaction
	var dcnt, doff int
	switch {
	case !h.Reply() && len(c.Words) >= 28:
		dcnt, doff = int(w16(c.Words, 11)), int(w16(c.Words, 12))
		setup := int(c.Words[26])
		if setup >= 2 && len(c.Words) >= 28+2*setup {
			t.Function = w16(c.Words, 14)
			t.FID = w16(c.Words, 15)
		}
		t.Name, _ = smb1String(h, c, 0)
	case h.Reply() && len(c.Words) >= 20:
		dcnt, doff = int(w16(c.Words, 6)), int(w16(c.Words, 7))
	default:
		return t, false
	}
	t.Data, t.Complete = span(msg, doff, dcnt)
	if !t.Complete && doff >= 0 && doff <= len(msg) {
		t.Data = msg[doff:]
	}
	return t, true
}

// SMB1CloseFID returns the FID a CLOSE request closes.
func SMB1CloseFID(c SMB1Cmd) (uint16, bool) {
	if len(c.Words) != 6 {
		return 0, false
	}
	return w16(c.Words, 0), true
}
