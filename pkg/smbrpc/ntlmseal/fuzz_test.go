package ntlmseal

import (
	"strings"
	"testing"
)

// FuzzOpenUnseal feeds hostile CHALLENGE, AUTHENTICATE and sealed PDUs
// (seeded with the real Certipy association, cut and damaged): key
// derivation and unsealing never panic whatever the lengths and offsets
// claim, and allocate nothing from them.
func FuzzOpenUnseal(f *testing.F) {
	m := certipy(f)
	chal, auth := authOf(f, m["frame54"]), authOf(f, m["frame56"])
	f.Add(chal, auth, m["frame58"], uint16(24))
	f.Add(chal, auth[:70], m["frame58"][:100], uint16(24))
	f.Add(chal[:31], auth, m["frame58"], uint16(0))
	f.Add([]byte("NTLMSSP\x00\x02\x00\x00\x00"), []byte("NTLMSSP\x00\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), []byte{}, uint16(1))
	sec, err := ParseSecrets(strings.NewReader("alice password:Summer2026!\nCORP\\alice nt:00112233445566778899aabbccddeeff\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, chal, auth, pdu []byte, from uint16) {
		s, err := sec.Open(chal, auth)
		if err != nil {
			return
		}
		to := len(pdu) - 8 - SignatureLen
		for dir := range 2 {
			p := append([]byte(nil), pdu...)
			_ = s.Unseal(dir, p, int(from), to)
			_ = s.Unseal(dir, p, int(from), to)
		}
		_ = s.Unseal(5, pdu, 0, 0)
		// The same bytes as a WinRM encrypted part: a signature, then
		// the sealed message (MS-WSMV 2.2.9.1.1).
		if len(pdu) >= int(from%32) {
			p := append([]byte(nil), pdu...)
			sig, msg := p[:from%32], p[from%32:]
			for dir := range 2 {
				_ = s.UnsealMessage(dir, sig, msg)
			}
		}
	})
}
