package flow_test

import (
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// tsharkCert is what tshark decodes of the first certificate a server sent
// on a TCP connection.
type tsharkCert struct {
	subject, issuer string // the first commonName of each
	selfSigned      bool
	certs           int
}

// TestCertificatesMatchTshark: the certificate facts of every flow of real
// RAT captures (and the public servers beside them) equal what tshark
// decodes of the same handshakes.
func TestCertificatesMatchTshark(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	for _, c := range []struct {
		file string
		port string // the C2 port, not one tshark decodes as TLS by itself
	}{
		{"Traces__30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap", "7084"},
		{"Traces__9596cf60-0da6-47a7-a375-1f25ae32d843.pcap", "4782"},
		{"Traces__cd010953-5faf-4054-86be-58c020c3a532.pcap", "4041"},
	} {
		t.Run(c.port, func(t *testing.T) {
			path := testenv.SharedFile(t, "pcaps", "real-lab", "corelight-c2", "zeek-asyncrat-detector", c.file)
			want := tsharkCerts(t, tshark, path, c.port)
			if len(want) == 0 {
				t.Fatal("tshark decoded no certificate")
			}
			got := map[string]flow.Record{}
			for _, r := range buildFlows(t, path) {
				got[r.Resp.String()+":"+strconv.Itoa(int(r.RespPort))+"<"+strconv.Itoa(int(r.OrigPort))] = r
			}
			c2 := 0
			for k, w := range want {
				r, ok := got[k]
				if !ok {
					t.Errorf("%s: no flow", k)
					continue
				}
				if strings.HasSuffix(strings.Split(k, "<")[0], ":"+c.port) {
					c2++
				}
				tc := r.TLS
				if !tc.Seen() || tc.SubjectCN != w.subject || tc.IssuerCN != w.issuer || tc.SelfSigned() != w.selfSigned {
					t.Errorf("%s: got %+v, tshark %+v", k, tc, w)
				}
				// A lone certificate that is not self-signed has no issuer
				// sent; public servers send their intermediates.
				if absent := tc.Flags&flow.TLSIssuerAbsent != 0; absent != (w.certs == 1 && !w.selfSigned) {
					t.Errorf("%s: issuer absent %v with %d certificates", k, absent, w.certs)
				}
			}
			if c2 == 0 {
				t.Errorf("no C2 flow on port %s among %d certificates", c.port, len(want))
			}
			for k, r := range got {
				if _, ok := want[k]; !ok && r.TLS.Seen() {
					t.Errorf("%s: certificate %+v that tshark did not decode", k, r.TLS)
				}
			}
		})
	}
}

// tsharkCerts reads tshark's packet details (-V) of every Certificate
// message: the first certificate's issuer and subject (the first
// commonName in DER order, from x509sat.uTF8String or printableString, and
// the whole Name as tshark summarises it) and the count of certificates,
// keyed as the flow records are by server:port<client port.
func tsharkCerts(t *testing.T, tshark, path, port string) map[string]tsharkCert {
	out, err := exec.Command(tshark, "-r", path, "-d", "tcp.port=="+port+",tls",
		"-Y", "tls.handshake.type==11", "-V").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	certs := map[string]tsharkCert{}
	var src, sport, dport, key, mode string
	var cur tsharkCert
	var names [2]string // issuer, subject summaries
	wantCN := false
	flush := func() {
		if key != "" {
			cur.selfSigned = names[0] == names[1]
			certs[key] = cur
		}
		key = ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Frame "):
			flush()
		case strings.HasPrefix(line, "Internet Protocol Version 4, Src: "):
			src = strings.TrimSuffix(strings.Fields(l)[5], ",")
		case strings.HasPrefix(line, "Transmission Control Protocol, Src Port: "):
			f := strings.Fields(l)
			sport, dport = strings.TrimSuffix(f[5], ","), strings.TrimSuffix(f[8], ",")
		case l == "Handshake Type: Certificate (11)":
			flush()
			key, cur, names, mode = src+":"+sport+"<"+dport, tsharkCert{}, [2]string{}, ""
		case key == "":
		case strings.HasPrefix(l, "Certificate Length: "):
			cur.certs++
		case cur.certs != 1:
		case strings.HasPrefix(l, "issuer: rdnSequence"):
			mode = "issuer"
		case strings.HasPrefix(l, "subject: rdnSequence"):
			mode = "subject"
		case strings.HasPrefix(l, "validity"), strings.HasPrefix(l, "subjectPublicKeyInfo"), strings.HasPrefix(l, "extensions"):
			mode = ""
		case mode != "" && strings.HasPrefix(l, "rdnSequence: "):
			if mode == "issuer" {
				names[0] = l
			} else {
				names[1] = l
			}
		case mode != "" && strings.HasPrefix(l, "Object Id: 2.5.4.3 "):
			wantCN = true
		case wantCN && (strings.HasPrefix(l, "uTF8String: ") || strings.HasPrefix(l, "printableString: ")):
			wantCN = false
			v := l[strings.Index(l, ": ")+2:]
			if mode == "issuer" && cur.issuer == "" {
				cur.issuer = v
			} else if mode == "subject" && cur.subject == "" {
				cur.subject = v
			}
		case strings.HasPrefix(l, "Object Id: "):
			wantCN = false
		}
	}
	flush()
	return certs
}

// buildFlows runs a capture through a Builder.
func buildFlows(t *testing.T, path string) []flow.Record {
	rd, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b := flow.NewBuilder(flow.Options{})
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Add(p.Timestamp, p.LinkType, p.Data, p.OrigLen)
	}
	var recs []flow.Record
	b.Flush(func(r *flow.Record) { recs = append(recs, *r) })
	return recs
}
