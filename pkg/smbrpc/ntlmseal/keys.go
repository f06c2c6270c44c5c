package ntlmseal

import (
	"bytes"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	//lint:ignore SA1019 MD4 is what NTLM's keys are made of: compatibility, not security
	"golang.org/x/crypto/md4"
)

// NegotiateFlags bits used here (MS-NLMP 2.2.2.5).
const (
	flagUnicode     = 0x00000001
	flagSeal        = 0x00000020
	flagLMKey       = 0x00000080
	flagESS         = 0x00080000 // NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
	flagNonNTKey    = 0x00400000
	flag128         = 0x20000000
	flagKeyExch     = 0x40000000
	flag56          = 0x80000000
	challengeMinLen = 32
	authMinLen      = 64
)

// Errors Open returns; callers branch on them.
var (
	// ErrNoSecret: the AUTHENTICATE names no account of the file (or an
	// anonymous one). Its sealed calls are shown as without secrets.
	ErrNoSecret = errors.New("no secret for this account")
	// ErrWrongSecret: the file has the account, but none of its secrets
	// makes the response the AUTHENTICATE carries.
	ErrWrongSecret = errors.New("the given secret does not match the account's response (wrong password or hash)")
	// ErrNoChallenge: the CHALLENGE was not captured (the server
	// challenge is needed for every key).
	ErrNoChallenge = errors.New("the NTLM CHALLENGE of the association was not captured")
	// ErrUnsupported: a variant whose keys need more than the NT hash.
	ErrUnsupported = errors.New("unsupported NTLM variant")
	// ErrMalformed: a message field points outside the message.
	ErrMalformed = errors.New("malformed NTLMSSP message")
)

// authMsg is what key derivation needs of an AUTHENTICATE: slices into
// the message, nothing copied.
type authMsg struct {
	lm, nt, domain, user, encKey []byte
	flags                        uint32
}

func field(msg []byte, at int) ([]byte, bool) {
	l := int(binary.LittleEndian.Uint16(msg[at:]))
	off := int(binary.LittleEndian.Uint32(msg[at+4:]))
	if l == 0 {
		return nil, true
	}
	if off < 0 || off > len(msg) || l > len(msg)-off {
		return nil, false
	}
	return msg[off : off+l : off+l], true
}

func parseAuth(msg []byte) (authMsg, bool) {
	var a authMsg
	if smbrpc.NTLMType(msg) != smbrpc.NTLMAuthenticate || len(msg) < authMinLen {
		return a, false
	}
	var ok [5]bool
	a.lm, ok[0] = field(msg, 12)
	a.nt, ok[1] = field(msg, 20)
	a.domain, ok[2] = field(msg, 28)
	a.user, ok[3] = field(msg, 36)
	a.encKey, ok[4] = field(msg, 52)
	a.flags = binary.LittleEndian.Uint32(msg[60:])
	return a, ok == [5]bool{true, true, true, true, true}
}

// ServerChallenge returns the 8-byte server challenge of a CHALLENGE
// message.
func ServerChallenge(msg []byte) ([8]byte, bool) {
	var c [8]byte
	if smbrpc.NTLMType(msg) != smbrpc.NTLMChallenge || len(msg) < challengeMinLen {
		return c, false
	}
	copy(c[:], msg[24:32])
	return c, true
}

func str(b []byte, flags uint32) string {
	if flags&flagUnicode != 0 {
		return smbrpc.UTF16(b)
	}
	return smbrpc.OEM(b)
}

func hmacMD5(key []byte, data ...[]byte) [16]byte {
	h := hmac.New(md5.New, key)
	for _, d := range data {
		h.Write(d)
	}
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// Open derives the session of an association from its CHALLENGE and
// AUTHENTICATE (both NTLMSSP messages, as smbrpc.FindNTLMSSP returns them;
// challenge nil when it was not captured). It tries every entry naming
// the account and keeps the one the AUTHENTICATE's response proves.
func (s *Secrets) Open(challenge, authenticate []byte) (*Session, error) {
	kx, a, err := s.prove(challenge, authenticate)
	if err != nil {
		return nil, err
	}
	return newSession(kx, a)
}

// SessionKey returns the exported session key of an NTLM authentication
// (MS-NLMP 3.1.5.1.2: the random session key under KEY_EXCH, else the key
// exchange key), which SMB2 takes as Session.SessionKey (MS-SMB2 3.2.5.3)
// and derives its signing and encryption keys from. Same arguments and
// errors as Open. The caller must never print it.
func (s *Secrets) SessionKey(challenge, authenticate []byte) ([16]byte, error) {
	kx, a, err := s.prove(challenge, authenticate)
	if err != nil {
		return [16]byte{}, err
	}
	return exportedKey(kx, a)
}

// prove finds the entry whose secret makes the AUTHENTICATE's response
// and returns its key exchange key.
func (s *Secrets) prove(challenge, authenticate []byte) ([16]byte, authMsg, error) {
	a, ok := parseAuth(authenticate)
	if !ok {
		return [16]byte{}, a, ErrMalformed
	}
	user, domain := str(a.user, a.flags), str(a.domain, a.flags)
	if user == "" || len(a.nt) == 0 {
		return [16]byte{}, a, ErrNoSecret // anonymous: nothing to derive from
	}
	cands := s.match(user, domain)
	if len(cands) == 0 {
		return [16]byte{}, a, ErrNoSecret
	}
	sc, ok := ServerChallenge(challenge)
	if !ok {
		return [16]byte{}, a, ErrNoChallenge
	}
	for _, e := range cands {
		var kx [16]byte
		var err error
		switch {
		case len(a.nt) > 24:
			kx, ok = ntlmV2(e.nt, user, domain, sc, a.nt)
		case len(a.nt) == 24:
			kx, ok, err = ntlmV1(e.nt, sc, a)
		default:
			return [16]byte{}, a, fmt.Errorf("%w: NT response of %d bytes", ErrMalformed, len(a.nt))
		}
		if err != nil {
			return [16]byte{}, a, err
		}
		if ok {
			return kx, a, nil
		}
	}
	return [16]byte{}, a, ErrWrongSecret
}

// ntlmV2 checks the NTProofStr and returns the key exchange key (MS-NLMP
// 3.3.2: NTOWFv2, then the session base key, which NTLMv2 uses as is).
func ntlmV2(nt [16]byte, user, domain string, sc [8]byte, resp []byte) ([16]byte, bool) {
	owf := hmacMD5(nt[:], utf16le(strings.ToUpper(user)+domain))
	proof := hmacMD5(owf[:], sc[:], resp[16:])
	if !hmac.Equal(proof[:], resp[:16]) {
		return [16]byte{}, false
	}
	return hmacMD5(owf[:], proof[:]), true
}

// ntlmV1 checks the 24-byte response (with extended session security its
// challenge is mixed with the client's, carried in the LM response) and
// returns the key exchange key (MS-NLMP 3.3.1, 3.4.5.1 KXKEY).
func ntlmV1(nt [16]byte, sc [8]byte, a authMsg) ([16]byte, bool, error) {
	var kx [16]byte
	ess := a.flags&flagESS != 0
	if ess && len(a.lm) < 8 {
		return kx, false, fmt.Errorf("%w: LM response of %d bytes under extended session security", ErrMalformed, len(a.lm))
	}
	chal := sc[:]
	if ess {
		d := md5.Sum(append(sc[:], a.lm[:8]...))
		chal = d[:8]
	}
	if want := desl(nt, chal); !bytes.Equal(want[:], a.nt) {
		return kx, false, nil
	}
	h := md4.New()
	h.Write(nt[:])
	var base [16]byte
	h.Sum(base[:0])
	switch {
	case ess:
		kx = hmacMD5(base[:], sc[:], a.lm[:8])
	case a.flags&(flagLMKey|flagNonNTKey) != 0:
		// These keys come from the LM hash, which an NT hash does not give.
		return kx, false, fmt.Errorf("%w: NTLMv1 with LM_KEY or NON_NT_SESSION_KEY", ErrUnsupported)
	default:
		kx = base
	}
	return kx, true, nil
}

// desl is DESL(K, D) of MS-NLMP 6: three DES encryptions of D under the
// 16-byte key cut in 7-byte keys (the last padded with zeros).
func desl(k [16]byte, d []byte) [24]byte {
	var out [24]byte
	var k21 [21]byte
	copy(k21[:], k[:])
	for i := 0; i < 3; i++ {
		c, _ := des.NewCipher(desKey(k21[7*i : 7*i+7]))
		c.Encrypt(out[8*i:], d)
	}
	return out
}

// desKey spreads 56 key bits over 8 bytes (the low bit of each is parity,
// which DES ignores).
func desKey(k []byte) []byte {
	return []byte{
		k[0] & 0xfe,
		(k[0]<<7 | k[1]>>1) & 0xfe,
		(k[1]<<6 | k[2]>>2) & 0xfe,
		(k[2]<<5 | k[3]>>3) & 0xfe,
		(k[3]<<4 | k[4]>>4) & 0xfe,
		(k[4]<<3 | k[5]>>5) & 0xfe,
		(k[5]<<2 | k[6]>>6) & 0xfe,
		k[6] << 1,
	}
}

// Magic constants of SIGNKEY and SEALKEY (MS-NLMP 3.4.5.2-3), with their
// terminating NUL.
var (
	clientSign = []byte("session key to client-to-server signing key magic constant\x00")
	serverSign = []byte("session key to server-to-client signing key magic constant\x00")
	clientSeal = []byte("session key to client-to-server sealing key magic constant\x00")
	serverSeal = []byte("session key to server-to-client sealing key magic constant\x00")
)

// newSession makes the per-direction states from the key exchange key.
func newSession(kx [16]byte, a authMsg) (*Session, error) {
	exported, err := exportedKey(kx, a)
	if err != nil {
		return nil, err
	}
	return sessionFromKey(exported, a.flags), nil
}

// exportedKey is the key exchange key, or under KEY_EXCH the random
// session key it encrypts (MS-NLMP 3.1.5.1.2).
func exportedKey(kx [16]byte, a authMsg) ([16]byte, error) {
	exported := kx
	if a.flags&flagKeyExch != 0 {
		if len(a.encKey) != 16 {
			return [16]byte{}, fmt.Errorf("%w: key exchange without a 16-byte EncryptedRandomSessionKey", ErrMalformed)
		}
		c, _ := rc4.NewCipher(kx[:])
		c.XORKeyStream(exported[:], a.encKey)
	}
	return exported, nil
}

// sessionFromKey derives the keys of both directions from the exported
// session key (MS-NLMP 3.4.5.2-3).
func sessionFromKey(exported [16]byte, flags uint32) *Session {
	s := &Session{ess: flags&flagESS != 0, keyExch: flags&flagKeyExch != 0}
	if !s.ess {
		// One RC4 state and one sequence for both directions, in the
		// order the messages were sealed (MS-NLMP 3.4.3).
		k := sealKeyV1(exported[:], flags)
		c, _ := rc4.NewCipher(k)
		d := &dirState{rc4: c}
		s.dirs = [2]*dirState{d, d}
		return s
	}
	cut := exported[:5]
	switch {
	case flags&flag128 != 0:
		cut = exported[:]
	case flags&flag56 != 0:
		cut = exported[:7]
	}
	for i, magic := range [2][2][]byte{{clientSign, clientSeal}, {serverSign, serverSeal}} {
		d := &dirState{}
		d.signKey = md5.Sum(append(exported[:], magic[0]...))
		sk := md5.Sum(append(append([]byte(nil), cut...), magic[1]...))
		d.rc4, _ = rc4.NewCipher(sk[:])
		d.mac = hmac.New(md5.New, d.signKey[:])
		s.dirs[i] = d
	}
	return s
}

// sealKeyV1 is SEALKEY without extended session security: the exported key
// itself, cut to 56 or 40 bits with the spec's fixed tail only under
// LM_KEY (which Open refuses: its keys need the LM hash).
func sealKeyV1(k []byte, flags uint32) []byte {
	if flags&flagLMKey == 0 {
		return k
	}
	if flags&flag56 != 0 {
		return append(append([]byte(nil), k[:7]...), 0xa0)
	}
	return append(append([]byte(nil), k[:5]...), 0xe5, 0x38, 0xb0)
}
