package replay

import (
	"strconv"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// A request carrying the Netlogon secure channel's verifier (auth type 68)
// is an MS-NRPC call even when its bind was not captured: tshark, which
// cannot name such a call, still shows the verifier's type and the opnum.
// Real lab captures where the bind precedes the capture or sits on an
// earlier connection.
func TestNetlogonVerifierNamesInterface(t *testing.T) {
	for _, rel := range [][]string{
		{"pcaps", "real-lab", "samr-enum-lab", "rpcclient_getdompwinfo.pcapng"},
		{"pcaps", "real-lab", "samr-enum-lab", "samr-enum.py_summary.pcapng"},
	} {
		file := testenv.SharedFile(t, rel...)
		rows := tsharkFields(t, file, "dcerpc.pkt_type == 0 && dcerpc.auth_type == 68", "tcp.srcport", "dcerpc.opnum")
		if len(rows) == 0 {
			t.Fatalf("%s: tshark shows no request with a Netlogon verifier", rel[len(rel)-1])
		}
		ops, _ := replayFile(t, file)
		for _, r := range rows {
			port, _ := strconv.Atoi(r[0])
			opnum, _ := strconv.Atoi(r[1])
			found := false
			for _, o := range ops {
				if int(o.SrcPort) == port && o.Opnum == opnum && o.Kind == "rpc" {
					found = true
					if o.Interface != "netlogon" {
						t.Errorf("%s: opnum %d from port %d is %q, want netlogon", rel[len(rel)-1], opnum, port, o.Interface)
					}
				}
			}
			if !found {
				t.Errorf("%s: no operation for tshark's request opnum %d from port %d", rel[len(rel)-1], opnum, port)
			}
		}
	}
}
