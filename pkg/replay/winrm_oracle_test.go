package replay

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// fieldValue returns the value of an operation's field, "" when absent.
func fieldValue(op *Operation, name string) string {
	for _, f := range op.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// TestWinRMRealCapture replays a real Windows-to-Windows PowerShell
// remoting capture (Enter-PSSession and Invoke-Command from a domain
// controller): every WinRM connection becomes one session operation with
// its endpoints, time and account, and its encrypted message counts per
// direction equal tshark's count of multipart/encrypted requests and
// responses on that connection.
func TestWinRMRealCapture(t *testing.T) {
	file := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "winrm_psremote_05-16.pcap")
	ops, st := replayFile(t, file)
	if st.Damaged() {
		t.Errorf("stats say damaged: %+v", st)
	}

	// The oracle: tshark's HTTP dissector, per client port.
	type conn struct {
		req, resp int
		first     time.Time
		auth      string
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
	for _, r := range tsharkFields(t, file, `http.request.method == "POST" || http.response`, "tcp.srcport", "tcp.dstport", "http.request", "http.content_type", "frame.time_epoch", "http.authorization") {
		enc := strings.Contains(r[3], "multipart/encrypted")
		if r[2] == "1" {
			c := get(r[0])
			if c.first.IsZero() {
				sec, _ := strconv.ParseFloat(r[4], 64)
				c.first = time.Unix(0, int64(sec*1e9)).UTC()
			}
			if strings.HasPrefix(r[5], "Negotiate TlRMTVNT") && c.auth == "" {
				c.auth = "ntlm"
			} else if strings.HasPrefix(r[5], "Negotiate YII") && c.auth == "" {
				c.auth = "kerberos"
			}
			if enc {
				c.req++
			}
		} else if enc {
			get(r[1]).resp++
		}
	}
	if len(want) != 7 {
		t.Fatalf("tshark found %d WinRM connections, want the capture's 7", len(want))
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
		if op.Src.String() != "192.168.1.195" || op.Dst.String() != "192.168.1.46" || op.DstPort != 5985 {
			t.Errorf("port %d: %s:%d -> %s:%d", port, op.Src, op.SrcPort, op.Dst, op.DstPort)
		}
		if d := op.Time.Sub(w.first); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("port %d: time %s, tshark's first request %s", port, op.Time, w.first)
		}
		if op.Auth != w.auth {
			t.Errorf("port %d: auth %q, the Authorization header says %q", port, op.Auth, w.auth)
		}
		switch op.Auth {
		case "kerberos":
			// The client's KDC exchanges were not captured (it is the
			// domain controller itself): the ticket's service names it.
			if op.User != "" || !strings.EqualFold(op.Service, "HTTP/Chip_Douglas-PC") {
				t.Errorf("port %d: kerberos account %q service %q", port, op.Account(), op.Service)
			}
		case "ntlm":
			if op.User != "administrator" || op.Workstation != "SNICKLEFRITZ" {
				t.Errorf("port %d: ntlm account %q from %q", port, op.Account(), op.Workstation)
			}
		}
		if op.Technique != "T1021.006" || op.Phase != "lateral-movement" || !op.Encrypted || op.Noise {
			t.Errorf("port %d: %s %s encrypted=%v noise=%v", port, op.Technique, op.Phase, op.Encrypted, op.Noise)
		}
		wantEnc := fmt.Sprintf("%d from the client, %d from the server (application/HTTP-SPNEGO-session-encrypted)", w.req, w.resp)
		if g := fieldValue(op, "encrypted messages"); g != wantEnc {
			t.Errorf("port %d: encrypted messages %q, tshark %q", port, g, wantEnc)
		}
		if fieldValue(op, "plaintext bytes") == "" {
			t.Errorf("port %d: no plaintext sizes", port)
		}
	}
}
