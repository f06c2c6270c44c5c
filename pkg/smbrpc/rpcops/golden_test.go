package rpcops

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// stubCall is one line of a testdata/stubs fixture: the stubs of one call
// as replay reassembled them from a shared remote-operations capture
// (frame is the request's frame in that capture, conn the connection).
// Cut marks a stub that was cut short when the fixture was extracted (the
// rpcdump lookup answer keeps the first 16 KiB of its reply): its decode error is
// expected and the golden file says so.
type stubCall struct {
	Cut    bool   `json:"cut"`
	Frame  int    `json:"frame"`
	Conn   string `json:"conn"`
	Iface  string `json:"iface"`
	Ver    uint16 `json:"ver"`
	Opnum  uint16 `json:"opnum"`
	Pipe   string `json:"pipe"`
	Big    bool   `json:"big"`
	NDR64  bool   `json:"ndr64"`
	Object string `json:"object"`
	Sealed bool   `json:"sealed"`
	// Decrypted: sealed on the wire; Req is tshark's decryption with the
	// lab password (decrypted_test.go).
	Decrypted bool   `json:"decrypted"`
	Req       string `json:"req"`
	Resp      string `json:"resp"`
}

func loadStubs(t testing.TB, path string) []stubCall {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []stubCall
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c stubCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, c)
	}
	return out
}

// call turns a fixture line into a Call; when the bind was not captured
// the interface is found as the pipeline finds it: from the DCOM object's
// IPID in shared, else guessed.
func (s stubCall) call(t testing.TB, shared *Shared) (c Call, guessed bool) {
	t.Helper()
	var err error
	c = Call{IfVersion: s.Ver, Opnum: s.Opnum, BigEndian: s.Big, NDR64: s.NDR64, Pipe: s.Pipe}
	if c.Request, err = hex.DecodeString(s.Req); err != nil {
		t.Fatal(err)
	}
	if c.Response, err = hex.DecodeString(s.Resp); err != nil {
		t.Fatal(err)
	}
	if s.Sealed {
		c.Request, c.Response = nil, nil
	}
	if s.Object != "" {
		c.Object = mustUUID(s.Object)
	}
	if s.Iface != "" {
		c.Interface = mustUUID(s.Iface)
	} else if _, iid, ok := shared.Object(c.Object); ok && InterfaceName(iid) != "" {
		c.Interface, c.NDR64 = iid, StubNDR64(iid, c.Opnum, c.Request)
	} else if u, n64, ok := GuessCall(s.Pipe, s.Opnum, c.Request); ok {
		c.Interface, c.NDR64, guessed = u, n64, true
	}
	return c, guessed
}

// render prints a Decoded for golden files: one header line, one indented
// line per field.
func render(w *strings.Builder, frame int, d Decoded, guessed, sealed, ndr64 bool) {
	fmt.Fprintf(w, "frame %d: %s %s", frame, d.Interface, d.Operation)
	if guessed {
		w.WriteString(" (interface guessed)")
	}
	if sealed {
		w.WriteString(" (sealed)")
	}
	if ndr64 {
		w.WriteString(" (ndr64)")
	}
	fmt.Fprintf(w, " status=0x%08x", d.Status)
	if d.Noise {
		w.WriteString(" noise")
	}
	if d.Technique != "" || d.Phase != "" {
		fmt.Fprintf(w, " [%s %s]", d.Technique, d.Phase)
	}
	w.WriteByte('\n')
	if d.Target != "" {
		fmt.Fprintf(w, "    target: %q\n", d.Target)
	}
	if d.Command != "" {
		fmt.Fprintf(w, "    command: %q\n", d.Command)
	}
	for _, f := range d.Fields {
		fmt.Fprintf(w, "    - %s: %q\n", f.Name, f.Value)
	}
}

// TestGoldenStubs decodes every fixture extracted from the shared
// remote-operation captures, one Session per connection as the pipeline
// does, and compares with testdata/golden.
func TestGoldenStubs(t *testing.T) {
	files, err := filepath.Glob("testdata/stubs/*.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures under testdata/stubs")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		t.Run(name, func(t *testing.T) {
			sessions := map[string]*Session{}
			shared := NewShared() // one per capture, as the pipeline shares it
			var w strings.Builder
			for _, sc := range loadStubs(t, f) {
				c, guessed := sc.call(t, shared)
				s := sessions[sc.Conn]
				if s == nil {
					s = &Session{Shared: shared}
					sessions[sc.Conn] = s
				}
				d := s.Decode(c)
				render(&w, sc.Frame, d, guessed, sc.Sealed, sc.NDR64)
				if sc.Cut {
					w.WriteString("    (stub cut short in the fixture)\n")
				}
			}
			golden := filepath.Join("testdata", "golden", name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(w.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got := w.String(); got != string(want) {
				t.Errorf("decoded %s differs from %s:\n%s", f, golden, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, a, b)
		}
	}
	return "(equal)"
}

// TestStubStringsInBytes checks, over the stubs cut from real captures,
// that the string arguments decoded for the interfaces tshark 4.0 does not
// decode (RpcAddPrinterDriverEx, EFSR, the at job) are in the captured
// request bytes as UTF-16: the decoder read them from where they are, not
// from a misaligned offset.
func TestStubStringsInBytes(t *testing.T) {
	names := map[string]bool{"driver": true, "driver path": true, "data file": true, "config file": true, "help file": true,
		"environment": true, "file": true, "command": true, "server": true, "printer": true, "callback": true, "ca": true}
	files, _ := filepath.Glob("testdata/stubs/*.jsonl")
	checked := 0
	for _, f := range files {
		s := Session{Shared: NewShared()}
		for _, sc := range loadStubs(t, f) {
			c, _ := sc.call(t, s.Shared)
			d := s.Decode(c)
			if sc.Cut || len(c.Request) == 0 {
				continue
			}
			switch d.Interface {
			case "spoolss", "efsrpc", "atsvc", "ICertPassage", "netdfs", "FileServerVssAgent":
			default:
				continue
			}
			for _, fl := range d.Fields {
				if !names[fl.Name] || fl.Value == "" || fl.Name == "printer" && !strings.Contains(d.Operation, "OpenPrinter") {
					continue // a printer named from the call's handle is in an earlier call
				}
				u := utf16le(fl.Value)
				if !bytes.Contains(c.Request, u) {
					t.Errorf("%s frame %d: %s %s = %q is not in the request bytes", filepath.Base(f), sc.Frame, d.Operation, fl.Name, fl.Value)
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d strings checked", checked)
	}
}
