package replay

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
)

// FuzzStreams feeds arbitrary bytes as both directions of an SMB (445), a
// DCE/RPC (135) and a WinRM (5985 HTTP, 5986 TLS) connection, cut into segments, with one segment dropped:
// framing, resync, the SMB and RPC state machines and rpcops must not
// panic, nothing stays buffered after the flush, and no more bytes are
// counted unframed than were fed (dropped bytes may be more: a message
// too large to hold is dropped for the size it claims).
func FuzzStreams(f *testing.F) {
	fl, _ := psexecFlow()
	var cli, srv []byte
	for _, pk := range fl.pkts {
		if len(pk.Data) > 54 {
			if pk.Data[26+3] == 1 { // source 10.0.0.1: the client
				cli = append(cli, pk.Data[54:]...)
			} else {
				srv = append(srv, pk.Data[54:]...)
			}
		}
	}
	f.Add(cli, srv, uint8(7))
	f.Add(join(rpcBind(1, svcctlIf, 2), rpcRequest(2, 3, 12, []byte("stub"))), rpcResponse(2, make([]byte, 8)), uint8(0))
	// The real sealed Certipy association (auth3, sealed request; the
	// bind_ack's CHALLENGE): the fuzzer reaches the unsealing with the
	// lab secret below.
	cert := certipyTCP(f)
	f.Add(join(cert["frame56"], cert["frame58"]), cert["frame54"], uint8(9))
	f.Add(nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, 1, sessionSetup(gssKrb(krbAPReq("R", "cifs", "h"))))), []byte{}, uint8(3))
	f.Add([]byte("POST /wsman HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 40\r\n\r\n<s:Envelope><s:Body/></s:Envelope>xxxxxx"),
		[]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), uint8(9))
	sec := secretsOf(f, `CORP\alice password:`+labPassword+"\n")
	// The Kerberos lab's keys: a mutated AP-REQ, AP-REP or wrap token
	// goes through the --keytab paths too.
	keys, _, err := krbseal.Load(filepath.Join("..", "..", "testdata", "krblab", "krblab.keytab"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, drop uint8) {
		fed := uint64(len(c2s) + len(s2c))
		for _, port := range []string{"445", "135", "5985", "5986"} {
			c2s, s2c := c2s, s2c
			flow := newFlow("10.0.0.1:40000", "10.0.0.2:"+port, t0)
			seg := 0
			for len(c2s) > 0 || len(s2c) > 0 {
				n := min(len(c2s), 61)
				if n > 0 {
					idx := flow.send(true, c2s[:n], 61)
					if uint8(seg) == drop && len(idx) > 0 {
						flow.pkts = flow.pkts[:len(flow.pkts)-1]
					}
					c2s = c2s[n:]
				}
				m := min(len(s2c), 97)
				if m > 0 {
					flow.send(false, s2c[:m], 97)
					s2c = s2c[m:]
				}
				seg++
			}
			p := New(Config{MaxStreamBuffer: 1 << 16, Secrets: sec, Keys: keys}, func(Operation) {})
			for _, pk := range flow.pkts {
				p.Packet(pk)
			}
			p.Flush()
			if p.buffered != 0 || len(p.conns) != 0 {
				t.Fatalf("after flush: %d bytes buffered, %d conns", p.buffered, len(p.conns))
			}
			if st := p.Stats(); st.UnframedBytes > fed {
				t.Fatalf("fed %d bytes, counted %d unframed", fed, st.UnframedBytes)
			}
		}
	})
}

// certipyTCP reads the real Certipy association kept as hex in
// ntlmseal's testdata.
func certipyTCP(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "smbrpc", "ntlmseal", "testdata", "certipy_tcp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, h, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			if m[name], err = hex.DecodeString(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

// FuzzRemComMessage decodes arbitrary bytes as a RemCom request: no
// panic, and a decoded request's strings lie inside their fields.
func FuzzRemComMessage(f *testing.F) {
	b := make([]byte, remComMsgLen)
	copy(b, "cmd.exe")
	copy(b[remComCmdLen:], `c:\windows\system32`)
	copy(b[remComCmdLen+remComPathLen+8:], "KKiq")
	f.Add(b)
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseRemComMessage(b)
		if !ok {
			return
		}
		if m.command == "" || len(m.command) >= remComCmdLen || len(m.workDir) >= remComPathLen || len(m.machine) >= remComPathLen {
			t.Fatalf("%+v", m)
		}
		op := Operation{}
		remComOp(&op, m, b[:remComRespLen])
	})
}
