package rpcops

import (
	"encoding/hex"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// registered lists the interfaces in a fixed order for the fuzzers.
func registered() [][16]byte {
	var us [][16]byte
	for u := range reg() {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return UUIDString(us[i]) < UUIDString(us[j]) })
	return us
}

// FuzzDecode runs every interface's decoders over arbitrary stubs, without
// the recover that Session.Decode keeps as a last resort, so a panic is a
// failure. Seeds: every call of the capture fixtures and a few hand-built
// ones.
func FuzzDecode(f *testing.F) {
	us := registered()
	index := map[[16]byte]uint16{}
	for i, u := range us {
		index[u] = uint16(i)
	}
	files, _ := filepath.Glob("testdata/stubs/*.jsonl")
	for _, file := range files {
		for _, sc := range loadStubs(f, file) {
			if sc.Iface == "" || sc.Sealed {
				continue
			}
			req, _ := hex.DecodeString(sc.Req)
			resp, _ := hex.DecodeString(sc.Resp)
			var flags byte
			if sc.NDR64 {
				flags |= 1
			}
			f.Add(index[mustUUID(sc.Iface)], sc.Opnum, flags, req, resp)
		}
	}
	seeds := append(append(append(newOpsFixtures(), dcomExecFixtures()...), faspFixtures()...), csraFixtures()...)
	seeds = append(seeds, plaFixtures()...)
	seeds = append(seeds, fixture{iface: sysActivatorUUID, opnum: 4, req: remoteCreateInstance("000c101c-0000-0000-c000-000000000046", iidIDispatch)})
	for _, fx := range append(seeds, []fixture{
		{iface: winregUUID, opnum: 22, req: func(s *sb) { s.handle(h(1)).ustr("v").u32(1).size(2).raw([]byte{'a', 0}).u32(2) }},
		{iface: drsuapiUUID, opnum: 3, req: func(s *sb) { s.handle(h(1)).u32(8).alignP().u32(8).align(8).zeros(200) }},
		{iface: eventlogUUID, opnum: 16, req: func(s *sb) { s.ptr().u8('\\').rpcString(`\??\UNC\h@SSL@1\s\x`).u32(1).u32(1) }},
	}...) {
		for _, n64 := range []bool{false, true} {
			c := fx.call(n64)
			var flags byte
			if n64 {
				flags = 1
			}
			f.Add(index[fx.iface], fx.opnum, flags, c.Request, c.Response)
		}
	}
	for name, stub := range impacketStubs {
		b, _ := hex.DecodeString(stub)
		u, op := mgmtUUID, uint16(0)
		if strings.HasPrefix(name, "Nspi") {
			u, op = nspiUUID, 3
		}
		f.Add(index[u], op, byte(0), b, b)
	}
	f.Fuzz(func(t *testing.T, sel, opnum uint16, flags byte, req, resp []byte) {
		c := Call{Interface: us[int(sel)%len(us)], Opnum: opnum, Request: req, Response: resp,
			NDR64: flags&1 != 0, BigEndian: flags&2 != 0}
		if flags&4 != 0 {
			c.Object = c.Interface
		}
		var s Session
		var d Decoded
		s.decodeState(c, &d) // no recover: a panic fails the fuzz run
		s.decodeState(c, &d) // again, with the handles and names it learnt
		GuessCall("", opnum, req)
		GuessCall("atsvc", opnum, req)
		StubNDR64(c.Interface, opnum, req)
		c.Interface = epmUUID
		EndpointsFromCall(c)
	})
}

// FuzzParsers feeds the byte-level parsers (towers, OBJREFs, activation
// blobs, MS-WMIO objects, task XML) with arbitrary input.
func FuzzParsers(f *testing.F) {
	f.Add(wmioInstance("__PARAMETERS", [][2]string{{"CommandLine", "calc"}}))
	f.Add(objrefCustom(mustUUID("dc12a681-737f-11cf-884d-00aa004b2e24"), wbemClassObjectCLS,
		wmioInstance("__EventFilter", [][2]string{{"Name", "x"}, {"Query", "SELECT"}})))
	f.Add([]byte{5, 0, 0x13, 0, 0x0d})
	f.Add([]byte(`<Task><Actions><Exec><Command>a</Command></Exec></Actions></Task>`))
	f.Add(activationPropertiesIn("ab93b6f1-be76-4185-a488-a9001b105b94", "host", "8961f0a0-ff62-403b-91b4-7b9280241ceb"))
	rule := newSB(false)
	fwRule210(rule, "{1}", "n", `C:\a.exe`)
	f.Add(rule.bytes())
	f.Add(selfRelativeSD(binSID(5, 21, 1, 2, 3, 500), binSID(5, 11)))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n64 := range []bool{false, true} {
			for skew := 0; skew < 8; skew++ {
				for _, s := range ndrWStrings(b, n64, skew&1 != 0, skew) {
					if n := len([]rune(s.text)); 2*n > len(b) || s.end > len(b) {
						t.Fatalf("string of %d characters from %d bytes", n, len(b))
					}
				}
			}
		}
		utf16Strings(b, 1)
		indexOBJREF(b)
		sdACEs(b)
		parseTower(b)
		if o, ok := parseObjref(b); ok {
			parseActivationBlob(o.data)
			parseWMIObject(o.data)
		}
		parseActivationBlob(b)
		parseWMIObject(b)
		wmiStrings(b)
		dualStringArray(b)
		parseTaskXML(string(b))
		EndpointsFromMap(b, false)
	})
}

// FuzzCoercedHost: the host and WebDAV transport of any path a coercion
// call carries; the host is always a part of the path.
func FuzzCoercedHost(f *testing.F) {
	for _, p := range []string{`\\10.0.0.66\s\f`, `\??\UNC\h@SSL@443\d`, `\\?\UNC\h\s`, `\\.\UNC\`, `http://h/x`,
		`C:\x`, `h@80`, "\\??\\UNC\\\u212aelvin\\s"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		h := CoercedHost(p)
		CoercedWebDAV(p)
		if !strings.Contains(p, h) {
			t.Errorf("CoercedHost(%q) = %q, not part of the path", p, h)
		}
	})
}
