package ntlmseal

import (
	"crypto/hmac"
	"crypto/rc4"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
)

// SignatureLen is the NTLMSSP_MESSAGE_SIGNATURE a sealed PDU carries as
// its auth value (MS-NLMP 2.2.2.9).
const SignatureLen = 16

// Directions of an association.
const (
	ClientToServer = 0
	ServerToClient = 1
)

// ErrChecksum: a PDU's verifier does not match what was decrypted: a PDU
// of the direction was lost or reordered, or the keys are wrong.
var ErrChecksum = errors.New("verifier checksum mismatch")

// Session is the sealing state of one association: per direction an RC4
// state continuous across the PDUs and a sequence number. Without extended
// session security both directions share one state. Not safe for
// concurrent use.
type Session struct {
	ess, keyExch bool
	dirs         [2]*dirState
}

type dirState struct {
	rc4     *rc4.Cipher
	signKey [16]byte
	mac     hash.Hash
	seq     uint32
	// broken is why the RC4 stream lost its place: every later PDU of
	// the direction fails with it (RC4 cannot skip an unseen message).
	broken error
}

// Unseal opens one sealed PDU in place. pdu is the whole fragment, which
// the caller owns (it is changed); [from, to) is its sealed part (the stub
// and the auth padding), followed by the 8-byte auth trailer and the
// 16-byte signature that ends pdu. The verifier is checked against the
// plaintext; on error the PDU is left undecided garbage and the direction
// refuses every later PDU.
func (s *Session) Unseal(dir int, pdu []byte, from, to int) error {
	if dir != ClientToServer && dir != ServerToClient {
		return fmt.Errorf("direction %d", dir)
	}
	if d := s.dirs[dir]; d.broken != nil {
		return d.broken
	}
	if from < 0 || from > to || to+8+SignatureLen != len(pdu) {
		// Not an NTLM verifier (a Kerberos one is longer): the PDU
		// cannot be one of this session's.
		return fmt.Errorf("%w: verifier of %d bytes, not an NTLM signature", ErrMalformed, len(pdu)-to-8)
	}
	return s.open(dir, pdu[from:to], pdu[len(pdu)-SignatureLen:], pdu[:len(pdu)-SignatureLen])
}

// UnsealMessage opens one message sealed with GSS_WrapEx as HTTP carries
// it (MS-WSMV 2.2.9.1.1: WinRM's HTTP-SPNEGO-session-encrypted parts):
// sig is its 16-byte NTLMSSP_MESSAGE_SIGNATURE, msg the sealed bytes,
// opened in place; the checksum covers the plaintext alone. The same
// rules as Unseal hold: one RC4 stream and sequence per direction, and a
// failure breaks the direction for good.
func (s *Session) UnsealMessage(dir int, sig, msg []byte) error {
	if dir != ClientToServer && dir != ServerToClient {
		return fmt.Errorf("direction %d", dir)
	}
	if d := s.dirs[dir]; d.broken != nil {
		return d.broken
	}
	if len(sig) != SignatureLen {
		return fmt.Errorf("%w: signature of %d bytes, not an NTLM signature", ErrMalformed, len(sig))
	}
	return s.open(dir, msg, sig, nil)
}

// open decrypts sealed in place and checks sig against the plaintext
// (and, when whole is given, against the PDU as Windows signs it).
func (s *Session) open(dir int, sealed, sig, whole []byte) error {
	d := s.dirs[dir]
	if binary.LittleEndian.Uint32(sig) != 1 {
		d.broken = fmt.Errorf("%w: signature version %d", ErrChecksum, binary.LittleEndian.Uint32(sig))
		return d.broken
	}
	d.rc4.XORKeyStream(sealed, sealed)
	if s.ess {
		var sum [8]byte
		copy(sum[:], sig[4:12])
		if s.keyExch {
			d.rc4.XORKeyStream(sum[:], sum[:])
		}
		seq := binary.LittleEndian.Uint32(sig[12:])
		if seq != d.seq {
			// In clear under extended session security: a gap in the
			// sequence is a lost PDU, whatever the key.
			d.broken = fmt.Errorf("%w: sequence number %d, expected %d: PDUs were lost", ErrChecksum, seq, d.seq)
			return d.broken
		}
		// Windows signs the whole PDU up to the signature; some stacks
		// (without header signing) only the stub: either proves it.
		if (whole == nil || !d.macOK(sum, seq, whole)) && !d.macOK(sum, seq, sealed) {
			return d.fail()
		}
		d.seq++
		return nil
	}
	var rest [12]byte // random pad, CRC-32, sequence number: all under RC4
	copy(rest[:], sig[4:16])
	d.rc4.XORKeyStream(rest[:], rest[:])
	crc := binary.LittleEndian.Uint32(rest[4:])
	seq := binary.LittleEndian.Uint32(rest[8:])
	if crc != crc32.ChecksumIEEE(sealed) && (whole == nil || crc != crc32.ChecksumIEEE(whole)) {
		return d.fail()
	}
	if seq != d.seq {
		d.broken = fmt.Errorf("%w: sequence number %d, expected %d: PDUs were lost", ErrChecksum, seq, d.seq)
		return d.broken
	}
	d.seq++
	return nil
}

func (d *dirState) macOK(sum [8]byte, seq uint32, msg []byte) bool {
	d.mac.Reset()
	var sb [4]byte
	binary.LittleEndian.PutUint32(sb[:], seq)
	d.mac.Write(sb[:])
	d.mac.Write(msg)
	var full [16]byte
	return hmac.Equal(d.mac.Sum(full[:0])[:8], sum[:])
}

// fail records a checksum mismatch: on the first PDU of a direction it
// means wrong keys, later a lost or reordered PDU.
func (d *dirState) fail() error {
	if d.seq == 0 {
		d.broken = fmt.Errorf("%w on the first sealed PDU: wrong keys", ErrChecksum)
	} else {
		d.broken = fmt.Errorf("%w after %d good PDUs: a PDU was lost or reordered", ErrChecksum, d.seq)
	}
	return d.broken
}
