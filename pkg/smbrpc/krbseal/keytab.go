// Package krbseal opens what Kerberos protects in a capture with the keys
// of the accounts involved (docs/format/keytab.md, docs/replay.md
// "Kerberos"): the ticket an AP-REQ presents (its client, its session
// key), the authenticator and AP-REP subkeys, and from them the GSS-API
// wrap tokens of Kerberos-sealed DCE/RPC and the SMB3 session key.
package krbseal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nwhealth/nwhealth/internal/secretfile"
)

// Bounds on a keys file: a domain's keytab holds a few keys per account.
const (
	MaxKeys      = 1 << 16
	maxFile      = 64 << 20
	maxLine      = 4096
	keytabV2     = 0x0502
	keytabV1     = 0x0501
	maxComponent = 16
)

// Key is one long-term key: the principal it belongs to (components
// joined by "/", without the realm), its realm, version and etype.
type Key struct {
	Principal, Realm string
	KVNO             uint32
	EType            int
	value            []byte
	line             int // where it came from: the entry or line number
}

// Keys holds the keys of one or more keytabs. Its zero value holds none.
type Keys struct {
	keys []Key
}

// Len is the number of keys of the etypes this package reads.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

// ErrKeysFile marks a malformed keytab or key list (the command maps it to
// a usage error).
var ErrKeysFile = errors.New("keytab")

// Add appends the keys of o.
func (k *Keys) Add(o *Keys) {
	if o != nil && len(k.keys)+len(o.keys) <= MaxKeys {
		k.keys = append(k.keys, o.keys...)
	}
}

// Parse reads an MIT keytab (version 0x502, or 0x501) or, when the file
// does not start with a keytab's version, secretsdump's key lines.
// Errors name the entry or line, never the key.
func Parse(r io.Reader) (*Keys, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysFile, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrKeysFile, maxFile)
	}
	if len(b) >= 2 && b[0] == 0x05 {
		return parseKeytab(b)
	}
	return parseLines(b)
}

// Load reads a keys file from disk. loose is set when group or others can
// read it, for the caller's warning.
func Load(path string) (k *Keys, loose bool, err error) {
	return secretfile.Read(path, "keytab", Parse)
}

// kt reads a keytab through a bounded cursor: every length is checked
// against what remains; nothing is allocated from a length the file
// claims before those bytes are present.
type kt struct {
	b     []byte
	order binary.ByteOrder
	bad   bool
}

func (r *kt) u8() uint8 {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *kt) u16() uint16 {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := r.order.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *kt) u32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := r.order.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *kt) octets() []byte {
	n := int(r.u16())
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// parseKeytab reads the keytab format (docs/format/keytab.md): a version,
// then entries each preceded by a signed 32-bit size (negative: a hole
// left by a deleted entry).
func parseKeytab(b []byte) (*Keys, error) {
	ver := binary.BigEndian.Uint16(b)
	r := kt{b: b[2:], order: binary.BigEndian}
	switch ver {
	case keytabV2:
	case keytabV1:
		// Version 1 was written in the host's byte order: every
		// writer left of it ran on little-endian machines.
		r.order = binary.LittleEndian
	default:
		return nil, fmt.Errorf("%w: version 0x%04x not supported (want 0x0502 or 0x0501)", ErrKeysFile, ver)
	}
	k := &Keys{}
	for n := 1; len(r.b) > 0; n++ {
		if len(r.b) < 4 {
			return nil, fmt.Errorf("%w: entry %d: cut short (%d bytes after the last entry)", ErrKeysFile, n, len(r.b))
		}
		size := int32(r.order.Uint32(r.b))
		r.b = r.b[4:]
		if size < 0 {
			if int64(-int64(size)) > int64(len(r.b)) {
				return nil, fmt.Errorf("%w: entry %d: hole of %d bytes past the end", ErrKeysFile, n, -int64(size))
			}
			r.b = r.b[-size:]
			continue
		}
		if int(size) > len(r.b) {
			return nil, fmt.Errorf("%w: entry %d: size %d past the end (%d bytes left)", ErrKeysFile, n, size, len(r.b))
		}
		e := kt{b: r.b[:size], order: r.order}
		r.b = r.b[size:]
		key, err := e.entry(ver)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrKeysFile, n, err)
		}
		if keyLen(key.EType) == 0 {
			continue // an etype we cannot use (DES, camellia): skipped
		}
		if len(key.value) != keyLen(key.EType) {
			return nil, fmt.Errorf("%w: entry %d: %s key of %d bytes", ErrKeysFile, n, ETypeName(key.EType), len(key.value))
		}
		if len(k.keys) >= MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrKeysFile, MaxKeys)
		}
		key.line = n
		k.keys = append(k.keys, key)
	}
	return k, nil
}

// entry reads one keytab entry.
func (r *kt) entry(ver uint16) (Key, error) {
	var key Key
	nc := int(r.u16())
	if ver == keytabV1 {
		nc-- // version 1 counted the realm among the components
	}
	if nc < 0 || nc > maxComponent {
		return key, fmt.Errorf("%d name components", nc)
	}
	key.Realm = string(r.octets())
	var parts [maxComponent]string
	for i := 0; i < nc; i++ {
		parts[i] = string(r.octets())
	}
	key.Principal = strings.Join(parts[:nc], "/")
	if ver == keytabV2 {
		r.u32() // name type
	}
	r.u32() // timestamp
	key.KVNO = uint32(r.u8())
	key.EType = int(r.u16())
	v := r.octets()
	if r.bad {
		return key, errors.New("cut short")
	}
	if len(r.b) >= 4 {
		// The 32-bit version, when present and not zero, replaces the
		// 8-bit one (which wraps at 255).
		if v32 := r.u32(); v32 != 0 {
			key.KVNO = v32
		}
	}
	key.value = bytes.Clone(v)
	return key, nil
}

// parseLines reads secretsdump's Kerberos key lines
// ("DOMAIN\user:aes256-cts-hmac-sha1-96:HEX") and its NTDS hash lines
// ("DOMAIN\user:RID:LM:NT:::", whose NT hash is the rc4-hmac key). Other
// lines secretsdump prints ("[*] ...", blank) are skipped.
func parseLines(b []byte) (*Keys, error) {
	k := &Keys{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 512), maxLine)
	n := 0
	for sc.Scan() {
		n++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == '[' {
			continue
		}
		key, ok, err := parseLine(t)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrKeysFile, n, err)
		}
		if !ok {
			continue
		}
		if len(k.keys) >= MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrKeysFile, MaxKeys)
		}
		key.line = n
		k.keys = append(k.keys, key)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrKeysFile, n+1, maxLine)
		}
		return nil, fmt.Errorf("%w: %v", ErrKeysFile, err)
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("%w: neither a keytab (version 0x0502) nor lines of DOMAIN\\user:ETYPE:HEX", ErrKeysFile)
	}
	return k, nil
}

// keyTypes are the etype names secretsdump writes.
var keyTypes = map[string]int{
	"aes256-cts-hmac-sha1-96": ETypeAES256,
	"aes128-cts-hmac-sha1-96": ETypeAES128,
	"rc4_hmac":                ETypeRC4,
	"rc4-hmac":                ETypeRC4,
}

// parseLine reads one line; ok is false for a key of an etype this
// package does not read (des-cbc-md5).
func parseLine(t string) (Key, bool, error) {
	var key Key
	f := strings.Split(t, ":")
	if len(f) < 3 {
		return key, false, errors.New(`want DOMAIN\user:ETYPE:HEX or DOMAIN\user:RID:LM:NT (secretsdump)`)
	}
	acct := f[0]
	var hexKey string
	switch et, known := keyTypes[strings.ToLower(f[1])]; {
	case known && len(f) == 3:
		key.EType, hexKey = et, f[2]
	case strings.HasPrefix(strings.ToLower(f[1]), "des-"):
		return key, false, nil
	case len(f) >= 4 && isDigits(f[1]):
		key.EType, hexKey = ETypeRC4, f[3]
	default:
		return key, false, fmt.Errorf("account %q: unknown key type %q", acct, f[1])
	}
	key.Principal, key.Realm = acct, ""
	if d, u, ok := strings.Cut(acct, `\`); ok {
		key.Principal, key.Realm = u, d
	} else if i := strings.LastIndex(acct, "@"); i > 0 {
		key.Principal, key.Realm = acct[:i], acct[i+1:]
	}
	if key.Principal == "" {
		return key, false, fmt.Errorf("account %q names no user", acct)
	}
	v, err := hex.DecodeString(hexKey)
	if err != nil {
		return key, false, fmt.Errorf("key of account %q is not hex", acct)
	}
	if len(v) != keyLen(key.EType) {
		return key, false, fmt.Errorf("%s key of account %q: want %d hex digits, got %d characters", ETypeName(key.EType), acct, 2*keyLen(key.EType), len(hexKey))
	}
	key.value = v
	return key, true, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
