package winrm

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// PSRP fragment and message layout (MS-PSRP 2.2.4 and 2.2.1).
const (
	FragmentHeaderLen = 21 // ObjectId 8, FragmentId 8, flags 1, BlobLength 4 (big-endian)
	MessageHeaderLen  = 40 // Destination 4, MessageType 4 (little-endian), RPID 16, PID 16

	fragStart = 0x1
	fragEnd   = 0x2
)

// PSRP message types replay names (MS-PSRP 2.2.1).
const (
	MsgSessionCapability    = 0x00010002
	MsgInitRunspacePool     = 0x00010004
	MsgPublicKey            = 0x00010005
	MsgEncryptedSessionKey  = 0x00010006
	MsgPublicKeyRequest     = 0x00010007
	MsgConnectRunspacePool  = 0x00010008
	MsgRunspacePoolState    = 0x00021005
	MsgCreatePipeline       = 0x00021006
	MsgGetAvailRunspaces    = 0x00021007
	MsgUserEvent            = 0x00021008
	MsgApplicationPrivate   = 0x00021009
	MsgGetCommandMetadata   = 0x0002100a
	MsgRunspacePoolHostCall = 0x00021100
	MsgRunspacePoolHostResp = 0x00021101
	MsgPipelineInput        = 0x00041002
	MsgEndOfPipelineInput   = 0x00041003
	MsgPipelineOutput       = 0x00041004
	MsgErrorRecord          = 0x00041005
	MsgPipelineState        = 0x00041006
	MsgDebugRecord          = 0x00041007
	MsgVerboseRecord        = 0x00041008
	MsgWarningRecord        = 0x00041009
	MsgProgressRecord       = 0x00041010
	MsgInformationRecord    = 0x00041011
	MsgPipelineHostCall     = 0x00041100
	MsgPipelineHostResp     = 0x00041101
)

var msgNames = map[uint32]string{
	MsgSessionCapability: "SESSION_CAPABILITY", MsgInitRunspacePool: "INIT_RUNSPACEPOOL",
	MsgPublicKey: "PUBLIC_KEY", MsgEncryptedSessionKey: "ENCRYPTED_SESSION_KEY",
	MsgPublicKeyRequest: "PUBLIC_KEY_REQUEST", MsgConnectRunspacePool: "CONNECT_RUNSPACEPOOL",
	MsgRunspacePoolState: "RUNSPACEPOOL_STATE", MsgCreatePipeline: "CREATE_PIPELINE",
	MsgGetAvailRunspaces: "GET_AVAILABLE_RUNSPACES", MsgUserEvent: "USER_EVENT",
	MsgApplicationPrivate: "APPLICATION_PRIVATE_DATA", MsgGetCommandMetadata: "GET_COMMAND_METADATA",
	MsgRunspacePoolHostCall: "RUNSPACEPOOL_HOST_CALL", MsgRunspacePoolHostResp: "RUNSPACEPOOL_HOST_RESPONSE",
	MsgPipelineInput: "PIPELINE_INPUT", MsgEndOfPipelineInput: "END_OF_PIPELINE_INPUT",
	MsgPipelineOutput: "PIPELINE_OUTPUT", MsgErrorRecord: "ERROR_RECORD", MsgPipelineState: "PIPELINE_STATE",
	MsgDebugRecord: "DEBUG_RECORD", MsgVerboseRecord: "VERBOSE_RECORD", MsgWarningRecord: "WARNING_RECORD",
	MsgProgressRecord: "PROGRESS_RECORD", MsgInformationRecord: "INFORMATION_RECORD",
	MsgPipelineHostCall: "PIPELINE_HOST_CALL", MsgPipelineHostResp: "PIPELINE_HOST_RESPONSE",
}

// MessageTypeName names a PSRP message type, or gives it in hex.
func MessageTypeName(t uint32) string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%08x", t)
}

// Fragment is one PSRP fragment (MS-PSRP 2.2.4).
type Fragment struct {
	ObjectID, FragmentID uint64
	Start, End           bool
	Blob                 []byte // aliases the input
}

// ParseFragment reads the fragment at the start of b and returns it with
// its length.
func ParseFragment(b []byte) (Fragment, int, error) {
	var f Fragment
	if len(b) < FragmentHeaderLen {
		return f, 0, fmt.Errorf("%w: psrp fragment header of %d bytes", ErrMalformed, len(b))
	}
	f.ObjectID = binary.BigEndian.Uint64(b)
	f.FragmentID = binary.BigEndian.Uint64(b[8:])
	f.Start, f.End = b[16]&fragStart != 0, b[16]&fragEnd != 0
	n := binary.BigEndian.Uint32(b[17:])
	if uint64(n) > uint64(len(b)-FragmentHeaderLen) {
		return f, 0, fmt.Errorf("%w: psrp fragment %d of object %d claims %d bytes, %d present", ErrMalformed, f.FragmentID, f.ObjectID, n, len(b)-FragmentHeaderLen)
	}
	f.Blob = b[FragmentHeaderLen : FragmentHeaderLen+int(n)]
	return f, FragmentHeaderLen + int(n), nil
}

// PSRPMessage is one PSRP message (MS-PSRP 2.2.1).
type PSRPMessage struct {
	Destination uint32 // 1 client, 2 server
	Type        uint32
	RPID, PID   [16]byte // runspace pool and pipeline GUIDs (as sent)
	Data        []byte   // CLIXML, UTF-8 with a byte-order mark
}

// ParsePSRPMessage reads a whole (defragmented) PSRP message.
func ParsePSRPMessage(b []byte) (PSRPMessage, error) {
	var m PSRPMessage
	if len(b) < MessageHeaderLen {
		return m, fmt.Errorf("%w: psrp message of %d bytes", ErrMalformed, len(b))
	}
	m.Destination = binary.LittleEndian.Uint32(b)
	m.Type = binary.LittleEndian.Uint32(b[4:])
	copy(m.RPID[:], b[8:24])
	copy(m.PID[:], b[24:40])
	m.Data = b[MessageHeaderLen:]
	return m, nil
}

// Defragmenter joins the fragments of PSRP objects that span several
// Send or Receive streams. Bounded: an object larger than Max is dropped
// (counted), and at most MaxPending objects are held.
type Defragmenter struct {
	Max        int // bytes per object (default 4 MiB)
	MaxPending int // objects held at once (default 64)
	pending    map[uint64]*partialObj
	Dropped    int // objects given up on (too large, a fragment missing)
}

type partialObj struct {
	next uint64
	buf  []byte
}

// Add feeds a stream's bytes (one or more whole fragments) and calls fn
// with each message completed, in order. A damaged fragment stops the
// stream's parsing with an error; what completed before is delivered.
func (d *Defragmenter) Add(b []byte, fn func(PSRPMessage)) error {
	if d.Max <= 0 {
		d.Max = 4 << 20
	}
	if d.MaxPending <= 0 {
		d.MaxPending = 64
	}
	if d.pending == nil {
		d.pending = make(map[uint64]*partialObj)
	}
	for len(b) > 0 {
		f, n, err := ParseFragment(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if f.Start && f.End {
			delete(d.pending, f.ObjectID)
			if m, err := ParsePSRPMessage(f.Blob); err == nil {
				fn(m)
			} else {
				d.Dropped++
			}
			continue
		}
		p := d.pending[f.ObjectID]
		switch {
		case f.Start:
			if p == nil && len(d.pending) >= d.MaxPending {
				for k := range d.pending {
					delete(d.pending, k) // drop the oldest-ish to make room
					d.Dropped++
					break
				}
			}
			p = &partialObj{}
			d.pending[f.ObjectID] = p
		case p == nil || f.FragmentID != p.next:
			// A fragment whose start was not seen, or one missing before
			// it: the object cannot be joined.
			if p != nil {
				delete(d.pending, f.ObjectID)
				d.Dropped++
			}
			continue
		}
		if len(p.buf)+len(f.Blob) > d.Max {
			delete(d.pending, f.ObjectID)
			d.Dropped++
			continue
		}
		p.buf = append(p.buf, f.Blob...)
		p.next = f.FragmentID + 1
		if f.End {
			delete(d.pending, f.ObjectID)
			if m, err := ParsePSRPMessage(p.buf); err == nil {
				fn(m)
			} else {
				d.Dropped++
			}
		}
	}
	return nil
}

// Command is one command of a PowerShell pipeline (MS-PSRP 2.2.3.12).
type Command struct {
	Cmd      string
	IsScript bool
	Args     []Arg
	// Statement is 0 for a command of the PowerShell object's Cmds, i for
	// one of the i-th statement of its ExtraCmds.
	Statement int
}

// Arg is a parameter of a command: Name is empty for a positional one;
// Null tells a null value (<Nil N="V"/>): a switch when named.
type Arg struct {
	Name, Value string
	Null        bool
}

// String renders the command as PowerShell would read it.
func (c Command) String() string {
	var sb strings.Builder
	sb.WriteString(c.Cmd)
	for _, a := range c.Args {
		if a.Name != "" {
			// Some clients send the name with its dash (Ruby's winrm
			// gem: "-Command").
			sb.WriteString(" -")
			sb.WriteString(strings.TrimPrefix(a.Name, "-"))
			if a.Null {
				continue // a switch
			}
		}
		if a.Null {
			sb.WriteString(" $null")
			continue
		}
		if a.Value != "" {
			sb.WriteByte(' ')
			v := a.Value
			if strings.ContainsAny(v, " \t;|&'\"") && !strings.HasPrefix(v, "{") {
				v = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			}
			sb.WriteString(v)
		}
	}
	return sb.String()
}

// Script renders a CREATE_PIPELINE's commands as PowerShell reads them:
// statements joined by "; ", the commands of each by " | ". PowerShell
// sends a batch of statements (AddStatement) as ExtraCmds, a list of
// statements each with its own Cmds, and repeats the first statement in
// Cmds: that copy is not shown twice. A Cmds unlike ExtraCmds' first
// statement is kept as a statement of its own, before them.
func Script(cmds []Command) string {
	var main []Command
	var stmts [][]Command
	for _, c := range cmds {
		switch {
		case c.Statement == 0:
			main = append(main, c)
		case len(stmts) == 0 || stmts[len(stmts)-1][0].Statement != c.Statement:
			stmts = append(stmts, []Command{c})
		default:
			stmts[len(stmts)-1] = append(stmts[len(stmts)-1], c)
		}
	}
	if len(stmts) == 0 {
		return Pipeline(main)
	}
	var s []string
	if len(main) > 0 && Pipeline(main) != Pipeline(stmts[0]) {
		s = append(s, Pipeline(main))
	}
	for _, st := range stmts {
		s = append(s, Pipeline(st))
	}
	return strings.Join(s, "; ")
}

// Pipeline renders commands joined as one pipeline.
func Pipeline(cmds []Command) string {
	s := make([]string, len(cmds))
	for i, c := range cmds {
		s[i] = c.String()
	}
	return strings.Join(s, " | ")
}

const (
	maxCommands = 64
	maxArgs     = 64
	maxValue    = 64 << 10
)

// PipelineCommands reads the commands of a CREATE_PIPELINE message's
// CLIXML (MS-PSRP 2.2.2.10: the PowerShell property's Cmds list, and
// ExtraCmds for a batch of statements, Statement telling which): each
// command's Cmd and IsScript, and its Args (N, V). Values that are
// objects give their ToString. Script renders them.
func PipelineCommands(clixml []byte) ([]Command, error) {
	d := xml.NewDecoder(bytes.NewReader(ToUTF8(clixml, "")))
	d.Strict = false
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	type frame struct {
		tag, n string
		isArg  bool // an Obj of an Args list
	}
	var (
		stack    []frame
		text     []byte
		cmds     []Command
		inArgs   int // depth of the Obj N="Args" being read, 0 outside
		argName  string
		argVal   string
		argHasV  bool
		argNull  bool
		valDepth int // depth of the element N="V", 0 outside
		extra    int // depth of the Obj N="ExtraCmds", 0 outside
		stmt     int // statement of ExtraCmds being read (1, 2...)
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(cmds) > 0 {
				return cmds, nil
			}
			return nil, fmt.Errorf("%w: clixml at byte %d: %v", ErrMalformed, d.InputOffset(), err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= 256 {
				return cmds, fmt.Errorf("%w: clixml nested deeper than 256 elements", ErrMalformed)
			}
			n := attr(t.Attr, "N")
			f := frame{tag: t.Name.Local, n: n}
			if inArgs > 0 && t.Name.Local == "Obj" && len(stack) == inArgs+1 {
				f.isArg = true // Args > LST > Obj
				argName, argVal, argHasV, argNull = "", "", false, false
			}
			if n == "ExtraCmds" && t.Name.Local == "Obj" && extra == 0 && inArgs == 0 {
				extra = len(stack) + 1
			}
			if extra > 0 && t.Name.Local == "Obj" && len(stack) == extra+1 {
				stmt++ // ExtraCmds > LST > Obj: a statement
			}
			if n == "Args" && t.Name.Local == "Obj" && len(cmds) > 0 {
				inArgs = len(stack) + 1
			}
			if n == "V" && inArgs > 0 && valDepth == 0 {
				valDepth = len(stack) + 1
				argHasV = true
				argNull = t.Name.Local == "Nil"
			}
			stack = append(stack, f)
			text = text[:0]
		case xml.EndElement:
			if len(stack) == 0 {
				continue
			}
			f := stack[len(stack)-1]
			depth := len(stack)
			s := decodeCLIXMLString(string(text))
			switch {
			case f.n == "Cmd" && f.tag == "S":
				if len(cmds) < maxCommands {
					c := Command{Cmd: s}
					if extra > 0 {
						c.Statement = stmt
					}
					cmds = append(cmds, c)
				}
				inArgs = 0
			case f.n == "IsScript" && f.tag == "B" && len(cmds) > 0:
				cmds[len(cmds)-1].IsScript = strings.EqualFold(s, "true")
			case f.n == "N" && inArgs > 0 && valDepth == 0:
				argName = s
			case valDepth > 0 && depth == valDepth:
				if f.tag != "Obj" && f.tag != "Nil" {
					argVal = s
				}
				valDepth = 0
			case valDepth > 0 && f.tag == "ToString" && depth == valDepth+1:
				argVal = s
			case valDepth > 0 && depth > valDepth && f.tag != "ToString" && f.tag != "T" && len(argVal) < maxValue:
				// A list's items: join them.
				if s != "" && !strings.HasPrefix(argVal, "{") {
					if argVal != "" {
						argVal += ","
					}
					argVal += s
				}
			case f.isArg:
				if len(cmds) > 0 && (argName != "" || argHasV) {
					c := &cmds[len(cmds)-1]
					if len(c.Args) < maxArgs {
						c.Args = append(c.Args, Arg{Name: argName, Value: argVal, Null: argNull})
					}
				}
			case inArgs > 0 && depth == inArgs:
				inArgs = 0
			case extra > 0 && depth == extra:
				extra = 0
			}
			stack = stack[:len(stack)-1]
			text = text[:0]
		case xml.CharData:
			if len(text)+len(t) <= maxValue {
				text = append(text, t...)
			}
		}
	}
	return cmds, nil
}

// decodeCLIXMLString undoes the _xHHHH_ escapes of MS-PSRP 2.2.5.3.2
// (control characters and surrogates in strings).
func decodeCLIXMLString(s string) string {
	if !strings.Contains(s, "_x") {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		if i+7 <= len(s) && s[i] == '_' && s[i+1] == 'x' && s[i+6] == '_' {
			if v, ok := hex4(s[i+2 : i+6]); ok {
				r := rune(v)
				i += 7
				// A character beyond the BMP comes as its two surrogates.
				if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i] == '_' && s[i+1] == 'x' && s[i+6] == '_' {
					if lo, ok := hex4(s[i+2 : i+6]); ok {
						if c := utf16.DecodeRune(r, rune(lo)); c != utf8.RuneError {
							r = c
							i += 7
						}
					}
				}
				sb.WriteRune(r)
				continue
			}
		}
		sb.WriteByte(s[i])
		i++
	}
	return sb.String()
}

func hex4(s string) (uint16, bool) {
	var v uint16
	for i := 0; i < 4; i++ {
		d, ok := hexDigit(s[i])
		if !ok {
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}
