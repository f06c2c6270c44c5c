package winrm

import "encoding/binary"

// TLS record framing, for WinRM over HTTPS (5986): replay can only count
// its records and read the ClientHello's server name.
const (
	TLSRecordHeaderLen = 5
	tlsHandshake       = 22
	tlsAppData         = 23
)

// TLSRecordLen returns the length of the TLS record at the start of b: 0
// when more bytes are needed to tell, -1 when b does not start one.
func TLSRecordLen(b []byte) int {
	if len(b) < TLSRecordHeaderLen {
		if len(b) > 0 && (b[0] < 20 || b[0] > 24) || len(b) > 1 && b[1] != 3 {
			return -1
		}
		return 0
	}
	if b[0] < 20 || b[0] > 24 || b[1] != 3 {
		return -1
	}
	n := int(binary.BigEndian.Uint16(b[3:]))
	if n > 1<<14+2048 {
		return -1
	}
	return TLSRecordHeaderLen + n
}

// IsTLSAppData reports a TLS application-data record.
func IsTLSAppData(rec []byte) bool { return len(rec) > 0 && rec[0] == tlsAppData }

// ClientHelloSNI reads the server_name of a ClientHello in a whole
// handshake record (RFC 8446 4.1.2, RFC 6066 3).
func ClientHelloSNI(rec []byte) (string, bool) {
	if len(rec) < TLSRecordHeaderLen+4 || rec[0] != tlsHandshake || rec[5] != 1 {
		return "", false
	}
	b := rec[TLSRecordHeaderLen+4:]
	// version 2, random 32
	if len(b) < 34 {
		return "", false
	}
	b = b[34:]
	skip := func(lenBytes int) bool {
		if len(b) < lenBytes {
			return false
		}
		n := 0
		for i := 0; i < lenBytes; i++ {
			n = n<<8 | int(b[i])
		}
		if len(b) < lenBytes+n {
			return false
		}
		b = b[lenBytes+n:]
		return true
	}
	if !skip(1) || !skip(2) || !skip(1) { // session id, cipher suites, compression
		return "", false
	}
	if len(b) < 2 {
		return "", false
	}
	ext := b[2:min(len(b), 2+int(binary.BigEndian.Uint16(b)))]
	for len(ext) >= 4 {
		typ, n := binary.BigEndian.Uint16(ext), int(binary.BigEndian.Uint16(ext[2:]))
		if len(ext) < 4+n {
			return "", false
		}
		body := ext[4 : 4+n]
		ext = ext[4+n:]
		if typ != 0 || len(body) < 5 {
			continue
		}
		// server_name_list: length 2, then type 1 (0 = host_name), length 2, name.
		l := int(binary.BigEndian.Uint16(body[3:]))
		if body[2] != 0 || len(body) < 5+l {
			return "", false
		}
		return string(body[5 : 5+l]), true
	}
	return "", false
}
