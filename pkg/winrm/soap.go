package winrm

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Resource URIs and action URIs of WS-Management and its Windows shells
// (MS-WSMV 2.2.4, DSP0226).
const (
	ResourceCmd        = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
	ResourcePowerShell = "http://schemas.microsoft.com/powershell/" // + configuration name
	resourceWMI        = "http://schemas.microsoft.com/wbem/wsman/1/wmi/"
	resourceCIM        = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
	resourceConfig     = "http://schemas.microsoft.com/wbem/wsman/1/config"
)

// MaxEnvelope bounds the SOAP text parsed from one message.
const MaxEnvelope = 16 << 20

// MaxText bounds one element's text kept (a Send's or Receive's base64
// streams, a command line): what goes past it is cut, and counted
// (Envelope.Cut, Stream.Cut). maxParams bounds the body fields kept.
const (
	MaxText    = 8 << 20
	maxParams  = 32
	maxStreams = 64
	maxOptions = 32
)

// Field is a name and a value read from an envelope.
type Field struct{ Name, Value string }

// Stream is one stream of a Send or a Receive response.
type Stream struct {
	Name      string // stdin, stdout, stderr, pr (PSRP)
	CommandID string
	End       bool
	Data      []byte // decoded from base64
	// Cut is the base64 text past MaxText that was not read: Data holds
	// what fits.
	Cut int
}

// Envelope is what replay reads from one WS-Management SOAP message.
type Envelope struct {
	Action      string // wsa:Action URI
	ResourceURI string
	To          string
	MessageID   string
	RelatesTo   string
	ShellID     string  // the ShellId selector, or the ShellId a Create response returns
	Selectors   []Field // every selector (WMI: the instance's keys)
	Options     []Field // wsman:OptionSet
	Body        string  // local name of the Body's first element (Shell, CommandLine, Send, Receive, ReceiveResponse, Fault...)
	CommandID   string  // CommandLine@CommandId, CommandResponse/CommandId, Signal@CommandId
	Command     string  // CommandLine/Command
	Arguments   []string
	Streams     []Stream
	State       string // ReceiveResponse CommandState@State (…/CommandState/Done)
	ExitCode    string
	Signal      string // Signal/Code
	CreationXML []byte // Shell/creationXml, decoded from base64 (PSRP's session capability and runspace pool)
	ShellName   string // Shell/Name
	Filter      string // Enumerate's filter (a WQL query)
	Fault       string // a fault's reason, and its WSManFault message
	// Params are the leaf elements of the Body's first element for the
	// actions that carry method input (WMI Invoke), name and text.
	Params []Field
	// Truncated: a text or a list went past the bounds and was cut.
	Truncated bool
	// Cut counts the text bytes past MaxText not read, in all elements
	// (the streams' share is in each Stream.Cut).
	Cut int
}

// ActionName is the last segment of the action URI (Create, Command,
// Receive, ReceiveResponse...).
func (e *Envelope) ActionName() string {
	a := e.Action
	if i := strings.LastIndexByte(a, '/'); i >= 0 {
		a = a[i+1:]
	}
	return a
}

// Shell kinds of a resource URI.
const (
	ShellNone       = ""
	ShellCmd        = "cmd"
	ShellPowerShell = "powershell"
	ShellWMI        = "wmi"
	ShellConfig     = "config"
)

// ResourceKind tells what a resource URI addresses.
func ResourceKind(uri string) string {
	switch {
	case len(uri) == len(ResourceCmd) && hasPrefixFold(uri, ResourceCmd):
		return ShellCmd
	case hasPrefixFold(uri, ResourcePowerShell):
		return ShellPowerShell
	case hasPrefixFold(uri, resourceWMI), hasPrefixFold(uri, resourceCIM):
		return ShellWMI
	case hasPrefixFold(uri, resourceConfig):
		return ShellConfig
	}
	return ShellNone
}

// hasPrefixFold reports whether s starts with the ASCII prefix p in any
// case, comparing the same number of bytes, so that s[len(p):] is what
// follows the prefix (lowering s first would not keep its length: "İ"
// lowers to "i").
func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

// indexFold is the index in s of the ASCII string sub in any case, or -1.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// ShortResource names a resource URI briefly: the shell (cmd), the
// PowerShell configuration (Microsoft.PowerShell), the WMI path
// (root/cimv2/Win32_Process).
func ShortResource(uri string) string {
	u := uri
	if i := strings.IndexAny(u, "?"); i >= 0 {
		u = u[:i]
	}
	switch ResourceKind(u) {
	case ShellCmd:
		return "cmd"
	case ShellPowerShell:
		return u[len(ResourcePowerShell):]
	case ShellWMI:
		if i := indexFold(u, "/wmi/"); i >= 0 {
			return u[i+len("/wmi/"):]
		}
		if i := strings.LastIndex(u, "/"); i >= 0 {
			return u[i+1:]
		}
	}
	for _, p := range []string{"http://schemas.microsoft.com/wbem/wsman/1/", "http://schemas.microsoft.com/"} {
		if strings.HasPrefix(u, p) {
			return u[len(p):]
		}
	}
	return u
}

// ErrNotSOAP: the text is not a SOAP envelope.
var ErrNotSOAP = errors.New("not a SOAP envelope")

// ToUTF8 returns text as UTF-8: UTF-16 (with a byte-order mark, or when
// charset says so) is converted; a UTF-8 byte-order mark is dropped.
func ToUTF8(b []byte, charset string) []byte {
	le, be := false, false
	switch {
	case len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe:
		le, b = true, b[2:]
	case len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff:
		be, b = true, b[2:]
	case len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf:
		return b[3:]
	case strings.EqualFold(charset, "utf-16") || strings.EqualFold(charset, "utf-16le"):
		le = true
	case strings.EqualFold(charset, "utf-16be"):
		be = true
	}
	if !le && !be {
		return b
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if le {
			u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
		} else {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		}
	}
	out := make([]byte, 0, len(u))
	for _, r := range utf16.Decode(u) {
		out = utf8.AppendRune(out, r)
	}
	return out
}

// ParseEnvelope reads a SOAP envelope (UTF-8; convert with ToUTF8
// first). Unknown elements are skipped; texts and lists are bounded.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) > MaxEnvelope {
		return e, fmt.Errorf("%w: envelope of %d bytes, more than %d", ErrMalformed, len(b), MaxEnvelope)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	// The declaration may name UTF-16 though ToUTF8 already converted
	// the text: read it as it is.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var (
		path     []string // local names from Envelope down
		attrs    [][]xml.Attr
		text     []byte
		cut      int // bytes of the current element's text past MaxText
		sawEnv   bool
		bodyAt   = -1 // depth of the Body element
		paramTop = -1 // depth of the Body's first element when it takes params
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !sawEnv {
				return e, fmt.Errorf("%w: %v", ErrNotSOAP, err)
			}
			return e, fmt.Errorf("%w: soap at byte %d: %v", ErrMalformed, d.InputOffset(), err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if len(path) == 0 {
				if name != "Envelope" {
					return e, ErrNotSOAP
				}
				sawEnv = true
			}
			if len(path) >= 64 {
				return e, fmt.Errorf("%w: soap nested deeper than 64 elements", ErrMalformed)
			}
			path = append(path, name)
			attrs = append(attrs, t.Attr)
			text, cut = text[:0], 0
			depth := len(path) - 1
			switch {
			case name == "Body" && depth == 1:
				bodyAt = depth
			case bodyAt >= 0 && depth == bodyAt+1 && e.Body == "":
				e.Body = name
				switch name {
				case "CommandLine", "Signal":
					e.CommandID = attr(t.Attr, "CommandId")
				}
				if strings.HasSuffix(name, "_INPUT") || strings.HasSuffix(name, "_OUTPUT") {
					paramTop = depth
				}
			case bodyAt >= 0 && name == "DesiredStream" && e.CommandID == "":
				e.CommandID = attr(t.Attr, "CommandId")
			case bodyAt >= 0 && name == "CommandState":
				e.State = attr(t.Attr, "State")
				if e.CommandID == "" {
					e.CommandID = attr(t.Attr, "CommandId")
				}
			}
		case xml.EndElement:
			if len(path) == 0 {
				break
			}
			depth := len(path) - 1
			name := path[depth]
			at := attrs[depth]
			parent := ""
			if depth > 0 {
				parent = path[depth-1]
			}
			s := string(bytes.TrimSpace(text))
			inHeader := depth >= 2 && path[1] == "Header"
			inBody := bodyAt >= 0 && depth > bodyAt
			switch {
			case inHeader && name == "Action":
				e.Action = s
			case inHeader && name == "ResourceURI":
				e.ResourceURI = s
			case inHeader && name == "To":
				e.To = s
			case inHeader && name == "MessageID":
				e.MessageID = s
			case inHeader && name == "RelatesTo":
				e.RelatesTo = s
			case inHeader && name == "Selector":
				n := attr(at, "Name")
				if strings.EqualFold(n, "ShellId") {
					e.ShellID = s
				}
				if len(e.Selectors) < maxParams {
					e.Selectors = append(e.Selectors, Field{n, s})
				}
			case inHeader && name == "Option":
				if len(e.Options) < maxOptions {
					e.Options = append(e.Options, Field{attr(at, "Name"), s})
				}
			case inBody && name == "ShellId" && e.ShellID == "":
				e.ShellID = s
			case inBody && name == "Selector" && strings.EqualFold(attr(at, "Name"), "ShellId") && e.ShellID == "":
				e.ShellID = s
			case inBody && name == "Command" && parent == "CommandLine":
				e.Command = s
			case inBody && name == "Arguments" && parent == "CommandLine":
				if len(e.Arguments) < maxParams {
					e.Arguments = append(e.Arguments, s)
				}
			case inBody && name == "CommandId" && e.CommandID == "":
				e.CommandID = s
			case inBody && name == "Stream" && (parent == "Send" || parent == "ReceiveResponse"):
				if len(e.Streams) < maxStreams {
					st := Stream{Name: attr(at, "Name"), CommandID: attr(at, "CommandId"), End: strings.EqualFold(attr(at, "End"), "true")}
					if cut > 0 {
						// Cut: the whole base64 quanta that fit are read.
						st.Cut = cut
						s = strings.Join(strings.Fields(s), "")
						st.Cut += len(s) % 4
						s = s[:len(s)-len(s)%4]
						cut = st.Cut
					}
					st.Data, _ = decodeB64(s)
					e.Streams = append(e.Streams, st)
				} else {
					e.Truncated = true
					cut += len(s)
				}
			case inBody && name == "ExitCode":
				e.ExitCode = s
			case inBody && name == "Code" && parent == "Signal":
				e.Signal = s
			case inBody && name == "creationXml":
				e.CreationXML, _ = decodeB64(s)
			case inBody && name == "Name" && parent == "Shell":
				e.ShellName = s
			case inBody && name == "Filter":
				e.Filter = s
			case inBody && (name == "Text" && parent == "Reason" || name == "Message" && parent == "WSManFault"):
				if s != "" && !strings.Contains(e.Fault, s) {
					if e.Fault != "" {
						e.Fault += ": "
					}
					e.Fault += s
				}
			case paramTop >= 0 && depth == paramTop+1:
				if len(e.Params) < maxParams {
					e.Params = append(e.Params, Field{name, s})
				} else {
					e.Truncated = true
				}
			}
			e.Cut += cut
			path = path[:depth]
			attrs = attrs[:depth]
			text, cut = text[:0], 0
		case xml.CharData:
			// Keep what fits of a long text, count the rest.
			n := min(len(t), MaxText-len(text))
			text = append(text, t[:n]...)
			if n < len(t) {
				cut += len(t) - n
				e.Truncated = true
			}
		}
	}
	if !sawEnv {
		return e, ErrNotSOAP
	}
	return e, nil
}

func attr(as []xml.Attr, local string) string {
	for _, a := range as {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// decodeB64 decodes standard base64 (whitespace allowed).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, " \r\n\t") {
		s = strings.Join(strings.Fields(s), "")
	}
	return base64.StdEncoding.DecodeString(s)
}
