// Package replay turns packets into the Windows remote operations they
// carry: TCP reassembly, NetBIOS/SMB sessions bound to their accounts,
// DCE/RPC calls over named pipes and TCP, arguments decoded by rpcops, and
// per-host stories of how an attack progressed.
//
// The pipeline streams: Packet feeds one packet, operations come out
// through a callback as soon as they complete (a call's response, a file's
// close, an idle connection's expiry), and Tick expires idle state by the
// wall clock in live mode. Run drives it from any Source (a capture file, a
// store query, a live interface).
package replay

import (
	"net/netip"
	"time"
)

// Phases of the attacker-behaviour model, in the order an intrusion
// usually moves through them. Stories list a host's phases by the time
// they were first seen; this order breaks ties.
var PhaseOrder = []string{
	"reconnaissance", "credential-access", "lateral-movement", "execution",
	"persistence", "defense-evasion", "collection",
	"command-and-control", // a host controlled over a named-pipe channel
	"exfiltration",
	"impact", // remote shutdown or reboot (T1529)
}

// Field is one decoded argument of an operation.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Operation is one remote operation: an RPC call, a file transfer over an
// admin share, a tree connect, the text through a PsExec-style pipe or the
// use of a named-pipe channel, an
// encrypted SMB3 session, a WinRM session or one of its WS-Management
// requests.
type Operation struct {
	Time time.Time // first packet of the request
	End  time.Time // last packet of the reply (Time when none was seen)

	Src, Dst         netip.Addr // client and server
	SrcPort, DstPort uint16

	// The account, as NTLMSSP AUTHENTICATE named it or as Kerberos showed
	// it (the client name of the ticket for Service, when the KDC exchange
	// was captured).
	User, Domain, Workstation string
	Auth                      string // "ntlm", "kerberos", "basic" (WinRM's HTTP Basic: the user name only) or "" (unknown, anonymous)
	Service                   string // Kerberos service principal of the session
	// AccountVia says how a Kerberos account was found: "ticket" (the
	// TGS-REP that issued the very ticket the AP-REQ presented), "kdc"
	// (the client address's KDC exchanges: a likely, not a sure, name).
	AccountVia string

	Transport string // "smb2", "smb1", "tcp" (ncacn_ip_tcp), "http", "https" (WinRM)
	Pipe      string // named pipe for RPC over SMB
	Share     string // tree the operation used, \\server\share

	Kind      string // "rpc", "file", "tree", "pipe", "logon", "smb3-encrypted", "winrm"
	Opnum     int    // RPC operation number; -1 for other kinds and replies whose request was not captured
	Interface string
	Operation string
	Target    string
	Command   string
	Fields    []Field
	Technique string
	Phase     string

	Status    uint32 // NT status or RPC return code when known
	HasStatus bool
	Encrypted bool // arguments sealed (packet privacy, SMB3 encryption)
	// Sealed says what became of sealed arguments when --ntlm-secrets
	// named the account: SealedDecrypted (decoded like clear ones) or
	// SealedUndecryptable (a field "sealed" says why); "" otherwise.
	Sealed string
	// Decrypted names the transport encryption the operation was opened
	// from with --ntlm-secrets: "smb3" (an SMB3-encrypted session),
	// "winrm" (WinRM's encrypted HTTP messages), "" when it travelled in
	// clear.
	Decrypted string
	Noise     bool // plumbing a timeline may fold away
	Partial   bool // request or reply missing, or content not fully captured

	// Files: size, and SHA-256 of the content when every byte was seen.
	Size   int64
	SHA256 string
}

// Values of Operation.Sealed.
const (
	SealedDecrypted     = "decrypted"
	SealedUndecryptable = "undecryptable"
)

// Evidence is the packet span to pull with `nwhealth query --from --to
// --host` to see an operation's packets.
type Evidence struct {
	From time.Time  `json:"from"`
	To   time.Time  `json:"to"`
	Src  netip.Addr `json:"src"`
	Dst  netip.Addr `json:"dst"`
}

// Evidence returns the operation's packet span, widened by a second on
// each side so rounding in the query keeps every packet.
func (o *Operation) Evidence() Evidence {
	end := o.End
	if end.Before(o.Time) {
		end = o.Time
	}
	return Evidence{
		From: o.Time.Add(-time.Second).Truncate(time.Second).UTC(),
		To:   end.Add(2 * time.Second).Truncate(time.Second).UTC(),
		Src:  o.Src, Dst: o.Dst,
	}
}

// Account formats DOMAIN\user, or "" when unknown.
func (o *Operation) Account() string {
	switch {
	case o.User == "":
		return ""
	case o.Domain == "":
		return o.User
	}
	return o.Domain + `\` + o.User
}

// Field returns the value of the operation's first field of that name, or
// "".
func (o *Operation) Field(name string) string {
	for _, f := range o.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
