// Command stubgen extracts DCE/RPC request and response stubs from the
// team's shared remote-operation captures with tshark, and writes them as
// small JSON Lines fixtures (derived fields, not captures) under the rpcops
// testdata directory:
//
//	go run ./internal/stubgen            (from pkg/smbrpc/rpcops)
//
// The shared directory is $NWHEALTH_SHARED or "shared" beside the checkout.
// Each line is one call in request order: the connection it belongs to
// (tcp stream and SMB file id, so a test can keep one rpcops.Session per
// association), the interface bound for its context (empty when the bind was
// not captured), the opnum, the pipe name, and the stubs in hex. Sealed calls
// (auth level 6) keep their names but no stubs.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Call is one line of a fixture file.
type Call struct {
	Frame  int    `json:"frame"`
	Conn   string `json:"conn"`
	Iface  string `json:"iface"`
	Ver    uint16 `json:"ver"`
	Opnum  uint16 `json:"opnum"`
	Pipe   string `json:"pipe,omitempty"`
	Big    bool   `json:"big,omitempty"`
	NDR64  bool   `json:"ndr64,omitempty"`
	Object string `json:"object,omitempty"`
	Sealed bool   `json:"sealed,omitempty"`
	Req    string `json:"req,omitempty"`
	Resp   string `json:"resp,omitempty"`
	Cut    bool   `json:"cut,omitempty"` // a stub longer than maxStub was cut
}

// maxStub keeps fixtures small: longer stubs are cut (the decoders must cope
// with short stubs anyway) and the call marked Cut.
const maxStub = 16 << 10

// maxCalls bounds calls kept per capture (the endpoint-mapper scan has 349).
const maxCalls = 60

// maxSameOp bounds the calls of one operation kept per capture.
const maxSameOp = 6

func main() {
	out := flag.String("out", "testdata/stubs", "output directory")
	shared := flag.String("shared", "", "shared data directory (default $NWHEALTH_SHARED or ../shared beside the module)")
	var extra []string
	flag.Func("capture", "also extract this capture (repeatable): public captures outside the shared set", func(v string) error {
		extra = append(extra, v)
		return nil
	})
	flag.Parse()
	dir, err := sharedDir(*shared)
	if err != nil {
		fatal(err)
	}
	caps, err := filepath.Glob(filepath.Join(dir, "pcaps", "remote-ops", "*", "*"))
	if err != nil {
		fatal(err)
	}
	// Real-lab captures of the interfaces no remote-ops capture has:
	// PrintNightmare (spoolss) and a legacy at job on a context other
	// than 0.
	for _, rel := range []string{
		"real-lab/elcabezzonn/attempt-spools-vuln-cve-2021-1675.pcap",
		"real-lab/suricata-verify-dcerpc/smb-dce_iface/input.pcap",
		"real-lab/suricata-verify-dcerpc/dcerpc-smb-ctxid/input.pcap",
	} {
		caps = append(caps, filepath.Join(dir, "pcaps", filepath.FromSlash(rel)))
	}
	caps = append(caps, extra...)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	for _, c := range caps {
		if strings.HasSuffix(c, ".md") {
			continue
		}
		base := filepath.Base(c)
		if base == "input.pcap" { // suricata-verify names every case's capture so
			base = "suricata_" + filepath.Base(filepath.Dir(c)) + ".pcap"
		}
		calls, err := extract(c)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", filepath.Base(c), err))
		}
		if len(calls) == 0 {
			continue
		}
		name := filepath.Join(*out, strings.TrimSuffix(base, filepath.Ext(base))+".jsonl")
		var buf bytes.Buffer
		for _, call := range calls {
			b, _ := json.Marshal(call)
			buf.Write(b)
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			fatal(err)
		}
		fmt.Fprintf(os.Stderr, "%s: %d calls, %d bytes\n", filepath.Base(name), len(calls), buf.Len())
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "stubgen:", err)
	os.Exit(1)
}

func sharedDir(flagDir string) (string, error) {
	if flagDir != "" {
		return flagDir, nil
	}
	if d := os.Getenv("NWHEALTH_SHARED"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared"), nil
		}
		p := filepath.Dir(dir)
		if p == dir {
			return "", fmt.Errorf("go.mod not found")
		}
		dir = p
	}
}

// frameMeta is what the fields pass says about a frame's SMB context.
type frameMeta struct {
	stream  string
	fid     string
	msgID   string
	resp    bool
	smbFile string // SMB1 file name of the fid
	create  string // SMB2 create request file name
}

func extract(capPath string) ([]Call, error) {
	meta, err := fieldsPass(capPath)
	if err != nil {
		return nil, err
	}
	// SMB2: pipe names from create request/response pairs; file ids of read
	// responses from their requests.
	createName := map[string]string{} // stream/msgid -> name
	fidOfMsg := map[string]string{}   // stream/msgid -> fid
	pipeOfFid := map[string]string{}  // stream/fid -> pipe
	var frames []int
	for f := range meta {
		frames = append(frames, f)
	}
	sort.Ints(frames)
	for _, f := range frames {
		m := meta[f]
		k := m.stream + "/" + m.msgID
		if m.create != "" && !m.resp {
			createName[k] = m.create
		}
		if m.resp && m.fid != "" && createName[k] != "" {
			pipeOfFid[m.stream+"/"+m.fid] = createName[k]
		}
		if !m.resp && m.fid != "" {
			fidOfMsg[k] = m.fid
		}
		if m.resp && m.fid == "" && m.msgID != "" {
			m.fid = fidOfMsg[k]
			meta[f] = m
		}
		if m.smbFile != "" && m.fid != "" {
			pipeOfFid[m.stream+"/"+m.fid] = m.smbFile
		}
	}

	pdus, err := jsonPass(capPath)
	if err != nil {
		return nil, err
	}
	type ctxKey struct {
		conn string
		ctx  uint16
	}
	type syntax struct {
		uuid string
		ver  uint16
	}
	ctxs := map[ctxKey]syntax{}
	ndr64 := map[ctxKey]bool{}
	bindOrder := map[string][]uint16{} // conn -> context ids of the last bind/alter_context
	type pending struct {
		call *Call
		req  []byte
		resp []byte
		done bool
	}
	var calls []*pending
	open := map[string]*pending{} // conn/callid -> request being assembled or awaiting response
	openByStream := map[string]*pending{}
	for _, p := range pdus {
		m := meta[p.frame]
		conn := m.stream + "/" + m.fid
		h, ok := parseHeader(p.data)
		if !ok {
			continue
		}
		switch h.ptype {
		case 11, 14: // bind, alter_context
			bindOrder[m.stream] = nil
			for _, c := range parseBindContexts(p.data, h) {
				ctxs[ctxKey{conn, c.id}] = syntax{c.uuid, c.ver}
				bindOrder[m.stream] = append(bindOrder[m.stream], c.id)
			}
		case 12, 15: // bind_ack, alter_context_resp: which transfer syntax won
			for i, res := range parseBindResults(p.data, h) {
				if ids := bindOrder[m.stream]; i < len(ids) && res.accepted {
					ndr64[ctxKey{conn, ids[i]}] = res.ndr64
				}
			}
		case 0: // request
			body, sealed := stubOf(p.data, h, 24)
			ctxID := h.order.Uint16(p.data[20:])
			opnum := h.order.Uint16(p.data[22:])
			key := conn + "/" + strconv.Itoa(int(h.callID))
			pc := open[key]
			if pc != nil && !pc.done && pc.resp == nil && h.flags&3 == 3 && bytes.Equal(pc.req, body) {
				// An SMB2 IOCTL response echoing the request it answers.
				continue
			}
			if pc == nil || h.flags&1 != 0 || pc.done {
				s := ctxs[ctxKey{conn, ctxID}]
				pc = &pending{call: &Call{
					Frame: p.frame, Conn: conn, Iface: s.uuid, Ver: s.ver, Opnum: opnum,
					Pipe: normPipe(pipeOfFid[m.stream+"/"+m.fid]), Big: h.big, Sealed: sealed,
					NDR64: ndr64[ctxKey{conn, ctxID}],
				}}
				if h.flags&0x80 != 0 && len(p.data) >= 40 {
					pc.call.Object = uuidString(p.data[24:40])
				}
				open[key] = pc
				openByStream[m.stream+"/"+strconv.Itoa(int(h.callID))] = pc
				calls = append(calls, pc)
			}
			if h.flags&0x80 != 0 {
				body, sealed = stubOf(p.data, h, 40)
			}
			if h.flags&2 != 0 && h.authLen > 0 && !sealed {
				// As replay does: the verification trailer is not NDR.
				body = body[:smbrpc.VerificationTrailer(body)]
			}
			pc.call.Sealed = pc.call.Sealed || sealed
			pc.req = append(pc.req, body...)
		case 2, 3: // response, fault
			key := conn + "/" + strconv.Itoa(int(h.callID))
			pc := open[key]
			if pc == nil {
				pc = openByStream[m.stream+"/"+strconv.Itoa(int(h.callID))]
			}
			if pc == nil {
				continue
			}
			if h.ptype == 3 {
				// A fault carries its status where a response carries the stub;
				// keep it as the 4-byte "response" so the status is visible.
				if len(p.data) >= 28 {
					pc.resp = append([]byte(nil), p.data[24:28]...)
				}
				pc.done = true
				continue
			}
			body, sealed := stubOf(p.data, h, 24)
			pc.call.Sealed = pc.call.Sealed || sealed
			pc.resp = append(pc.resp, body...)
			if h.flags&2 != 0 {
				pc.done = true
			}
		}
	}
	var out []Call
	seen := map[string]int{}
	for _, pc := range calls {
		if len(out) == maxCalls {
			break
		}
		// Keep the variety: a capture repeating one operation (an endpoint
		// mapper scan, IRemUnknown chatter) keeps a few of each.
		k := fmt.Sprintf("%s/%d", pc.call.Iface, pc.call.Opnum)
		if seen[k]++; seen[k] > maxSameOp {
			continue
		}
		c := *pc.call
		if !c.Sealed {
			c.Req = hex.EncodeToString(cut(pc.req))
			c.Resp = hex.EncodeToString(cut(pc.resp))
			c.Cut = len(pc.req) > maxStub || len(pc.resp) > maxStub
		}
		out = append(out, c)
	}
	return out, nil
}

func cut(b []byte) []byte {
	if len(b) > maxStub {
		return b[:maxStub]
	}
	return b
}

func normPipe(s string) string {
	s = strings.TrimPrefix(s, `\`)
	if len(s) > 5 && strings.EqualFold(s[:5], `PIPE\`) {
		s = s[5:]
	}
	return s
}

type header struct {
	ptype   uint8
	flags   uint8
	big     bool
	order   binary.ByteOrder
	fragLen int
	authLen int
	callID  uint32
}

func parseHeader(b []byte) (header, bool) {
	var h header
	if len(b) < 16 || b[0] != 5 {
		return h, false
	}
	h.ptype, h.flags = b[2], b[3]
	h.order = binary.LittleEndian
	if b[4]&0xf0 == 0 {
		h.big, h.order = true, binary.BigEndian
	}
	h.fragLen = int(h.order.Uint16(b[8:]))
	h.authLen = int(h.order.Uint16(b[10:]))
	h.callID = h.order.Uint32(b[12:])
	if h.fragLen > len(b) || h.fragLen < 16 {
		return h, false
	}
	return h, true
}

// stubOf cuts the stub out of a request or response PDU whose body starts at
// hdrLen, removing the auth verifier and its padding; sealed reports auth
// level 6 (packet privacy), whose stub is ciphertext.
func stubOf(b []byte, h header, hdrLen int) (stub []byte, sealed bool) {
	end := h.fragLen
	if h.authLen > 0 {
		t := h.fragLen - h.authLen - 8
		if t < hdrLen {
			return nil, false
		}
		level := b[t+1]
		pad := int(b[t+2])
		sealed = level == 6
		end = t - pad
	}
	if end < hdrLen {
		return nil, sealed
	}
	return b[hdrLen:end], sealed
}

type bindCtx struct {
	id   uint16
	uuid string
	ver  uint16
}

func parseBindContexts(b []byte, h header) []bindCtx {
	// common header 16, max_xmit 2, max_recv 2, assoc_group 4, n_ctx 1, pad 3
	if len(b) < 28 {
		return nil
	}
	n := int(b[24])
	off := 28
	var out []bindCtx
	for i := 0; i < n && off+24 <= h.fragLen; i++ {
		id := h.order.Uint16(b[off:])
		ntr := int(b[off+2])
		u := make([]byte, 16)
		copy(u, b[off+4:off+20])
		if h.big {
			u[0], u[1], u[2], u[3] = u[3], u[2], u[1], u[0]
			u[4], u[5] = u[5], u[4]
			u[6], u[7] = u[7], u[6]
		}
		ver := h.order.Uint16(b[off+20:])
		out = append(out, bindCtx{id, uuidString(u), ver})
		off += 24 + 20*ntr
	}
	return out
}

type bindResult struct{ accepted, ndr64 bool }

// ndr64Syntax is the NDR64 transfer syntax UUID in wire form.
var ndr64Syntax = []byte{0x33, 0x05, 0x71, 0x71, 0xba, 0xbe, 0x37, 0x49, 0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36}

func parseBindResults(b []byte, h header) []bindResult {
	// common header 16, max_xmit 2, max_recv 2, assoc_group 4, then the
	// secondary address (length-prefixed, padded to 4), then the results.
	if len(b) < 26 {
		return nil
	}
	off := 24
	sl := int(h.order.Uint16(b[off:]))
	off += 2 + sl
	off = (off + 3) &^ 3
	if off+4 > h.fragLen {
		return nil
	}
	n := int(b[off])
	off += 4
	var out []bindResult
	for i := 0; i < n && off+24 <= h.fragLen; i++ {
		res := h.order.Uint16(b[off:])
		out = append(out, bindResult{accepted: res == 0, ndr64: bytes.Equal(b[off+4:off+20], ndr64Syntax)})
		off += 24
	}
	return out
}

func uuidString(u []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(u), binary.LittleEndian.Uint16(u[4:]),
		binary.LittleEndian.Uint16(u[6:]), u[8:10], u[10:16])
}

func fieldsPass(capPath string) (map[int]frameMeta, error) {
	cmd := exec.Command("tshark", "-r", capPath, "-n", "-Y", "dcerpc || smb2.cmd==5 || smb2.cmd==8 || smb2.cmd==9 || smb2.cmd==11",
		"-T", "fields", "-E", "occurrence=f",
		"-e", "frame.number", "-e", "tcp.stream", "-e", "smb2.fid", "-e", "smb2.msg_id",
		"-e", "smb2.flags.response", "-e", "smb.fid", "-e", "smb.file", "-e", "smb2.filename")
	out, err := tsharkOutput(cmd)
	if err != nil {
		return nil, fmt.Errorf("tshark fields: %w", err)
	}
	meta := map[int]frameMeta{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 8 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		m := frameMeta{stream: f[1], fid: f[2], msgID: f[3], resp: f[4] == "1" || f[4] == "True", smbFile: f[6], create: f[7]}
		if m.fid == "" {
			m.fid = f[5]
		}
		meta[n] = m
	}
	return meta, sc.Err()
}

type pdu struct {
	frame int
	data  []byte
}

// jsonPass returns every DCE/RPC PDU tshark found, as bytes, in frame order.
func jsonPass(capPath string) ([]pdu, error) {
	cmd := exec.Command("tshark", "-r", capPath, "-n", "-Y", "dcerpc", "-T", "json", "-x", "--no-duplicate-keys")
	out, err := tsharkOutput(cmd)
	if err != nil {
		return nil, fmt.Errorf("tshark json: %w", err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	var pkts []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &pkts); err != nil {
		return nil, fmt.Errorf("tshark json: %w", err)
	}
	var pdus []pdu
	for _, p := range pkts {
		var fr struct {
			Num string `json:"frame.number"`
		}
		_ = json.Unmarshal(p.Source.Layers["frame"], &fr)
		n, _ := strconv.Atoi(fr.Num)
		raw := p.Source.Layers["dcerpc_raw"]
		for _, h := range rawHex(raw) {
			b, err := hex.DecodeString(h)
			if err == nil {
				pdus = append(pdus, pdu{n, b})
			}
		}
	}
	return pdus, nil
}

// rawHex takes a "<proto>_raw" value: ["hex", off, len, mask, type] or a
// list of those.
func rawHex(m json.RawMessage) []string {
	var one []any
	if json.Unmarshal(m, &one) != nil || len(one) == 0 {
		return nil
	}
	if s, ok := one[0].(string); ok {
		return []string{s}
	}
	var out []string
	for _, e := range one {
		if l, ok := e.([]any); ok && len(l) > 0 {
			if s, ok := l[0].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// tsharkOutput runs tshark; a capture cut short makes tshark exit 2 after
// printing everything it could read, which is still what we want.
func tsharkOutput(cmd *exec.Cmd) ([]byte, error) {
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return out, nil
	}
	return out, err
}
