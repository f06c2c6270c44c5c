package smb3crypt

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Transform header layout (MS-SMB2 2.2.41): ProtocolId (4), Signature
// (16), Nonce (16), OriginalMessageSize (4), Reserved (2), Flags (2),
// SessionId (8), then the encrypted message (smbrpc.SMB2TransformLen
// bytes of header in all; smbrpc.ParseSMB2Transform reads its session).
const (
	hdrLen   = smbrpc.SMB2TransformLen
	sigOff   = 4
	nonceOff = 20
	sizeOff  = 36
	sessOff  = 44
	tagLen   = 16
)

// Errors of Open; callers branch on them.
var (
	// ErrMalformed: not a transform message, or its size does not match
	// the bytes present (a capture cut short).
	ErrMalformed = errors.New("smb3crypt: malformed transform message")
	// ErrDirection: a direction other than ClientToServer, ServerToClient.
	ErrDirection = errors.New("smb3crypt: bad direction")
)

// Open decrypts one transform message (from its ProtocolId to its end)
// sent in direction dir, and returns the SMB2 message(s) it carried (maybe
// a compound, maybe a compression transform), in buf's storage when it
// has room (callers keep one buffer for all sessions), else in a new
// slice that grows with the bytes present, never from the header's size.
// A message whose tag does not verify (a wrong key, or damage) returns
// ErrOpen and no plaintext.
func (s *Session) Open(dir int, msg, buf []byte) ([]byte, error) {
	if dir != ClientToServer && dir != ServerToClient {
		return nil, ErrDirection
	}
	if len(msg) < hdrLen || smbrpc.SMBProto(msg) != smbrpc.ProtoTransform {
		return nil, ErrMalformed
	}
	size := binary.LittleEndian.Uint32(msg[sizeOff:])
	body := msg[hdrLen:]
	if uint64(size) != uint64(len(body)) {
		return nil, fmt.Errorf("%w: original size %d, %d bytes present", ErrMalformed, size, len(body))
	}
	// Go's AEADs take the tag after the ciphertext: lay them out so and
	// open in place.
	need := len(body) + tagLen
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]
	copy(buf, body)
	copy(buf[len(body):], msg[sigOff:sigOff+tagLen])
	out, err := s.aead[dir].Open(buf[:0], msg[nonceOff:nonceOff+s.nonce], buf, msg[nonceOff:hdrLen])
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// Seal builds the transform message that carries plain in direction dir
// (MS-SMB2 3.1.4.3): what a client or server sends. nonce is the Nonce
// field: the cipher takes its first 11 (CCM) or 12 (GCM) bytes, and the
// whole field is authenticated. Tests make fixtures with it.
func (s *Session) Seal(dir int, nonce [16]byte, sessionID uint64, plain []byte) []byte {
	msg := make([]byte, hdrLen, hdrLen+len(plain)+tagLen)
	copy(msg, "\xfdSMB")
	copy(msg[nonceOff:], nonce[:])
	binary.LittleEndian.PutUint32(msg[sizeOff:], uint32(len(plain)))
	binary.LittleEndian.PutUint16(msg[sizeOff+6:], 1) // Flags: encrypted
	binary.LittleEndian.PutUint64(msg[sessOff:], sessionID)
	sealed := s.aead[dir&1].Seal(msg[hdrLen:], msg[nonceOff:nonceOff+s.nonce], plain, msg[nonceOff:hdrLen])
	copy(msg[sigOff:], sealed[len(plain):])
	return msg[:hdrLen+len(plain)]
}

// Preauth is the SMB 3.1.1 preauthentication integrity hash (MS-SMB2
// 3.2.5.2, 3.2.5.3): H = SHA-512(H || message), from 64 zero bytes.
type Preauth struct {
	Value [64]byte
	h     hash.Hash
}

// Reset starts over from zero (a new NEGOTIATE).
func (p *Preauth) Reset() { p.Value = [64]byte{} }

// Add chains one whole SMB2 message into the hash.
func (p *Preauth) Add(msg []byte) {
	if p.h == nil {
		p.h = sha512.New()
	}
	p.h.Reset()
	p.h.Write(p.Value[:])
	p.h.Write(msg)
	p.h.Sum(p.Value[:0])
}
