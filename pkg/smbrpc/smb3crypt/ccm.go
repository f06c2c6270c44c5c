package smb3crypt

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ccm is AES-CCM (RFC 3610, NIST SP 800-38C): a CBC-MAC over the formatted
// nonce, additional data and message, and counter-mode encryption. Go's
// standard library has GCM but no CCM; SMB 3.0 and 3.0.2 only speak CCM.
type ccm struct {
	b        cipher.Block
	nonceLen int // 7..13; the length field takes the rest of the 15 bytes
	tagLen   int // 4, 6, ..., 16
}

// ErrOpen is returned when a message does not authenticate: a wrong key,
// or bytes that changed.
var ErrOpen = errors.New("smb3crypt: message authentication failed")

// NewCCM returns AES-CCM with the given nonce and tag sizes on b (a
// 16-byte block cipher).
func NewCCM(b cipher.Block, nonceLen, tagLen int) (cipher.AEAD, error) {
	if b.BlockSize() != 16 {
		return nil, errors.New("smb3crypt: ccm needs a 128-bit block cipher")
	}
	if nonceLen < 7 || nonceLen > 13 {
		return nil, errors.New("smb3crypt: ccm nonce must be 7 to 13 bytes")
	}
	if tagLen < 4 || tagLen > 16 || tagLen%2 != 0 {
		return nil, errors.New("smb3crypt: ccm tag must be 4, 6, ..., 16 bytes")
	}
	return &ccm{b: b, nonceLen: nonceLen, tagLen: tagLen}, nil
}

func (c *ccm) NonceSize() int { return c.nonceLen }
func (c *ccm) Overhead() int  { return c.tagLen }

// maxLen is the longest message the length field (15 - nonce bytes) holds.
func (c *ccm) maxLen() uint64 {
	l := 15 - c.nonceLen
	if l >= 8 {
		return 1<<63 - 1
	}
	return 1<<(8*uint(l)) - 1
}

// mac computes the CBC-MAC of RFC 3610 2.2 (before it is encrypted with
// the first counter block).
func (c *ccm) mac(nonce, plain, ad []byte) [16]byte {
	var x, blk [16]byte
	l := 15 - c.nonceLen
	flags := byte((c.tagLen-2)/2<<3 | (l - 1))
	if len(ad) > 0 {
		flags |= 0x40
	}
	x[0] = flags
	copy(x[1:], nonce)
	n := uint64(len(plain))
	for i := 15; i > c.nonceLen; i-- {
		x[i] = byte(n)
		n >>= 8
	}
	c.b.Encrypt(x[:], x[:])
	if len(ad) > 0 {
		// The length of the additional data comes first, in 2, 6 or 10
		// bytes (RFC 3610 2.2), then the data, padded with zeros.
		var hdr []byte
		switch {
		case len(ad) < 0xff00:
			hdr = binary.BigEndian.AppendUint16(blk[:0:16], uint16(len(ad)))
		case uint64(len(ad)) <= 0xffffffff:
			hdr = binary.BigEndian.AppendUint32(append(blk[:0:16], 0xff, 0xfe), uint32(len(ad)))
		default:
			hdr = binary.BigEndian.AppendUint64(append(blk[:0:16], 0xff, 0xff), uint64(len(ad)))
		}
		c.cbc(&x, hdr, ad)
	}
	if len(plain) > 0 {
		c.cbc(&x, nil, plain)
	}
	return x
}

// cbc feeds prefix and data, as one string padded to a whole block, into
// the CBC-MAC state x.
func (c *ccm) cbc(x *[16]byte, prefix, data []byte) {
	var blk [16]byte
	n := copy(blk[:], prefix)
	for {
		m := copy(blk[n:], data)
		data = data[m:]
		n += m
		if n < 16 && len(data) == 0 {
			if n == 0 {
				return
			}
			clear(blk[n:])
		}
		subtle.XORBytes(x[:], x[:], blk[:])
		c.b.Encrypt(x[:], x[:])
		if len(data) == 0 {
			return
		}
		n = 0
	}
}

// ctr XORs src with the key stream of counter blocks 1, 2, ... into dst,
// and returns the first key-stream block (counter 0), which encrypts the
// tag.
func (c *ccm) ctr(nonce, dst, src []byte) [16]byte {
	var a, s0, ks [16]byte
	a[0] = byte(15 - c.nonceLen - 1)
	copy(a[1:], nonce)
	c.b.Encrypt(s0[:], a[:])
	for ctr := uint64(1); len(src) > 0; ctr++ {
		v := ctr
		for i := 15; i > c.nonceLen; i-- {
			a[i] = byte(v)
			v >>= 8
		}
		c.b.Encrypt(ks[:], a[:])
		n := subtle.XORBytes(dst, src, ks[:])
		dst, src = dst[n:], src[n:]
	}
	return s0
}

// sliceForAppend extends in by n bytes, reusing its capacity (as
// crypto/cipher does): head is the whole result, tail the new part.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

func (c *ccm) Seal(dst, nonce, plaintext, ad []byte) []byte {
	if len(nonce) != c.nonceLen {
		panic("smb3crypt: ccm nonce of the wrong size")
	}
	if uint64(len(plaintext)) > c.maxLen() {
		panic("smb3crypt: ccm message too long for its nonce size")
	}
	tag := c.mac(nonce, plaintext, ad)
	ret, out := sliceForAppend(dst, len(plaintext)+c.tagLen)
	s0 := c.ctr(nonce, out[:len(plaintext)], plaintext)
	subtle.XORBytes(out[len(plaintext):], tag[:c.tagLen], s0[:c.tagLen])
	return ret
}

// Open decrypts and authenticates ciphertext (the message and its tag).
// The plaintext is written to dst's tail; on failure nothing of it is
// returned and the tail is cleared. Lengths come from the slices, never
// from the message.
func (c *ccm) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(nonce) != c.nonceLen || len(ciphertext) < c.tagLen {
		return nil, ErrOpen
	}
	n := len(ciphertext) - c.tagLen
	if uint64(n) > c.maxLen() {
		return nil, ErrOpen
	}
	ret, out := sliceForAppend(dst, n)
	s0 := c.ctr(nonce, out, ciphertext[:n])
	tag := c.mac(nonce, out, ad)
	var want [16]byte
	subtle.XORBytes(want[:c.tagLen], tag[:c.tagLen], s0[:c.tagLen])
	if subtle.ConstantTimeCompare(want[:c.tagLen], ciphertext[n:]) != 1 {
		clear(out)
		return nil, ErrOpen
	}
	return ret, nil
}
