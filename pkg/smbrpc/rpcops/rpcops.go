// Package rpcops decodes the arguments of Windows RPC operations (MS-SCMR,
// MS-TSCH, MS-RRP, MS-SRVS, MS-WKST, MS-SAMR, MS-LSAT/LSAD, MS-DRSR, the
// endpoint mapper, DCOM activation, WMI, IDispatch, MS-EVEN, MS-NRPC, MS-RSP,
// MS-DNSP, MS-TSTS, MS-GKDI, the mgmt interface, MS-NSPI) from
// reassembled DCE/RPC stub bytes, and says what each operation means for an
// incident responder: its target, the command it runs, its ATT&CK technique
// and its phase.
//
// It knows nothing of SMB, TCP or PDU framing: the caller hands it the
// request and response stubs of one call.
//
// Two entry points:
//
//   - Decode(c) decodes one call on its own.
//   - Session.Decode(c) does the same and also remembers the context handles
//     the calls return (service handles, registry keys, SAMR domains...), so
//     later calls on the same connection can name what they act on
//     (StartServiceW on the handle OpenServiceW returned for "PSEXESVC",
//     SetValue under HKLM\SYSTEM\...). The pipeline makes one Session per
//     DCE/RPC association (per SMB pipe open or TCP connection) and calls
//     Decode in call order, once each call has its response (or has expired
//     without one). Sessions of one capture share a *Shared (Session.Shared)
//     so names and DCOM objects learnt on one connection serve the others.
//
// GuessCall and GuessInterface name the interface of calls whose bind was
// not captured; EndpointsFromMap and EndpointsFromCall read the dynamic
// endpoints an endpoint-mapper answer announces. OPERATIONS.md lists what
// is decoded.
package rpcops

// Call is one DCE/RPC call as the transport layer reassembled it.
type Call struct {
	Interface [16]byte // interface UUID in its wire form (as it appears in a bind PDU: first 3 fields little-endian)
	IfVersion uint16
	Opnum     uint16
	Request   []byte   // reassembled request stub (nil if not seen)
	Response  []byte   // reassembled response stub (nil if not seen)
	BigEndian bool     // from the PDU data representation (almost always little-endian)
	NDR64     bool     // the context's bind_ack accepted NDR64 (71710533-beba-4937-8319-b5dbef9ccc36); Windows x64 clients get it from Windows servers for most interfaces
	Object    [16]byte // object UUID when PFC_OBJECT_UUID is set (DCOM IPID)
	Pipe      string   // SMB named pipe the call came over, "" for ncacn_ip_tcp
}

// Decoded is what one call did.
type Decoded struct {
	Interface string  // short name: "svcctl", "samr", "IWbemServices", ...
	Operation string  // "CreateServiceW", "SchRpcRegisterTask", ... ("opnum N" when unknown)
	Target    string  // what it acted on: service name, task path, key\value, share, user, CLSID name...
	Command   string  // command line / binary path / task command + arguments, if any
	Fields    []Field // every decoded argument worth showing, in order
	Technique string  // ATT&CK id for this operation ("" when none applies)
	Phase     string  // reconnaissance | credential-access | lateral-movement | execution | persistence | collection | exfiltration | defense-evasion | impact | "" (plumbing)
	Status    uint32  // return code from the response, when decoded
	Noise     bool    // plumbing (CloseServiceHandle, lsa_Close, RemRelease...) a timeline may fold away
	// SharePaths are the local paths of the shares a srvsvc response
	// names (NetrShareEnum, NetrShareGetInfo at levels 2 and 502), so a
	// file on a share can be placed on its host's disk.
	SharePaths []SharePath
}

// SharePath is a share and the local path it exposes, as its server
// says ("ADMIN$", `C:\WINDOWS`).
type SharePath struct{ Share, Path string }

// Field is one decoded argument.
type Field struct{ Name, Value string }

// Phases an operation can belong to.
const (
	PhaseRecon      = "reconnaissance"
	PhaseCredAccess = "credential-access"
	PhaseLateral    = "lateral-movement"
	PhaseExecution  = "execution"
	PhasePersist    = "persistence"
	PhaseCollection = "collection"
	PhaseExfil      = "exfiltration"
	PhaseEvasion    = "defense-evasion"
	PhaseImpact     = "impact" // ATT&CK Impact: shutting a host down (T1529)
)
