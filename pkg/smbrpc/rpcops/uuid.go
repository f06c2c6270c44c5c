package rpcops

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseUUID parses the text form (8-4-4-4-12 hex digits, optional braces)
// into the wire form: the first three fields little-endian, as in a bind PDU
// and in little-endian NDR.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("parse uuid %q: want 8-4-4-4-12 hex digits", s)
	}
	b, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return u, fmt.Errorf("parse uuid %q: %w", s, err)
	}
	binary.LittleEndian.PutUint32(u[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(u[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(u[6:], binary.BigEndian.Uint16(b[6:]))
	copy(u[8:], b[8:])
	return u, nil
}

func mustUUID(s string) [16]byte {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// UUIDString renders a wire-form UUID as 8-4-4-4-12 lower-case hex.
func UUIDString(u [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(u[0:]),
		binary.LittleEndian.Uint16(u[4:]), binary.LittleEndian.Uint16(u[6:]), u[8:10], u[10:16])
}
