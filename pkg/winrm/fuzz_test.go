package winrm

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzMessage feeds hostile bytes as an HTTP stream: framing never panics,
// never claims a length shorter than a message it then cannot parse, and
// a hostile Content-Length or chunk size is returned, never allocated.
func FuzzMessage(f *testing.F) {
	f.Add([]byte("POST /wsman HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nx"))
	f.Add([]byte("POST /wsman HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := MessageLen(b)
		_ = Resync(b)
		_ = IsWSManRequest(b)
		if n <= 0 || n > int64(len(b)) {
			return
		}
		m, _, err := ParseMessage(b[:n], nil)
		if err != nil {
			t.Fatalf("MessageLen framed %d bytes that ParseMessage refuses: %v", n, err)
		}
		if len(m.Body) > int(n) {
			t.Fatalf("body of %d bytes from a message of %d", len(m.Body), n)
		}
		_, _ = ParseAuth(m.Header("Authorization"))
		_, _, _ = Encryption(m.Header("Content-Type"))
	})
}

// FuzzEncryptedParts feeds hostile multipart bodies: parts alias the
// body, and splitting one never reads past it.
func FuzzEncryptedParts(f *testing.F) {
	f.Add(encryptedBody(bytes.Repeat([]byte{1}, 16), []byte("sealed"), 6))
	f.Add(encryptedBody([]byte{1}, []byte("sealed"), 600))
	f.Add([]byte("--Encrypted Boundary\r\n--Encrypted Boundary\r\n\xff\xff\xff\xff--Encrypted Boundary--"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, _ := EncryptedParts(nil, b, "Encrypted Boundary")
		for _, p := range parts {
			if len(p.Data) > len(b) {
				t.Fatal("part larger than the body")
			}
			sig, sealed, err := p.Split()
			if err == nil && len(sig)+len(sealed)+4 != len(p.Data) {
				t.Fatalf("split %d+%d of %d", len(sig), len(sealed), len(p.Data))
			}
		}
	})
}

// FuzzEnvelope feeds hostile SOAP (and UTF-16) to the envelope reader.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(commandXML))
	f.Add([]byte("<s:Envelope><s:Body><rsp:Send><rsp:Stream Name=\"stdin\">aGVsbG8=</rsp:Stream></rsp:Send></s:Body></s:Envelope>"))
	f.Add([]byte("\xff\xfe<\x00s\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u := ToUTF8(b, "")
		e, err := ParseEnvelope(u)
		if err != nil {
			return
		}
		_ = e.ActionName()
		_ = ShortResource(e.ResourceURI)
		if len(e.Params) > maxParams || len(e.Streams) > maxStreams || len(e.Options) > maxOptions {
			t.Fatalf("bounds exceeded: %d params, %d streams, %d options", len(e.Params), len(e.Streams), len(e.Options))
		}
		streamCut := 0
		for _, st := range e.Streams {
			streamCut += st.Cut
		}
		if streamCut > e.Cut || e.Cut > len(u) || len(u) <= MaxText && e.Cut != 0 {
			t.Fatalf("cut %d (streams %d) of %d bytes", e.Cut, streamCut, len(u))
		}
	})
}

// FuzzPSRP feeds hostile fragments (and CLIXML) to the defragmenter and
// the pipeline reader: what is held stays within the bounds.
func FuzzPSRP(f *testing.F) {
	for _, fr := range psrpMessage(MsgCreatePipeline, psrpCreatePipeline, 1, 200) {
		f.Add(fr)
	}
	f.Add(bytes.Join(psrpMessage(MsgCreatePipeline, psrpCreatePipeline, 1, 4096), nil))
	f.Add(binary.BigEndian.AppendUint32(make([]byte, 17), 0xffffffff))
	f.Add([]byte(`<Obj N="PowerShell"><MS><Obj N="Cmds"><LST><Obj><MS><S N="Cmd">a</S></MS></Obj></LST></Obj><Obj N="ExtraCmds"><LST><Obj><MS><Obj N="Cmds"><LST><Obj><MS><S N="Cmd">a</S></MS></Obj></LST></Obj></MS></Obj><Obj><MS><Obj N="Cmds"><LST><Obj><MS><S N="Cmd">b</S></MS></Obj></LST></Obj></MS></Obj></LST></Obj></MS></Obj>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Defragmenter{Max: 1 << 16, MaxPending: 4}
		_ = d.Add(b, func(m PSRPMessage) {
			_, _ = PipelineCommands(m.Data)
		})
		_ = d.Add(b, func(PSRPMessage) {})
		if len(d.pending) > 4 {
			t.Fatalf("%d objects pending", len(d.pending))
		}
		for _, p := range d.pending {
			if len(p.buf) > 1<<16 {
				t.Fatalf("object of %d bytes held", len(p.buf))
			}
		}
		if cmds, _ := PipelineCommands(b); len(cmds) > maxCommands {
			t.Fatalf("%d commands", len(cmds))
		} else {
			_ = Script(cmds)
		}
	})
}

// FuzzTLS feeds hostile records to the TLS framing and ClientHello reader.
func FuzzTLS(f *testing.F) {
	f.Add([]byte{22, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Add([]byte{23, 3, 3, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = TLSRecordLen(b)
		_, _ = ClientHelloSNI(b)
	})
}
