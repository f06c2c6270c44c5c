package replay

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestWinRMRealCaptures replays real Windows PowerShell remoting
// captures: a lab's Enter-PSSession and Invoke-Command from a domain
// controller (Kerberos and NTLM), Covenant's PowerShell remoting and
// PurpleSharp's playbook (Kerberos without SPNEGO, many hosts). Every
// WinRM connection tshark sees becomes one session operation with its
// endpoints, time and account, and encrypted message counts per direction
// equal to tshark's count of multipart/encrypted requests and responses
// on that connection. A Kerberos account is the one tshark reads in the
// TGS-REP for the session's service, when one was captured; else the
// service principal tshark reads in the request's token.
func TestWinRMRealCaptures(t *testing.T) {
	for _, tc := range []struct {
		path  []string
		conns int
	}{
		{[]string{"real-lab", "elcabezzonn", "winrm_psremote_05-16.pcap"}, 7},
		{[]string{"remote-ops", "otrf", "covenant_psremoting_command_2020-08-06115603.cap"}, 3},
		{[]string{"remote-ops", "otrf", "purplesharp_ad_playbook_I_2020-10-22042947.cap"}, 9},
	} {
		file := testenv.SharedFile(t, append([]string{"pcaps"}, tc.path...)...)
		t.Run(tc.path[len(tc.path)-1], func(t *testing.T) { checkWinRMCapture(t, file, tc.conns) })
	}
}

func checkWinRMCapture(t *testing.T, file string, conns int) {
	ops, st := replayFile(t, file)
	if st.DecodeErrors != 0 {
		t.Errorf("decode errors: %+v", st)
	}

	// The oracle: tshark's HTTP and Kerberos dissectors, per client port.
	type conn struct {
		req, resp int
		first     time.Time
		auth      string
		sname     string // the service of the first request's Kerberos token
		user      string // the NTLM AUTHENTICATE's user
		protocol  string // of its encrypted parts
	}
	want := map[uint16]*conn{}
	get := func(port string) *conn {
		n, err := strconv.Atoi(port)
		if err != nil {
			t.Fatalf("port %q", port)
		}
		c := want[uint16(n)]
		if c == nil {
			c = &conn{}
			want[uint16(n)] = c
		}
		return c
	}
	for _, r := range tsharkFields(t, file, `(http.request.method == "POST" && http.request.uri contains "/wsman") || (http.response && tcp.srcport == 5985)`,
		"tcp.srcport", "tcp.dstport", "http.request", "http.content_type", "frame.time_epoch", "http.authorization", "kerberos.SNameString", "ntlmssp.auth.username") {
		for len(r) < 8 {
			r = append(r, "")
		}
		enc := strings.Contains(r[3], "multipart/encrypted")
		if r[2] != "1" {
			if enc {
				get(r[1]).resp++
			}
			continue
		}
		c := get(r[0])
		if c.first.IsZero() {
			sec, _ := strconv.ParseFloat(r[4], 64)
			c.first = time.Unix(0, int64(sec*1e9)).UTC()
		}
		if r[7] != "" {
			c.user = r[7]
		}
		if c.auth == "" {
			switch a := r[5]; {
			case strings.HasPrefix(a, "Negotiate TlRMTVNT"), strings.HasPrefix(a, "NTLM "):
				c.auth = "ntlm"
			case strings.HasPrefix(a, "Negotiate YII"), strings.HasPrefix(a, "Kerberos "):
				c.auth = "kerberos"
				c.sname = strings.ReplaceAll(r[6], ",", "/")
			}
		}
		if enc {
			c.req++
			if _, p, ok := strings.Cut(r[3], `protocol="`); ok {
				c.protocol, _, _ = strings.Cut(p, `"`)
			}
		}
	}
	if len(want) != conns {
		t.Fatalf("tshark found %d WinRM connections, want the capture's %d", len(want), conns)
	}
	// Who the KDC issued each service ticket to.
	clients := map[string]string{}
	for _, r := range tsharkFields(t, file, "kerberos.msg_type == 13", "kerberos.CNameString", "kerberos.SNameString") {
		if len(r) == 2 {
			clients[strings.ToLower(strings.ReplaceAll(r[1], ",", "/"))] = r[0]
		}
	}
	got := map[uint16]*Operation{}
	for i := range ops {
		if op := &ops[i]; op.Interface == "winrm" && op.Operation == "session" {
			if got[op.SrcPort] != nil {
				t.Errorf("two sessions for client port %d", op.SrcPort)
			}
			got[op.SrcPort] = op
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d winrm sessions, tshark sees %d connections", len(got), len(want))
	}
	for port, w := range want {
		op := got[port]
		if op == nil {
			t.Errorf("no session for client port %d", port)
			continue
		}
		if op.DstPort != 5985 || op.Transport != "http" {
			t.Errorf("port %d: %s:%d -> %s:%d over %s", port, op.Src, op.SrcPort, op.Dst, op.DstPort, op.Transport)
		}
		if d := op.Time.Sub(w.first); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("port %d: time %s, tshark's first request %s", port, op.Time, w.first)
		}
		if op.Auth != w.auth {
			t.Errorf("port %d: auth %q, the Authorization header says %q", port, op.Auth, w.auth)
		}
		switch op.Auth {
		case "kerberos":
			if !strings.EqualFold(op.Service, w.sname) {
				t.Errorf("port %d: service %q, tshark %q", port, op.Service, w.sname)
			}
			if c, ok := clients[strings.ToLower(w.sname)]; ok {
				if !strings.EqualFold(op.User, c) || op.AccountVia != "ticket" {
					t.Errorf("port %d: account %q via %q, the TGS-REP for %s names %q", port, op.Account(), op.AccountVia, w.sname, c)
				}
			} else if op.User != "" && op.AccountVia != "kdc" {
				t.Errorf("port %d: account %q via %q with no TGS-REP for %s captured", port, op.Account(), op.AccountVia, w.sname)
			}
		case "ntlm":
			if op.User == "" || op.User != w.user {
				t.Errorf("port %d: ntlm user %q, tshark %q", port, op.User, w.user)
			}
		}
		if op.Technique != "T1021.006" || op.Phase != "lateral-movement" || !op.Encrypted || op.Noise {
			t.Errorf("port %d: %s %s encrypted=%v noise=%v", port, op.Technique, op.Phase, op.Encrypted, op.Noise)
		}
		wantEnc := fmt.Sprintf("%d from the client, %d from the server (%s)", w.req, w.resp, w.protocol)
		if g := op.Field("encrypted messages"); g != wantEnc {
			t.Errorf("port %d: encrypted messages %q, tshark %q", port, g, wantEnc)
		}
		if op.Field("plaintext bytes") == "" {
			t.Errorf("port %d: no plaintext sizes", port)
		}
	}
}
