// Package smb3crypt opens SMB3-encrypted messages (MS-SMB2 2.2.41
// TRANSFORM_HEADER) given the session key: the SMB 3.x key derivation
// (SP800-108 counter mode with HMAC-SHA256, MS-SMB2 3.1.4.2), SMB 3.1.1
// preauthentication integrity (SHA-512 chained over NEGOTIATE and
// SESSION_SETUP), and the four ciphers (AES-128/256 in CCM and GCM; CCM is
// implemented here, GCM is the standard library's).
//
// Keys are never part of an error message or of anything this package
// formats.
package smb3crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// SMB2 dialects that encrypt (MS-SMB2 2.2.3).
const (
	Dialect300 = 0x0300
	Dialect302 = 0x0302
	Dialect311 = 0x0311
)

// Cipher identifiers of the encryption capabilities context (MS-SMB2
// 2.2.3.1.2).
const (
	AES128CCM = 0x0001
	AES128GCM = 0x0002
	AES256CCM = 0x0003
	AES256GCM = 0x0004
)

// CipherName names a cipher for messages and docs.
func CipherName(id uint16) string {
	switch id {
	case AES128CCM:
		return "AES-128-CCM"
	case AES128GCM:
		return "AES-128-GCM"
	case AES256CCM:
		return "AES-256-CCM"
	case AES256GCM:
		return "AES-256-GCM"
	}
	return fmt.Sprintf("cipher 0x%04x", id)
}

// KDF is SP800-108's key derivation in counter mode with HMAC-SHA256 as
// the PRF and r = 32 (MS-SMB2 3.1.4.2): K(i) = PRF(key, [i] || label ||
// 0x00 || context || [L]), L in bits, a multiple of 8 up to 512. MS-SMB2's
// labels and contexts carry their own terminating NUL.
func KDF(key, label, context []byte, bits int) []byte {
	out := make([]byte, 0, (bits/8+31)/32*32)
	h := hmac.New(sha256.New, key)
	var num [4]byte
	for i := uint32(1); len(out) < bits/8; i++ {
		h.Reset()
		binary.BigEndian.PutUint32(num[:], i)
		h.Write(num[:])
		h.Write(label)
		h.Write([]byte{0})
		h.Write(context)
		binary.BigEndian.PutUint32(num[:], uint32(bits))
		h.Write(num[:])
		out = h.Sum(out)
	}
	return out[:bits/8]
}

// Labels and contexts of the encryption keys (MS-SMB2 3.2.5.3.1).
var (
	label30      = []byte("SMB2AESCCM\x00")
	ctxServerIn  = []byte("ServerIn \x00")
	ctxServerOut = []byte("ServerOut\x00")
	labelC2S311  = []byte("SMBC2SCipherKey\x00")
	labelS2C311  = []byte("SMBS2CCipherKey\x00")
)

// Directions of a session's messages.
const (
	ClientToServer = 0
	ServerToClient = 1
)

// ErrUnsupported: a dialect or cipher this package does not know.
var ErrUnsupported = errors.New("smb3crypt: unsupported dialect or cipher")

// Session opens the encrypted messages of one SMB session, both
// directions.
type Session struct {
	aead   [2]cipher.AEAD
	nonce  int // bytes of the transform's Nonce field the cipher uses
	Cipher uint16
}

// NewSession derives a session's keys (MS-SMB2 3.2.5.3.1): sessionKey is
// the full GSS session key (for NTLM the 16-byte exported session key),
// cipherID the connection's cipher (AES128CCM for 3.0 and 3.0.2), preauth
// the session's preauthentication hash (3.1.1 only, else ignored).
func NewSession(dialect, cipherID uint16, sessionKey []byte, preauth *[64]byte) (*Session, error) {
	bits := 128
	key := sessionKey
	switch cipherID {
	case AES128CCM, AES128GCM:
		// The first 16 bytes of the session key (MS-SMB2 3.2.5.3).
		if len(key) > 16 {
			key = key[:16]
		}
	case AES256CCM, AES256GCM:
		bits = 256 // with the full session key
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, CipherName(cipherID))
	}
	if len(key) == 0 {
		return nil, errors.New("smb3crypt: empty session key")
	}
	var c2s, s2c []byte
	switch dialect {
	case Dialect300, Dialect302:
		if cipherID != AES128CCM {
			return nil, fmt.Errorf("%w: %s under dialect 0x%04x", ErrUnsupported, CipherName(cipherID), dialect)
		}
		c2s, s2c = KDF(key, label30, ctxServerIn, bits), KDF(key, label30, ctxServerOut, bits)
	case Dialect311:
		if preauth == nil {
			return nil, errors.New("smb3crypt: dialect 3.1.1 needs the preauthentication hash")
		}
		c2s, s2c = KDF(key, labelC2S311, preauth[:], bits), KDF(key, labelS2C311, preauth[:], bits)
	default:
		return nil, fmt.Errorf("%w: dialect 0x%04x", ErrUnsupported, dialect)
	}
	s := &Session{Cipher: cipherID}
	for i, k := range [2][]byte{c2s, s2c} {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		switch cipherID {
		case AES128CCM, AES256CCM:
			s.aead[i], err = NewCCM(b, 11, 16)
			s.nonce = 11
		default:
			s.aead[i], err = cipher.NewGCM(b)
			s.nonce = 12
		}
		if err != nil {
			return nil, err
		}
		clear(k)
	}
	return s, nil
}
