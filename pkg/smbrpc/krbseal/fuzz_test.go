package krbseal

import (
	"bytes"
	"os"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// FuzzParse: a keytab or key list never panics, and what it reads is
// within the bounds.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(labKeytab); err == nil {
		f.Add(b)
	}
	f.Add(keytabFile(true, entry(true, "CORP", []string{"host", "dc"}, 7, ETypeRC4, bytes.Repeat([]byte{2}, 16), nil)))
	f.Add([]byte("CORP\\a:aes128-cts-hmac-sha1-96:40ee1ae986605165b6609207f4d88a3f\n"))
	f.Add([]byte{0x05, 0x02, 0xff, 0xff, 0xff, 0xf0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		if k.Len() > MaxKeys {
			t.Fatalf("%d keys", k.Len())
		}
		for _, key := range k.keys {
			if len(key.value) != keyLen(key.EType) {
				t.Fatalf("key of %d bytes for %s", len(key.value), ETypeName(key.EType))
			}
		}
	})
}

// FuzzAccept: damaged AP-REQs, AP-REPs and wrap tokens never panic under
// real keys.
func FuzzAccept(f *testing.F) {
	k, _, err := Load(labKeytab)
	if err != nil {
		f.Skip(err)
	}
	f.Add([]byte{0x6e, 0x03, 0x30, 0x01, 0x00}, []byte{0x05, 0x04, 0x06, 0xff, 0, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, req, tok []byte) {
		m, ok := smbrpc.ParseKerberos(req)
		if !ok {
			m, ok = smbrpc.FindAPReq(req)
		}
		if !ok {
			return
		}
		c, err := k.Accept(m)
		if c == nil || err != nil {
			return
		}
		if rep, ok := smbrpc.FindAPRep(tok); ok {
			c.APRep(rep, true)
		}
		c.SessionKey()
	})
}

// FuzzUnsealDCE: any PDU, stub bounds and token under a context holding an
// AES and an RC4 key never panics, and never opens (the token would need
// the key's checksum).
func FuzzUnsealDCE(f *testing.F) {
	f.Add([]byte{0x05, 0x04, 0x06, 0xff, 0, 16, 0, 28}, 24, 40)
	f.Add([]byte{0x60, 0x2b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x02, 0x01, 0x11, 0x00, 0x10, 0x00, 0xff, 0xff}, 0, 0)
	f.Fuzz(func(t *testing.T, pdu []byte, from, to int) {
		c := &Context{
			session:   smbrpc.KrbKey{Type: ETypeAES256, Value: bytes.Repeat([]byte{1}, 32)},
			initiator: smbrpc.KrbKey{Type: ETypeRC4, Value: bytes.Repeat([]byte{2}, 16)},
			DCEStyle:  from%2 == 0,
		}
		if err := c.UnsealDCE(from&1, pdu, from, to); err == nil {
			t.Fatalf("a random token opened: %x", pdu)
		}
	})
}
