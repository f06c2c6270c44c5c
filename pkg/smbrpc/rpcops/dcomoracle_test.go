package rpcops

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestDcomExecTshark writes the activations of the newer execution and
// coercion classes into a capture (bind to ISystemActivator on port 135,
// then RemoteCreateInstance) and asks tshark's ISystemActivator dissector
// what each one activates: the class, the interfaces asked and the server
// named must be what rpcops reports. The activation blob is ours; the
// reading of it is Wireshark's.
func TestDcomExecTshark(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	type act struct {
		clsid, iid, server string
		session            int // -1: none asked
	}
	acts := []act{
		{"000c101c-0000-0000-c000-000000000046", "000c101c-0000-0000-c000-000000000046", "10.0.0.5", -1},
		{"ab93b6f1-be76-4185-a488-a9001b105b94", "8961f0a0-ff62-403b-91b4-7b9280241ceb", "ws01.corp.local", 1},
		{"8cec58ae-07a1-11d9-b15e-000d56bfe6ee", "8cec592c-07a1-11d9-b15e-000d56bfe6ee", "WS01", -1},
		{"8cec58e7-07a1-11d9-b15e-000d56bfe6ee", "8cec595b-07a1-11d9-b15e-000d56bfe6ee", "10.0.0.5", 3},
		{"3050f4d8-98b5-11cf-bb82-00aa00bdce0b", "00000000-0000-0000-c000-000000000046", "10.0.0.5", -1},
		{"03837546-098b-11d8-9414-505054503030", iidIDispatch, "10.0.0.5", -1},
		{"2c941fc5-975b-59be-a960-9a2a262853a5", iidIDispatch, "10.0.0.5", -1},
		{"4cb43d7f-7eee-4906-8698-60da1c38f2fe", iidIDispatch, "10.0.0.5", -1},
		{"72566e27-1abb-4eb3-b4f0-eb431cb1cb32", iidIDispatch, "10.0.0.5", -1},
		{"00f2b433-44e4-4d88-b2b0-2698a0a91dba", "00000000-0000-0000-c000-000000000046", "10.0.0.5", 2},
	}
	var stubs [][]byte
	for _, a := range acts {
		s := newSB(false)
		s.orpcThis().null().mip(activationPropertiesInSession(a.clsid, a.server, a.session, a.iid))
		stubs = append(stubs, s.bytes())
	}
	path := filepath.Join(t.TempDir(), "dcomexec.pcap")
	writeRPCCapture(t, path, sysActivatorUUID, 4, stubs)
	out, err := exec.Command(tshark, "-n", "-r", path, "-Y", "dcerpc.pkt_type == 0", "-T", "fields",
		"-E", "aggregator=|", "-e", "isystemactivator.properties.instninfo.clsid",
		"-e", "isystemactivator.properties.instninfo.iid", "-e", "isystemactivator.properties.si.ci.name",
		"-e", "isystemactivator.properties.spcl.sid", "-e", "isystemactivator.properties.spcl.remotesid").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	t.Logf("tshark:\n%s", out)
	rows := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(rows) != len(acts) {
		t.Fatalf("tshark shows %d requests, want %d:\n%s", len(rows), len(acts), out)
	}
	for i, row := range rows {
		cols := strings.Split(row, "\t")
		if len(cols) != 5 || cols[0] == "" {
			t.Errorf("request %d: tshark did not dissect the activation: %q", i, row)
			continue
		}
		d := Decode(Call{Interface: sysActivatorUUID, Opnum: 4, Request: stubs[i]})
		if got := d.Fields[0].Value; !strings.Contains(got, "{"+cols[0]+"}") || d.Target != ClassName(mustUUID(cols[0])) {
			t.Errorf("request %d: tshark's class %s, rpcops %q (target %q)", i, cols[0], got, d.Target)
		}
		if d.Target == "" || strings.HasPrefix(d.Target, "{") {
			t.Errorf("request %d: class %s unnamed", i, cols[0])
		}
		var iface, server, session string
		for _, f := range d.Fields {
			switch f.Name {
			case "interface":
				iface = f.Value
			case "server":
				server = f.Value
			case "session":
				session = f.Value
			}
		}
		// tshark shows the session id whenever SpecialPropertiesData is
		// there; rpcops only when the client asked for that session.
		switch {
		case cols[4] != "" && cols[4] != "0" && !strings.HasPrefix(session, cols[3]+" "):
			t.Errorf("request %d: tshark's session %s (remote %s), rpcops %q", i, cols[3], cols[4], session)
		case (cols[4] == "" || cols[4] == "0") && session != "":
			t.Errorf("request %d: tshark shows no session asked, rpcops %q", i, session)
		}
		if acts[i].session >= 0 && cols[3] == "" {
			t.Errorf("request %d: tshark did not read the session", i)
		}
		if !strings.Contains(iface, "{"+cols[1]+"}") {
			t.Errorf("request %d: tshark's interface %s, rpcops %q", i, cols[1], iface)
		}
		if server != cols[2] {
			t.Errorf("request %d: tshark's server %q, rpcops %q", i, cols[2], server)
		}
	}
}

// writeRPCCapture writes a classic pcap of one TCP connection to port 135:
// a bind of iface (NDR), its bind_ack, and one request per stub.
func writeRPCCapture(t *testing.T, path string, iface [16]byte, opnum uint16, stubs [][]byte) {
	t.Helper()
	le := binary.LittleEndian
	pdu := func(ptype byte, callID uint32, body []byte) []byte {
		h := []byte{5, 0, ptype, 3, 0x10, 0, 0, 0}
		h = le.AppendUint16(h, uint16(16+len(body)))
		h = le.AppendUint16(h, 0)
		h = le.AppendUint32(h, callID)
		return append(h, body...)
	}
	ndrSyntax := mustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	bind := le.AppendUint16(nil, 4280)
	bind = le.AppendUint16(bind, 4280)
	bind = le.AppendUint32(bind, 0)
	bind = append(bind, 1, 0, 0, 0) // one context
	bind = le.AppendUint16(bind, 0) // context id
	bind = append(bind, 1, 0)       // one transfer syntax
	bind = append(bind, iface[:]...)
	bind = le.AppendUint32(bind, 0) // version 0.0
	bind = append(bind, ndrSyntax[:]...)
	bind = le.AppendUint32(bind, 2)
	ack := le.AppendUint16(nil, 4280)
	ack = le.AppendUint16(ack, 4280)
	ack = le.AppendUint32(ack, 0x1234)
	ack = le.AppendUint16(ack, 4)
	ack = append(ack, "135\x00"...)
	ack = append(ack, 0, 0)            // pad to 4
	ack = append(ack, 1, 0, 0, 0)      // one result
	ack = le.AppendUint16(ack, 0)      // acceptance
	ack = le.AppendUint16(ack, 0)      // reason
	ack = append(ack, ndrSyntax[:]...) // transfer syntax
	ack = le.AppendUint32(ack, 2)      // its version
	segs := [][2]any{{0, pdu(11, 1, bind)}, {1, pdu(12, 1, ack)}}
	for i, stub := range stubs {
		req := le.AppendUint32(nil, uint32(len(stub)))
		req = le.AppendUint16(req, 0)
		req = le.AppendUint16(req, opnum)
		segs = append(segs, [2]any{0, pdu(0, uint32(i+2), append(req, stub...))})
	}
	be := binary.BigEndian
	file := le.AppendUint32(nil, 0xa1b2c3d4)
	file = le.AppendUint16(file, 2)
	file = le.AppendUint16(file, 4)
	file = le.AppendUint32(file, 0)
	file = le.AppendUint32(file, 0)
	file = le.AppendUint32(file, 65535)
	file = le.AppendUint32(file, 1) // Ethernet
	seq := [2]uint32{1000, 5000}
	for i, sg := range segs {
		dir, payload := sg[0].(int), sg[1].([]byte)
		src, dst := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 5}
		sport, dport := uint16(50000), uint16(135)
		if dir == 1 {
			src, dst, sport, dport = dst, src, dport, sport
		}
		tcp := be.AppendUint16(nil, sport)
		tcp = be.AppendUint16(tcp, dport)
		tcp = be.AppendUint32(tcp, seq[dir])
		tcp = be.AppendUint32(tcp, seq[1-dir])
		tcp = append(tcp, 0x50, 0x18) // header length 20, PSH|ACK
		tcp = be.AppendUint16(tcp, 65535)
		tcp = append(tcp, 0, 0, 0, 0) // checksum (not checked), urgent
		tcp = append(tcp, payload...)
		seq[dir] += uint32(len(payload))
		ip := []byte{0x45, 0}
		ip = be.AppendUint16(ip, uint16(20+len(tcp)))
		ip = be.AppendUint16(ip, uint16(i))
		ip = append(ip, 0x40, 0, 64, 6, 0, 0)
		ip = append(append(ip, src...), dst...)
		frame := append([]byte{0, 1, 2, 3, 4, byte(5 + dir), 0, 1, 2, 3, 4, byte(6 - dir), 8, 0}, ip...)
		frame = append(frame, tcp...)
		file = le.AppendUint32(file, uint32(1700000000+i))
		file = le.AppendUint32(file, 0)
		file = le.AppendUint32(file, uint32(len(frame)))
		file = le.AppendUint32(file, uint32(len(frame)))
		file = append(file, frame...)
	}
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
}
