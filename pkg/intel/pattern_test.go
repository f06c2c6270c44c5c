package intel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The pattern examples of the STIX 2.1 specification (section 9,
// "STIX Patterning", and the examples of its operators and qualifiers),
// each with whether a flow record can answer it: "yes" (every
// alternative), "part" (some alternatives), "no".
var specExamples = []struct {
	pattern string
	eval    string
}{
	{`[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']`, "no"},
	{`[email-message:from_ref.value MATCHES '.+\\@example\\.com$' AND email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\.exe$']`, "no"},
	{`[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f' AND file:mime_type = 'application/x-pdf']`, "no"},
	{`[file:hashes.'SHA-256' = 'bf07a7fbb825fc0aae7bf4a1177b2b31fcf8a3feeaf7092761e18c859ee52a9c' OR file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f'] AND [file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']`, "no"},
	{`[file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4'] FOLLOWEDBY [windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\foo\\bar'] WITHIN 300 SECONDS`, "no"},
	{`[user-account:account_type = 'unix' AND user-account:user_id = '1007' AND user-account:account_login = 'Peter'] AND [user-account:account_type = 'unix' AND user-account:user_id = '1008' AND user-account:account_login = 'Paul'] AND [user-account:account_type = 'unix' AND user-account:user_id = '1009' AND user-account:account_login = 'Mary']`, "no"},
	{`[artifact:mime_type = 'application/vnd.tcpdump.pcap' AND artifact:payload_bin MATCHES '\\xd4\\xc3\\xb2\\xa1\\x02\\x00\\x04\\x00']`, "no"},
	{`[file:name = 'foo.dll' AND file:parent_directory_ref.path = 'C:\\Windows\\System32']`, "no"},
	{`[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]`, "no"},
	{`[file:mime_type = 'image/bmp' AND file:magic_number_hex = h'ffd8']`, "no"},
	{`[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.33/32']`, "yes"},
	{`[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'example.com'] REPEATS 5 TIMES WITHIN 180 SECONDS`, "no"},
	{`[domain-name:value = 'www.5z8.info' AND domain-name:resolves_to_refs[*].value = '198.51.100.1/32']`, "yes"},
	{`[url:value = 'http://example.com/foo' OR url:value = 'http://example.com/bar']`, "yes"},
	{`[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b:1d:19:74:86:a7:66:b4:1a:bf:40:27:21:76:28']`, "no"},
	{`[windows-registry-key:key = 'HKEY_CURRENT_USER\\Software\\CryptoLocker\\Files' OR windows-registry-key:key = 'HKEY_CURRENT_USER\\Software\\Microsoft\\CurrentVersion\\Run\\CryptoLocker_0388']`, "no"},
	{`[(file:name = 'pdf.exe' OR file:size = '371712') AND file:created = t'2014-01-13T07:03:17Z']`, "no"},
	{`[email-message:sender_ref.value = 'jdoe@example.com' AND email-message:subject = 'Conference Info']`, "no"},
	{`[x-usb-device:usbdrive.serial_number = '575833344E30314C']`, "no"},
	{`[process:command_line MATCHES '^.+>-add GlobalSign.cer -c -s -r localMachine Root$'] FOLLOWEDBY [process:command_line MATCHES '^.+>-add GlobalSign.cer -c -s -r localMachineTrustedPublisher$'] WITHIN 300 SECONDS`, "no"},
	{`[network-traffic:dst_ref.value ISSUBSET '2001:0db8:dead:beef:0000:0000:0000:0000/64']`, "yes"},
	{`([file:name = 'foo.dll'] AND [win-registry-key:key = 'HKEY_LOCAL_MACHINE\\foo\\bar']) OR [process:name = 'fooproc' OR process:name = 'procfoo']`, "no"},
	{`[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'`, "no"},
	{`[ipv4-addr:value = '198.51.100.1/32' OR ipv4-addr:value = '203.0.113.33/32' OR ipv6-addr:value = '2001:0db8:dead:beef:dead:beef:dead:0001/128']`, "yes"},
	{`[ipv4-addr:value ISSUBSET '198.51.100.0/24']`, "yes"},
	{`[ipv4-addr:value ISSUPERSET '198.51.100.0/24']`, "no"},
	{`[domain-name:value = 'example.com'] OR [file:name = 'foo.dll']`, "part"},
	{`[network-traffic:src_port = 37020 AND network-traffic:dst_port = 80]`, "yes"},
	{`[network-traffic:dst_port IN (443, 8443) AND network-traffic:protocols[*] = 'tcp' AND network-traffic:dst_ref.value = '203.0.113.7']`, "yes"},
	{`[domain-name:value LIKE '%.example.org'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00.5Z'`, "yes"},
	{`[domain-name:value MATCHES '^c2-[0-9]+\\.example\\.net$']`, "yes"},
	{`[ipv4-addr:value != '198.51.100.1']`, "no"},
	{`[ipv4-addr:value NOT = '198.51.100.1']`, "no"},
	{`[network-traffic:protocols[*] = 'tcp']`, "no"}, // nothing to anchor on
	{`[network-traffic:dst_ref.value = 'evil.example' AND network-traffic:dst_port = 443] WITHIN 10 SECONDS`, "yes"},
	{`[file:size > -1 AND file:x_ratio <= -0.5 AND file:x_flag = true AND file:payload_bin = b'AAECAw==']`, "no"},
	{`[network-traffic:dst_ref.value = '198.51.100.9' /* a comment */ AND // and another
  network-traffic:dst_port = 8080]`, "yes"},
}

func TestSpecExamples(t *testing.T) {
	for _, tc := range specExamples {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Errorf("%s: %v", tc.pattern, err)
			continue
		}
		alts, skipped := compile(p)
		if !URLsObserved {
			for _, a := range alts {
				if a.needsURL() {
					alts, skipped = nil, append(skipped, "url")
				}
			}
		}
		got := "yes"
		switch {
		case len(alts) == 0:
			got = "no"
		case len(skipped) > 0:
			got = "part"
		}
		if got != tc.eval {
			t.Errorf("%s: evaluable %s (skipped %q), want %s", tc.pattern, got, skipped, tc.eval)
		}
		if got != "yes" && len(skipped) == 0 {
			t.Errorf("%s: left out without a reason", tc.pattern)
		}
	}
}

// The parse tree keeps the grammar's precedence: FOLLOWEDBY < OR < AND
// between observations, OR < AND inside one.
func TestPrecedence(t *testing.T) {
	p, err := ParsePattern(`[a:x = 1] AND [a:x = 2] OR [a:x = 3] FOLLOWEDBY [a:x = 4]`)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Root
	if r.Op != "FOLLOWEDBY" || r.Left.Op != "OR" || r.Left.Left.Op != "AND" || r.Right.Cmp == nil {
		t.Errorf("observation precedence wrong: %+v", r)
	}
	p, err = ParsePattern(`[a:x = 1 OR a:x = 2 AND a:y = 3]`)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Root.Cmp
	if c.Op != "OR" || c.Right.Op != "AND" {
		t.Errorf("comparison precedence wrong: %+v", c)
	}
	p, err = ParsePattern(`[a:'b-c'.d[*].e[-1] = 'x\'y\\z'] START t'2016-12-31T23:59:60Z' STOP t'2017-01-01T00:00:01Z'`)
	if err != nil {
		t.Fatal(err)
	}
	tst := p.Root.Cmp.Test
	if tst.Path.Property() != "b-c.d[*].e[-1]" || tst.Values[0].Str != `x'y\z` {
		t.Errorf("path %q value %q", tst.Path.Property(), tst.Values[0].Str)
	}
	if q := p.Root.Qualifiers; len(q) != 1 || !q[0].Start.Equal(time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("leap second qualifier: %+v", q)
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		offset  int
		want    string
	}{
		{``, 0, "expected '[' or '('"},
		{`ipv4-addr:value = '1.2.3.4'`, 0, "expected '[' or '('"},
		{`[ipv4-addr:value = '1.2.3.4'`, 28, "expected \"]\""},
		{`[ipv4-addr:value = '1.2.3.4]`, 19, "unterminated string"},
		{`[ipv4-addr:value '1.2.3.4']`, 17, "comparison operator"},
		{`[ipv4-addr = '1.2.3.4']`, 11, "expected \":\""},
		{`[ipv4-addr:value = '1.2.3.4'] WITHIN -5 SECONDS`, 37, "positive number"},
		{`[ipv4-addr:value = '1.2.3.4'] REPEATS 2`, 39, "TIMES"},
		{`[ipv4-addr:value = '1.2.3.4'] START t'2016-13-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'`, 36, "bad timestamp"},
		{`[file:size = 007]`, 13, "leading zero"},
		{`[file:hashes.sha-256 = 'x']`, 13, "property name"},
		{`[file:name = 'x'] ANDNOT [file:name = 'y']`, 18, "observation operator"},
		{`[file:name = 'a\x']`, 15, "backslash"},
		{`[file:name IN ('a' 'b')]`, 19, "expected \",\""},
		{`[file:name = 'a'] FOLLOWEDBY`, 28, "expected '[' or '('"},
		{`[file:x = h'abc']`, 10, "hex"},
		{`[file:x = b'AA=A']`, 10, "base64"},
		{`[file:x = 'a'] $`, 15, "unexpected character"},
		{`[file:x > true]`, 10, "orderable"},
		{`[file:x = 1] /* open`, 13, "unterminated comment"},
		{strings.Repeat("(", 300) + `[file:x = 1]` + strings.Repeat(")", 300), 25, "nested deeper"},
	} {
		_, err := ParsePattern(tc.pattern)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v, want a syntax error", tc.pattern, err)
			continue
		}
		if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("%q: %v, want offset %d and %q", tc.pattern, err, tc.offset, tc.want)
		}
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, tc := range specExamples {
		f.Add(tc.pattern)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		compile(p)
	})
}
