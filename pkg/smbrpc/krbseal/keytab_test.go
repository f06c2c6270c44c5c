package krbseal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

const labKeytab = "../../../testdata/krblab/krblab.keytab"

// The lab keytab (samba-tool domain exportkeytab) read as MIT's klist -k
// -e -K read it when it was recorded (krblab.keytab.klist): every entry,
// its version, etype and key.
func TestKeytabMatchesKlist(t *testing.T) {
	for _, kt := range []string{labKeytab, strings.Replace(labKeytab, "krblab.keytab", "krblab_rc4.keytab", 1)} {
		t.Run(kt[strings.LastIndex(kt, "/")+1:], func(t *testing.T) { keytabMatchesKlist(t, kt) })
	}
}

func keytabMatchesKlist(t *testing.T, labKeytab string) {
	k, _, err := Load(labKeytab)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(labKeytab + ".klist")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]int{"aes256-cts-hmac-sha1-96": ETypeAES256, "aes128-cts-hmac-sha1-96": ETypeAES128, "DEPRECATED:arcfour-hmac": ETypeRC4}
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kvno int
		var princ, et, key string
		if n, _ := fmt.Sscanf(sc.Text(), "%d %s (%s (0x%s", &kvno, &princ, &et, &key); n != 4 {
			continue
		}
		want = append(want, fmt.Sprintf("%d %s %d %s", kvno, princ, names[strings.TrimSuffix(et, ")")], strings.TrimSuffix(key, ")")))
	}
	var got []string
	for _, key := range k.keys {
		got = append(got, fmt.Sprintf("%d %s@%s %d %x", key.KVNO, key.Principal, key.Realm, key.EType, key.value))
	}
	if len(want) < 3 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("keytab read as\n%s\nklist read\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// entry builds one keytab entry (version 2, big-endian; version 1 in
// little-endian with the realm counted among the components).
func entry(v1 bool, realm string, comps []string, kvno8 byte, etype uint16, key []byte, kvno32 *uint32) []byte {
	var order binary.AppendByteOrder = binary.BigEndian
	if v1 {
		order = binary.LittleEndian
	}
	var b []byte
	str := func(s []byte) { b = order.AppendUint16(b, uint16(len(s))); b = append(b, s...) }
	n := len(comps)
	if v1 {
		n++
	}
	b = order.AppendUint16(b, uint16(n))
	str([]byte(realm))
	for _, c := range comps {
		str([]byte(c))
	}
	if !v1 {
		b = order.AppendUint32(b, 1) // KRB5_NT_PRINCIPAL
	}
	b = order.AppendUint32(b, 0x5f000000)
	b = append(b, kvno8)
	b = order.AppendUint16(b, etype)
	str(key)
	if kvno32 != nil {
		b = order.AppendUint32(b, *kvno32)
	}
	return b
}

func keytabFile(v1 bool, entries ...[]byte) []byte {
	var order binary.AppendByteOrder = binary.BigEndian
	b := []byte{0x05, 0x02}
	if v1 {
		b[1], order = 0x01, binary.LittleEndian
	}
	for _, e := range entries {
		b = order.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

func TestKeytabVersionsAndEdges(t *testing.T) {
	aes := bytes.Repeat([]byte{1}, 32)
	rc4 := bytes.Repeat([]byte{2}, 16)
	des := bytes.Repeat([]byte{3}, 8)
	v300 := uint32(300)
	for _, c := range []struct {
		name string
		file []byte
		want string // principal@realm kvno etype, a line each; or the error
	}{
		{"v2 with 32-bit kvno", keytabFile(false,
			entry(false, "CORP.LOCAL", []string{"cifs", "ws1.corp.local"}, 44, ETypeAES256, aes, &v300),
			entry(false, "CORP.LOCAL", []string{"WS1$"}, 3, ETypeRC4, rc4, nil)),
			"cifs/ws1.corp.local@CORP.LOCAL 300 18\nWS1$@CORP.LOCAL 3 23"},
		{"v1 little-endian", keytabFile(true, entry(true, "CORP", []string{"host", "dc"}, 7, ETypeRC4, rc4, nil)),
			"host/dc@CORP 7 23"},
		{"des skipped", keytabFile(false, entry(false, "R", []string{"a"}, 1, 3, des, nil), entry(false, "R", []string{"b"}, 1, ETypeRC4, rc4, nil)),
			"b@R 1 23"},
		{"hole skipped", append([]byte{0x05, 0x02, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0}, keytabFile(false, entry(false, "R", []string{"b"}, 1, ETypeRC4, rc4, nil))[2:]...),
			"b@R 1 23"},
		{"unknown version", []byte{0x05, 0x03, 0, 0, 0, 0}, "version 0x0503 not supported"},
		{"size past the end", []byte{0x05, 0x02, 0x7f, 0xff, 0xff, 0xff, 1}, "entry 1: size 2147483647 past the end"},
		{"cut short entry", keytabFile(false, entry(false, "R", []string{"a"}, 1, ETypeRC4, rc4, nil)[:20]), "entry 1: cut short"},
		{"wrong key size", keytabFile(false, entry(false, "R", []string{"a"}, 1, ETypeAES256, rc4, nil)), "entry 1: aes256-cts-hmac-sha1-96 key of 16 bytes"},
		{"too many components", keytabFile(false, append([]byte{0, 200}, make([]byte, 40)...)), "entry 1: 200 name components"},
	} {
		k, err := Parse(bytes.NewReader(c.file))
		var got string
		if err != nil {
			if !errors.Is(err, ErrKeysFile) {
				t.Errorf("%s: error %v is not ErrKeysFile", c.name, err)
			}
			got = err.Error()
		} else {
			var lines []string
			for _, key := range k.keys {
				lines = append(lines, fmt.Sprintf("%s@%s %d %d", key.Principal, key.Realm, key.KVNO, key.EType))
			}
			got = strings.Join(lines, "\n")
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// secretsdump's key lines and NTDS hash lines; the keys never appear in
// an error.
func TestKeyLines(t *testing.T) {
	in := `[*] Dumping Domain Credentials (domain\uid:rid:lmhash:nthash)
CORP.LOCAL\Administrator:500:aad3b435b51404eeaad3b435b51404ee:2e36ad1f9d5d37a2815864d502c6ca06:::
DC01$:1000:aad3b435b51404eeaad3b435b51404ee:73bba58d29876499151278add06c11e0:::
[*] Kerberos keys grabbed
CORP.LOCAL\Administrator:aes256-cts-hmac-sha1-96:ffd2de4c9ede062e10afc4f2e1a0f76aeaf6a0fade045890beb26a1daabfa8bf
CORP.LOCAL\Administrator:aes128-cts-hmac-sha1-96:40ee1ae986605165b6609207f4d88a3f
CORP.LOCAL\Administrator:des-cbc-md5:0123456789abcdef
DC01$:aes256-cts-hmac-sha1-96:67a9216396a9140edc05cf3e90884052f41af0b60ef2662cbf2e50274fdd883b
`
	k, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, key := range k.keys {
		got = append(got, fmt.Sprintf("%s@%s %d line %d %x", key.Principal, key.Realm, key.EType, key.line, key.value[:2]))
	}
	want := "Administrator@CORP.LOCAL 23 line 2 2e36|DC01$@ 23 line 3 73bb|Administrator@CORP.LOCAL 18 line 5 ffd2|Administrator@CORP.LOCAL 17 line 6 40ee|DC01$@ 18 line 8 67a9"
	if strings.Join(got, "|") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, "|"), want)
	}
	for _, bad := range []struct{ in, want string }{
		{"CORP\\a:aes256-cts-hmac-sha1-96:00ff", "line 1: aes256-cts-hmac-sha1-96 key of account \"CORP\\\\a\": want 64 hex digits, got 4 characters"},
		{"\nCORP\\a:aes128-cts-hmac-sha1-96:zz0123456789abcdef0123456789abcd", "line 2: key of account \"CORP\\\\a\" is not hex"},
		{"CORP\\a:camellia:00", "unknown key type \"camellia\""},
		{"just text", "want DOMAIN\\user:ETYPE:HEX"},
		{"", "neither a keytab"},
	} {
		_, err := Parse(strings.NewReader(bad.in))
		if err == nil || !errors.Is(err, ErrKeysFile) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.in, err, bad.want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("%q: the error shows the key: %v", bad.in, err)
		}
	}
}

func TestLoadLoose(t *testing.T) {
	p := t.TempDir() + "/k"
	if err := os.WriteFile(p, keytabFile(false, entry(false, "R", []string{"b"}, 1, ETypeRC4, bytes.Repeat([]byte{2}, 16), nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, loose, err := Load(p); err != nil || !loose {
		t.Errorf("0644: loose %v, %v", loose, err)
	}
	os.Chmod(p, 0o600)
	if _, loose, err := Load(p); err != nil || loose {
		t.Errorf("0600: loose %v, %v", loose, err)
	}
}
