package ntlmseal

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSpecWrapEx unseals the GSS_WrapEx examples of MS-NLMP 4.2.2.4
// (NTLMv1, no extended session security) and 4.2.4.4 (NTLMv2): the
// exported session key is 0x55 repeated, the plaintext "Plaintext".
func TestSpecWrapEx(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = 0x55
	}
	plain := unhex(t, "50006c00610069006e007400650078007400")
	for _, c := range []struct {
		name   string
		flags  uint32
		sealed string
		sig    string
	}{
		{"v1 4.2.2.4", 0xe2028233, "56fe04d861f9319af0d7238a2e3b4d457fb8", "0100000045c844e509dcd1df2e459d36"},
		{"v2 4.2.4.4", 0xe28a8233, "54e50165bf1936dc996020c1811b0f06fb5f", "010000007fb38ec5c55d497600000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := sessionFromKey(key, c.flags)
			// The spec's message stands in for a stub: an 8-byte auth
			// trailer and the signature follow it, as in a PDU.
			pdu := append(append(unhex(t, c.sealed), make([]byte, 8)...), unhex(t, c.sig)...)
			if err := s.Unseal(ClientToServer, pdu, 0, len(plain)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pdu[:len(plain)], plain) {
				t.Fatalf("plaintext % x, want % x", pdu[:len(plain)], plain)
			}
		})
	}
}

// TestSpecKeys checks key derivation against MS-NLMP 4.2.2 and 4.2.4:
// user "User", domain "Domain", password "Password", server challenge
// 0123456789abcdef, random session key 0x55 repeated.
func TestSpecKeys(t *testing.T) {
	nt := NTHash("Password")
	if got := hex.EncodeToString(nt[:]); got != "a4f49c406510bdcab6824ee7c30fd852" {
		t.Fatalf("NT hash %s", got)
	}
	sc := [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	// NTLMv1 (4.2.2.1.3, 4.2.2.2.1): the NT response, and the session base
	// key as key exchange key.
	a := authMsg{nt: unhex(t, "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"), flags: 0xe2028233}
	kx, ok, err := ntlmV1(nt, sc, a)
	if err != nil || !ok || hex.EncodeToString(kx[:]) != "d87262b0cde4b1cb7499becccdf10784" {
		t.Fatalf("v1: %x %v %v", kx, ok, err)
	}
	// NTLMv2 (4.2.4.1.3, 4.2.4.2.2): temp with time 0, client challenge
	// aa..., the AV pairs of the CHALLENGE.
	temp := unhex(t, "0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000"+
		"02000c0044006f006d00610069006e00 01000c00530065007200760065007200 0000000000000000")
	resp := append(unhex(t, "68cd0ab851e51c96aabc927bebef6a1c"), temp...)
	kx, ok = ntlmV2(nt, "User", "Domain", sc, resp)
	if !ok || hex.EncodeToString(kx[:]) != "8de40ccadbc14a82f15cb0ad0de95ca3" {
		t.Fatalf("v2: %x %v", kx, ok)
	}
	if _, ok := ntlmV2(NTHash("password"), "User", "Domain", sc, resp); ok {
		t.Fatal("v2: a wrong password proved the response")
	}
	// Key exchange: RC4(session base key, EncryptedRandomSessionKey) gives
	// the random session key.
	s, err := newSession(kx, authMsg{encKey: unhex(t, "c5dad2544fc9799094ce1ce90bc9d03e"), flags: 0xe28a8233})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(s.dirs[0].signKey[:]); got != "4788dc861b4782f35d43fd98fe1a2d39" {
		t.Fatalf("client signing key %s", got)
	}
}

// certipy reads the real Certipy association (testdata/certipy_tcp.txt).
func certipy(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/certipy_tcp.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, h, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			m[name] = unhex(t, h)
		}
	}
	return m
}

func authOf(t testing.TB, pdu []byte) []byte {
	t.Helper()
	p, err := smbrpc.ParsePDU(pdu)
	if err != nil {
		t.Fatal(err)
	}
	return smbrpc.FindNTLMSSP(p.AuthValue)
}

// sealedSpan is the sealed part of a request PDU: after the 24-byte
// header, up to the auth trailer.
func sealedSpan(t testing.TB, pdu []byte) (int, int) {
	p, err := smbrpc.ParsePDU(pdu)
	if err != nil {
		t.Fatal(err)
	}
	return smbrpc.DCERPCHeaderLen + 8, p.FragLen - p.AuthLen - 8
}

// TestCertipyReal opens the real sealed CertServerRequest with the lab
// password and with its NT hash, and compares the stub with tshark's
// decryption; a wrong password, a changed byte and a replayed PDU are
// refused.
func TestCertipyReal(t *testing.T) {
	m := certipy(t)
	chal, auth := authOf(t, m["frame54"]), authOf(t, m["frame56"])
	for _, file := range []string{
		"CORP\\alice password:Summer2026!\n",
		"# hash\nalice@corp.local nt:" + func() string { h := NTHash("Summer2026!"); return hex.EncodeToString(h[:]) }() + "\n",
		"alice password:Winter2026!\nALICE password:Summer2026!\n", // the second candidate proves it
	} {
		sec, err := ParseSecrets(strings.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		s, err := sec.Open(chal, auth)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		pdu := append([]byte(nil), m["frame58"]...)
		from, to := sealedSpan(t, pdu)
		if err := s.Unseal(ClientToServer, pdu, from, to); err != nil {
			t.Fatal(err)
		}
		// tshark shows the stub without the auth padding.
		if pad := int(pdu[to+2]); !bytes.Equal(pdu[from:to-pad], m["tshark58"]) {
			t.Fatalf("decrypted stub differs from tshark's:\n% x\n% x", pdu[from:to-pad], m["tshark58"])
		}
		// The same PDU again: the RC4 stream moved on, so it is a lost or
		// replayed PDU, never garbage.
		pdu = append(pdu[:0], m["frame58"]...)
		if err := s.Unseal(ClientToServer, pdu, from, to); !errors.Is(err, ErrChecksum) {
			t.Fatalf("replayed PDU: %v", err)
		}
	}
	sec, _ := ParseSecrets(strings.NewReader("CORP\\alice password:Summer2026?\n"))
	if _, err := sec.Open(chal, auth); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong password: %v", err)
	}
	sec, _ = ParseSecrets(strings.NewReader("CORP\\bob password:Summer2026!\n"))
	if _, err := sec.Open(chal, auth); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("other account: %v", err)
	}
	sec, _ = ParseSecrets(strings.NewReader("OTHER\\alice password:Summer2026!\n"))
	if _, err := sec.Open(chal, auth); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("other domain: %v", err)
	}
	sec, _ = ParseSecrets(strings.NewReader("alice password:Summer2026!\n"))
	if _, err := sec.Open(nil, auth); !errors.Is(err, ErrNoChallenge) {
		t.Fatalf("no challenge: %v", err)
	}
	// One flipped byte of the sealed stub fails the checksum.
	s, _ := sec.Open(chal, auth)
	pdu := append([]byte(nil), m["frame58"]...)
	from, to := sealedSpan(t, pdu)
	pdu[from+100] ^= 1
	if err := s.Unseal(ClientToServer, pdu, from, to); !errors.Is(err, ErrChecksum) {
		t.Fatalf("damaged PDU: %v", err)
	}
}

func TestParseSecrets(t *testing.T) {
	good := "# comment\n\n  CORP\\alice\tpassword:with spaces and # inside \r\nbob@corp.local nt:2B576ACBE6BCFDA7294D6BD18041B8FE\nDC01$ nt:2b576acbe6bcfda7294d6bd18041b8fe\n#nwhealth-ntlm-secrets 1\n"
	s, err := ParseSecrets(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || s.entries[0].nt != NTHash("with spaces and # inside ") || s.entries[1].domain != "corp.local" || s.entries[2].user != "DC01$" {
		t.Fatalf("%+v", s.entries)
	}
	for _, c := range []struct{ in, want string }{
		{"alice\n", "line 1"},
		{"alice secret\n", `"nt:" or "password:"`},
		{"alice nt:1234\n", "32 hex digits"},
		{"alice nt:zz576acbe6bcfda7294d6bd18041b8fe\n", "not hex"},
		{"alice lm:2b576acbe6bcfda7294d6bd18041b8fe\n", "want nt or password"},
		{"\\alice password:x\n", ""},
		{"#nwhealth-ntlm-secrets 2\n", "version"},
		{"alice password:\n", "empty password"},
		{strings.Repeat("x", 5000) + "\n", "longer than"},
	} {
		_, err := ParseSecrets(strings.NewReader(c.in))
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrSecretsFile) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
	// No error repeats a secret.
	for _, in := range []string{"alice nt:Summer2026Summer2026Summer2026!!\n", "alice nt:Summer\n", "alice pw:Summer2026!\n"} {
		if _, err := ParseSecrets(strings.NewReader(in)); err == nil || strings.Contains(err.Error(), "Summer") {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestDomainMatch(t *testing.T) {
	for _, c := range []struct {
		want, got string
		ok        bool
	}{
		{"", "CORP", true}, {"corp", "CORP", true}, {"CORP", "corp.local", true}, {"corp.local", "CORP", true},
		{"corp.local", "corp.example", false}, {"CORP", "OTHER", false}, {"CORP", "", false},
	} {
		if domainMatch(c.want, c.got) != c.ok {
			t.Errorf("domainMatch(%q, %q) != %v", c.want, c.got, c.ok)
		}
	}
}

// TestExportedKey: under KEY_EXCH the exported session key is MS-NLMP
// 4.2.4's random session key (0x55 repeated); without it, the key exchange
// key itself (what SMB2 then takes as its session key).
func TestExportedKey(t *testing.T) {
	kx := [16]byte(unhex(t, "8de40ccadbc14a82f15cb0ad0de95ca3"))
	got, err := exportedKey(kx, authMsg{encKey: unhex(t, "c5dad2544fc9799094ce1ce90bc9d03e"), flags: 0xe28a8233})
	if err != nil || hex.EncodeToString(got[:]) != strings.Repeat("55", 16) {
		t.Fatalf("key exchange: %x %v", got, err)
	}
	got, err = exportedKey(kx, authMsg{flags: 0xe28a8233 &^ flagKeyExch})
	if err != nil || got != kx {
		t.Fatalf("no key exchange: %x %v", got, err)
	}
	if _, err := exportedKey(kx, authMsg{encKey: []byte{1}, flags: flagKeyExch}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short encrypted key: %v", err)
	}
	var sec Secrets
	if _, err := sec.SessionKey(nil, []byte("NTLMSSP\x00\x03")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short authenticate: %v", err)
	}
}
