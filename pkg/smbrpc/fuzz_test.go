package smbrpc

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
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
