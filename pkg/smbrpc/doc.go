// Package smbrpc decodes the wire formats of Windows remote operations:
// NetBIOS session framing, SMB1 and SMB2/3 messages, DCE/RPC
// connection-oriented PDUs, NTLMSSP and the Kerberos messages that name an
// account. It holds no connection state: pkg/replay keeps that and feeds
// these decoders whole messages taken from reassembled TCP streams.
//
// Every decoder treats its input as hostile: lengths are checked against
// what remains, counts the input claims never size an allocation without a
// bound, and nothing panics. A short or damaged message gives a partial
// result and ok=false or an error, never a crash.
package smbrpc
