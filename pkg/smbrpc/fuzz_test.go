package smbrpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// captureSeeds returns TCP/UDP payloads from the shared remote-operation
// captures that start with a message of the kind want accepts, a few per
// file. Without the shared data it returns nothing and the fuzz targets run
// on the built fixtures alone.
func captureSeeds(f *testing.F, want func([]byte) bool) [][]byte {
	dir := os.Getenv("NWHEALTH_SHARED")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(testenv.ModuleRoot(f)), "shared")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "pcaps", "remote-ops", "*", "*.*cap*"))
	var out [][]byte
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			continue
		}
		n := 0
		next, lt := packetReader(fh)
		var h pkthdr.Packet
		for next != nil && n < 6 {
			d, err := next()
			if err != nil {
				break
			}
			if !pkthdr.Parse(lt, d, &h) || h.Payload < 0 || h.PayloadN <= 0 {
				continue
			}
			p := d[h.Payload : h.Payload+h.PayloadN]
			if want(p) {
				out = append(out, append([]byte(nil), p...))
				n++
			}
		}
		fh.Close()
	}
	return out
}

func packetReader(fh *os.File) (func() ([]byte, error), pkthdr.LinkType) {
	br := bufio.NewReader(fh)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, 0
	}
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, 0
		}
		return func() ([]byte, error) { d, _, err := r.ReadPacketData(); return d, err }, pkthdr.LinkType(r.LinkType())
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, 0
	}
	return func() ([]byte, error) { d, _, err := r.ReadPacketData(); return d, err }, pkthdr.LinkType(r.LinkType())
}

func addSeeds(f *testing.F, want func([]byte) bool, strip int) {
	for _, b := range seedMessages() {
		f.Add(b)
	}
	for _, b := range captureSeeds(f, want) {
		if len(b) > strip {
			f.Add(b[strip:])
		}
	}
}

func isNB(b []byte) bool   { _, _, ok := NBHeader(b); return ok && len(b) > 8 }
func isSMB2(b []byte) bool { return isNB(b) && SMBProto(b[4:]) == ProtoSMB2 }
func isSMB1(b []byte) bool { return isNB(b) && SMBProto(b[4:]) == ProtoSMB1 }
func isRPC(b []byte) bool  { _, _, ok := DCERPCHeader(b); return ok }

func FuzzNetBIOS(f *testing.F) {
	addSeeds(f, isNB, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, l, ok := NBHeader(b)
		if ok && (l < 0 || l > 1<<24) {
			t.Fatalf("length %d for type %x", l, typ)
		}
		NBNames(b)
		SMBProto(b)
	})
}

func FuzzSMB2(f *testing.F) {
	addSeeds(f, isSMB2, 4)
	// A 3.1.1 NEGOTIATE response with negotiate contexts.
	if b, err := hex.DecodeString(msNegotiateResp311); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		SplitSMB2(b, func(h SMB2Header, m []byte) {
			n++
			if len(m) < SMB2HeaderLen || len(m) > len(b) {
				t.Fatalf("message of %d bytes from %d", len(m), len(b))
			}
			decodeAll(m)
		})
		if n > 64 {
			t.Fatalf("%d messages", n)
		}
		ParseSMB2Transform(b)
	})
}

func FuzzSMB1(f *testing.F) {
	addSeeds(f, isSMB1, 4)
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSMB1(b, func(h SMB1Header, c SMB1Cmd) {
			if c.BytesAt > len(b) {
				t.Fatalf("bytes at %d of %d", c.BytesAt, len(b))
			}
		})
		decodeAll(b)
	})
}

func FuzzDCERPC(f *testing.F) {
	addSeeds(f, isRPC, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePDU(b)
		if err == nil {
			if p.FragLen > len(b) || len(p.Stub) > p.FragLen || len(p.AuthValue) > p.FragLen {
				t.Fatalf("pdu fields outside the input: %+v", p)
			}
			if len(p.Contexts) > p.FragLen/44+1 {
				t.Fatalf("%d contexts from %d bytes", len(p.Contexts), p.FragLen)
			}
		}
		EPMTowers(b)
		if at := VerificationTrailer(b); at < 0 || at > len(b) {
			t.Fatalf("trailer at %d in %d bytes", at, len(b))
		}
	})
}

func FuzzNTLMSSP(f *testing.F) {
	addSeeds(f, func(b []byte) bool { return FindNTLMSSP(b) != nil }, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, ok := ParseNTLMAuth(FindNTLMSSP(b)); ok && len(a.User)+len(a.Domain)+len(a.Workstation) > 3*len(b) {
			t.Fatalf("names longer than the input: %+v", a)
		}
	})
}

func FuzzKerberos(f *testing.F) {
	addSeeds(f, func(b []byte) bool {
		if len(b) > 4 && b[4]&0xe0 == 0x60 {
			return true // TCP record mark then an APPLICATION tag
		}
		_, ok := FindAPReq(b)
		return ok
	}, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseKerberos(b)
		if len(b) > 4 {
			ParseKerberos(b[4:])
		}
		FindAPReq(b)
	})
}

// derUint builds a DER INTEGER of v: minimal and unsigned (a 0 before a
// high bit) or, as Windows writes sequence numbers, the 4-byte two's
// complement of v as an int32.
func derUint(v uint32, signed bool) []byte {
	if signed {
		return mkder(0x02, binary.BigEndian.AppendUint32(nil, v))
	}
	b := binary.BigEndian.AppendUint32([]byte{0}, v)
	for len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0 {
		b = b[1:]
	}
	return mkder(0x02, b)
}

// FuzzKerberosParts decodes the parts of Kerberos messages that replay
// reads once decrypted (EncTicketPart, Authenticator, EncAPRepPart): a
// forged ticket's owner chose every byte of them. Raw bytes never panic
// and give keys that lie inside the input; parts built from fuzzed realm,
// name, key, sequence number and GSS flags decode to those values.
func FuzzKerberosParts(f *testing.F) {
	f.Add("CORP.LOCAL", "alice", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint8(23), uint32(0x8000_0001), uint32(0x103e), false, []byte{})
	f.Add("R", "host/dc", bytes.Repeat([]byte{7}, 32), uint8(18), uint32(5), uint32(0x1032), true, krbTicketDER("R", "cifs", "h"))
	f.Add("", "", []byte{}, uint8(0), uint32(0), uint32(0), false, krbAPReq("R", "cifs", "h"))
	f.Fuzz(func(t *testing.T, realm, name string, key []byte, etype uint8, seq, flags uint32, signed bool, raw []byte) {
		inside := func(k KrbKey) {
			if len(k.Value) > len(raw) {
				t.Fatalf("key of %d bytes from %d", len(k.Value), len(raw))
			}
		}
		if tp, ok := ParseEncTicketPart(raw); ok {
			inside(tp.Key)
		}
		if a, ok := ParseAuthenticator(raw); ok {
			inside(a.Subkey)
		}
		if r, ok := ParseEncAPRepPart(raw); ok {
			inside(r.Subkey)
		}

		clean := func(s string) bool {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] >= 0x7f {
					return false
				}
			}
			return len(s) < 200
		}
		if !clean(realm) || !clean(name) || len(key) > 200 {
			return
		}
		var parts []string
		if name != "" {
			parts = strings.Split(name, "/")
		}
		if len(parts) > 8 {
			return
		}
		encKey := mkder(0x30, mkder(0xa0, derUint(uint32(etype), false)), mkder(0xa1, mkder(0x04, key)))
		cksum := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 16), 0)
		cksum = binary.LittleEndian.AppendUint32(append(cksum, make([]byte, 12)...), flags)
		tkt := mkder(0x63, mkder(0x30,
			mkder(0xa0, mkder(0x03, []byte{0, 0x40, 0xa1, 0, 0})),
			mkder(0xa1, encKey),
			mkder(0xa2, mkder(0x1b, []byte(realm))),
			mkder(0xa3, krbPrincipal(1, parts...)),
		))
		auth := mkder(0x62, mkder(0x30,
			mkder(0xa0, mkder(0x02, []byte{5})),
			mkder(0xa1, mkder(0x1b, []byte(realm))),
			mkder(0xa2, krbPrincipal(1, parts...)),
			mkder(0xa3, mkder(0x30, mkder(0xa0, derUint(0x8003, false)), mkder(0xa1, mkder(0x04, cksum)))),
			mkder(0xa6, encKey),
			mkder(0xa7, derUint(seq, signed)),
		))
		rep := mkder(0x7b, mkder(0x30, mkder(0xa2, encKey), mkder(0xa3, derUint(seq, signed))))
		wantKey := KrbKey{Type: int(etype), Value: key}
		sameKey := func(k KrbKey) bool { return k.Type == wantKey.Type && bytes.Equal(k.Value, wantKey.Value) }
		if tp, ok := ParseEncTicketPart(tkt); ok != (len(key) > 0) || ok && (!sameKey(tp.Key) || tp.CRealm != realm || tp.CName != name) {
			t.Fatalf("ticket part %+v %v", tp, ok)
		}
		if a, ok := ParseAuthenticator(auth); !ok || !sameKey(a.Subkey) || a.CRealm != realm || a.CName != name ||
			!a.HasSeq || a.Seq != seq || !a.HasGSSFlags || a.GSSFlags != flags {
			t.Fatalf("authenticator %+v %v", a, ok)
		}
		if r, ok := ParseEncAPRepPart(rep); !ok || !sameKey(r.Subkey) || !r.HasSeq || r.Seq != seq {
			t.Fatalf("ap-rep part %+v %v", r, ok)
		}
	})
}
