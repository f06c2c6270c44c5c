package krbseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// Encryption types (RFC 3961 8, RFC 3962, RFC 4757).
const (
	ETypeAES128 = 17 // aes128-cts-hmac-sha1-96
	ETypeAES256 = 18 // aes256-cts-hmac-sha1-96
	ETypeRC4    = 23 // rc4-hmac (the key is the NT hash)
)

// Key usages (RFC 4120 7.5.1, RFC 4121 2).
const (
	usageTicket        = 2
	usageAuthenticator = 11
	usageAPRepPart     = 12
	usageAcceptorSeal  = 22
	usageAcceptorSign  = 23
	usageInitiatorSeal = 24
	usageInitiatorSign = 25
)

// ErrIntegrity means a cipher text did not authenticate under the key:
// the wrong key, or damaged bytes. Nothing of it is used.
var ErrIntegrity = errors.New("integrity check failed")

// errShort is a cipher text too short for its etype's overhead.
var errShort = errors.New("cipher text too short")

// keyLen is the key size of etype, 0 when it is not one this package reads.
func keyLen(etype int) int {
	switch etype {
	case ETypeAES128, ETypeRC4:
		return 16
	case ETypeAES256:
		return 32
	}
	return 0
}

// ETypeName names an encryption type for messages.
func ETypeName(etype int) string {
	switch etype {
	case ETypeAES128:
		return "aes128-cts-hmac-sha1-96"
	case ETypeAES256:
		return "aes256-cts-hmac-sha1-96"
	case ETypeRC4:
		return "rc4-hmac"
	}
	return "etype " + itoa(etype)
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// decrypt opens an RFC 3961 cipher text (confounder, plain text and
// checksum) under key for usage and returns the plain text without the
// confounder. It allocates one buffer of the cipher's size.
func decrypt(etype int, key []byte, usage uint32, ct []byte) ([]byte, error) {
	if len(key) != keyLen(etype) {
		return nil, errors.New("key size does not match its etype")
	}
	switch etype {
	case ETypeAES128, ETypeAES256:
		ke, ki := aesKeys(key, usage)
		return aesDecrypt(ke, ki, ct)
	case ETypeRC4:
		return rc4Decrypt(key, usage, ct)
	}
	return nil, errors.New("unsupported etype")
}

// aesKeys derives the encryption and integrity keys of usage (RFC 3961
// 5.3: DK(base, usage | 0xAA) and DK(base, usage | 0x55)).
func aesKeys(base []byte, usage uint32) (ke, ki []byte) {
	var c [5]byte
	binary.BigEndian.PutUint32(c[:4], usage)
	c[4] = 0xaa
	ke = dk(base, c[:])
	c[4] = 0x55
	ki = dk(base, c[:])
	return ke, ki
}

// dk is RFC 3961 DK for the AES etypes: the AES-CBC (zero IV) iteration
// over n-fold(constant) until the key's size is filled; random-to-key is
// the identity.
func dk(base, constant []byte) []byte {
	b, _ := aes.NewCipher(base) // base has a valid AES size (checked by the caller)
	block := nfold(constant, aes.BlockSize)
	out := make([]byte, 0, len(base)+aes.BlockSize)
	for len(out) < len(base) {
		b.Encrypt(block, block)
		out = append(out, block...)
	}
	return out[:len(base)]
}

// nfold is RFC 3961 5.1 n-fold: in replicated lcm(len(in), n) bytes, each
// copy rotated right by 13 bits more than the one before, summed in n-byte
// blocks with one's-complement addition.
func nfold(in []byte, n int) []byte {
	k := len(in)
	l := lcm(n, k)
	out := make([]byte, n)
	carry := 0
	// Walk the replicated string backwards, adding byte by byte (after
	// MIT's krb5int_nfold).
	for i := l - 1; i >= 0; i-- {
		msbit := (((k << 3) - 1) + (((k << 3) + 13) * (i / k)) + ((k - (i % k)) << 3)) % (k << 3)
		v := ((int(in[((k-1)-(msbit>>3))%k]) << 8) | int(in[(k-(msbit>>3))%k])) >> ((msbit & 7) + 1) & 0xff
		carry += int(out[i%n]) + v
		out[i%n] = byte(carry)
		carry >>= 8
	}
	for carry != 0 {
		for i := n - 1; i >= 0; i-- {
			carry += int(out[i])
			out[i] = byte(carry)
			carry >>= 8
		}
	}
	return out
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// aesDecrypt opens confounder | plain (AES-CTS, zero IV) | HMAC-SHA1-96.
func aesDecrypt(ke, ki, ct []byte) ([]byte, error) {
	const mac = 12
	if len(ct) < aes.BlockSize+mac {
		return nil, errShort
	}
	body, sum := ct[:len(ct)-mac], ct[len(ct)-mac:]
	plain := make([]byte, len(body))
	if err := ctsDecrypt(ke, plain, body); err != nil {
		return nil, err
	}
	h := hmac.New(sha1.New, ki)
	h.Write(plain)
	if subtle.ConstantTimeCompare(h.Sum(nil)[:mac], sum) != 1 {
		return nil, ErrIntegrity
	}
	return plain[aes.BlockSize:], nil
}

// aesEncrypt is aesDecrypt's inverse (tests build tokens with it).
func aesEncrypt(ke, ki, confounder, plain []byte) []byte {
	in := append(append([]byte{}, confounder...), plain...)
	out := make([]byte, len(in))
	ctsEncrypt(ke, out, in)
	h := hmac.New(sha1.New, ki)
	h.Write(in)
	return append(out, h.Sum(nil)[:12]...)
}

// ctsDecrypt is AES-CBC with ciphertext stealing as RFC 3962 uses it
// (CBC-CS3: the last two blocks always swapped), zero IV.
func ctsDecrypt(key, dst, src []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	n := len(src)
	if n < aes.BlockSize {
		return errShort
	}
	if n == aes.BlockSize {
		b.Decrypt(dst, src)
		return nil
	}
	r := n % aes.BlockSize
	if r == 0 {
		r = aes.BlockSize
	}
	head := n - r - aes.BlockSize // bytes before the last two (partial) blocks
	iv := make([]byte, aes.BlockSize)
	if head > 0 {
		cipher.NewCBCDecrypter(b, iv).CryptBlocks(dst[:head], src[:head])
		copy(iv, src[head-aes.BlockSize:head])
	}
	var d, last [aes.BlockSize]byte
	b.Decrypt(d[:], src[head:head+aes.BlockSize])
	copy(last[:], src[head+aes.BlockSize:])
	copy(last[r:], d[r:])
	for i := 0; i < r; i++ {
		dst[head+aes.BlockSize+i] = d[i] ^ last[i]
	}
	b.Decrypt(d[:], last[:])
	for i := range d {
		dst[head+i] = d[i] ^ iv[i]
	}
	return nil
}

// ctsEncrypt is ctsDecrypt's inverse.
func ctsEncrypt(key, dst, src []byte) {
	b, _ := aes.NewCipher(key)
	n := len(src)
	if n == aes.BlockSize {
		b.Encrypt(dst, src)
		return
	}
	r := n % aes.BlockSize
	if r == 0 {
		r = aes.BlockSize
	}
	head := n - r - aes.BlockSize
	iv := make([]byte, aes.BlockSize)
	if head > 0 {
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(dst[:head], src[:head])
		copy(iv, dst[head-aes.BlockSize:head])
	}
	var x, last [aes.BlockSize]byte
	for i := range x {
		x[i] = src[head+i] ^ iv[i]
	}
	b.Encrypt(x[:], x[:]) // E(P[n-1] ^ C[n-2]): its head is the last, short block
	copy(last[:], src[head+aes.BlockSize:])
	for i := range last {
		last[i] ^= x[i]
	}
	var y [aes.BlockSize]byte
	b.Encrypt(y[:], last[:])
	copy(dst[head:], y[:])
	copy(dst[head+aes.BlockSize:], x[:r])
}

// rc4Usage maps a Kerberos key usage to the RC4-HMAC message type (RFC
// 4757 3: usage 3 is sent as 8; the rest as they are).
func rc4Usage(usage uint32) uint32 {
	if usage == 3 {
		return 8
	}
	return usage
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	h := hmac.New(md5.New, key)
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// rc4Decrypt opens checksum(16) | RC4(confounder(8) | plain) (RFC 4757).
func rc4Decrypt(key []byte, usage uint32, ct []byte) ([]byte, error) {
	if len(ct) < 16+8 {
		return nil, errShort
	}
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], rc4Usage(usage))
	k1 := hmacMD5(key, t[:])
	k3 := hmacMD5(k1, ct[:16])
	c, _ := rc4.NewCipher(k3)
	plain := make([]byte, len(ct)-16)
	c.XORKeyStream(plain, ct[16:])
	if subtle.ConstantTimeCompare(hmacMD5(k1, plain), ct[:16]) != 1 {
		return nil, ErrIntegrity
	}
	return plain[8:], nil
}

// rc4Encrypt is rc4Decrypt's inverse (tests build tickets with it).
func rc4Encrypt(key []byte, usage uint32, confounder, plain []byte) []byte {
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], rc4Usage(usage))
	k1 := hmacMD5(key, t[:])
	in := append(append([]byte{}, confounder...), plain...)
	sum := hmacMD5(k1, in)
	k3 := hmacMD5(k1, sum)
	c, _ := rc4.NewCipher(k3)
	out := make([]byte, len(in))
	c.XORKeyStream(out, in)
	return append(sum, out...)
}

// encrypt is decrypt's inverse, for tests.
func encrypt(etype int, key []byte, usage uint32, confounder, plain []byte) []byte {
	if etype == ETypeRC4 {
		return rc4Encrypt(key, usage, confounder, plain)
	}
	ke, ki := aesKeys(key, usage)
	return aesEncrypt(ke, ki, confounder, plain)
}
