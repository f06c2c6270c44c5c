package rpcops

import (
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// Interfaces whose calls take a path or server name the server then
// connects to, with its machine account: authentication coercion (T1187,
// forced authentication) that attackers relay to AD CS or LDAP (PetitPotam,
// DFSCoerce, ShadowCoerce, CheeseOunce). The printer bug (MS-RPRN) is in rprn.go.
//
//   - MS-EFSR, the Encrypting File System Remote Protocol: over \pipe\lsarpc
//     (and \pipe\samr, \pipe\netlogon, \pipe\lsass) as c681d488-…, over
//     \pipe\efsrpc as df1941c5-…; every operation takes a file name first.
//   - MS-DFSNM, DFS Namespace Management (\pipe\netdfs): NetrDfsAddStdRoot
//     and NetrDfsRemoveStdRoot name a server.
//   - MS-FSRVP, File Server Remote VSS (\pipe\FssagentRpc): IsPathSupported
//     and IsPathShadowCopied take a share path.
//   - MS-EVEN OpenBackupEventLogW/A ("CheeseOunce", eventlog.go) with a
//     UNC path: the event log service opens the file on that host.
var (
	efsrLsaUUID = mustUUID("c681d488-d850-11d0-8c52-00c04fd90f7e")
	efsrUUID    = mustUUID("df1941c5-fe89-4e79-bf10-463657acf44d")
	dfsnmUUID   = mustUUID("4fc742e0-4a10-11cf-8273-00aa004ae673")
	fsrvpUUID   = mustUUID("a8e0653c-2744-4389-a61d-7373df8b2292")
)

func init() { builders = append(builders, registerCoerce) }

// TechCoerce is forced authentication: the server is made to authenticate
// to a host the caller names.
const TechCoerce = "T1187"

func registerCoerce() {
	names := []string{"EfsRpcOpenFileRaw", "EfsRpcReadFileRaw", "EfsRpcWriteFileRaw", "EfsRpcCloseRaw",
		"EfsRpcEncryptFileSrv", "EfsRpcDecryptFileSrv", "EfsRpcQueryUsersOnFile", "EfsRpcQueryRecoveryAgents",
		"EfsRpcRemoveUsersFromFile", "EfsRpcAddUsersToFile", "EfsRpcSetFileEncryptionKey", "EfsRpcNotSupported", "EfsRpcFileKeyInfo",
		"EfsRpcDuplicateEncryptionInfoFile", "", "EfsRpcAddUsersToFileEx", "EfsRpcFileKeyInfoEx", "",
		"EfsRpcGetEncryptedFileMetadata", "EfsRpcSetEncryptedFileMetadata", "EfsRpcFlushEfsCache",
		"EfsRpcEncryptFileExSrv", "EfsRpcQueryProtectors"}
	file := func(flags int) op {
		return op{req: func(x *dc) { efsFile(x, flags) }, technique: TechCoerce, phase: PhaseCredAccess}
	}
	ops := func() map[uint16]op {
		return map[uint16]op{
			0:  file(efsAfter32),
			1:  {handle: true, noise: true},
			2:  {handle: true, noise: true},
			3:  {handle: true, closes: true, noise: true},
			4:  file(0),
			5:  file(efsAfter32),
			6:  file(0),
			7:  file(0),
			8:  file(0),
			9:  file(0),
			12: file(efsAfter32),
			13: {req: efsDuplicate, technique: TechCoerce, phase: PhaseCredAccess},
			15: file(efsBefore32Blob),
			16: file(efsBefore32Blob | efsAfter32),
			18: file(0),
			19: file(0),
			21: file(efsAfterStr32),
			22: file(0),
		}
	}
	register(&iface{name: "efsrpc", uuid: efsrLsaUUID, names: names, ops: ops(),
		pipes: []string{"lsarpc", "efsrpc", "samr", "netlogon", "lsass"}})
	register(&iface{name: "efsrpc", uuid: efsrUUID, names: names, ops: ops(), pipes: []string{"efsrpc"}})

	dfs := []string{"NetrDfsManagerGetVersion", "NetrDfsAdd", "NetrDfsRemove", "NetrDfsSetInfo", "NetrDfsGetInfo",
		"NetrDfsEnum", "NetrDfsRename", "NetrDfsMove", "NetrDfsManagerGetConfigInfo", "NetrDfsManagerSendSiteInfo",
		"NetrDfsAddFtRoot", "NetrDfsRemoveFtRoot", "NetrDfsAddStdRoot", "NetrDfsRemoveStdRoot",
		"NetrDfsManagerInitialize", "NetrDfsAddStdRootForced", "NetrDfsGetDcAddress", "NetrDfsSetDcAddress",
		"NetrDfsFlushFtTable", "NetrDfsAdd2", "NetrDfsRemove2", "NetrDfsEnumEx", "NetrDfsSetInfo2",
		"NetrDfsAddRootTarget", "NetrDfsRemoveRootTarget", "NetrDfsGetSupportedNamespaceVersion"}
	register(&iface{name: "netdfs", uuid: dfsnmUUID, names: dfs, pipes: []string{"netdfs"},
		ops: map[uint16]op{
			12: {req: dfsStdRoot, technique: TechCoerce, phase: PhaseCredAccess},
			13: {req: dfsStdRoot, technique: TechCoerce, phase: PhaseCredAccess},
		}})

	register(&iface{name: "FileServerVssAgent", uuid: fsrvpUUID, pipes: []string{"fssagentrpc"},
		names: []string{"GetSupportedVersion", "SetContext", "StartShadowCopySet", "AddToShadowCopySet",
			"CommitShadowCopySet", "ExposeShadowCopySet", "RecoveryCompleteShadowCopySet", "AbortShadowCopySet",
			"IsPathSupported", "IsPathShadowCopied", "GetShareMapping", "DeleteShareMapping", "PrepareShadowCopySet"},
		ops: map[uint16]op{
			8: {req: fsrvpShare, technique: TechCoerce, phase: PhaseCredAccess},
			9: {req: fsrvpShare, technique: TechCoerce, phase: PhaseCredAccess},
		}})
}

// What follows or precedes the file name of an EFSR request.
const (
	efsAfter32      = 1 << iota // a DWORD follows (Flags, OpenFlag, InfoClass)
	efsBefore32Blob             // a DWORD and a unique EFS_RPC_BLOB* come first
	efsAfterStr32               // a unique string and a DWORD follow
)

// efsBlob skips a unique EFS_RPC_BLOB* (cbData, then the bytes).
func efsBlob(r *ndr.Reader) {
	if !r.Ptr() {
		return
	}
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() { r.Bytes(r.Count(1)) })
		}
	})
}

func efsFile(x *dc, shape int) {
	r := x.r
	if shape&efsBefore32Blob != 0 {
		r.U32()
		efsBlob(r)
	}
	name := r.WString()
	switch {
	case shape&efsAfterStr32 != 0:
		x.add("protector", wstrPtr(r))
		x.add("flags", hex32(r.U32()))
	case shape&efsAfter32 != 0:
		x.add("flags", hex32(r.U32()))
	}
	x.coerce("file", name)
}

func efsDuplicate(x *dc) {
	src := x.r.WString()
	dst := x.r.WString()
	x.coerce("source file", src)
	x.add("destination file", dst)
	if h := CoercedHost(dst); h != "" && x.d.Target == "" {
		x.d.Target = dst
		x.add("coerced to", h)
	}
}

func dfsStdRoot(x *dc) {
	server := x.r.WString()
	share := x.r.WString()
	x.add("root share", share)
	x.d.Target = server
	x.add("server", server)
	if h := CoercedHost(server); h != "" {
		x.add("coerced to", h)
	}
}

func fsrvpShare(x *dc) {
	x.coerce("share", x.r.WString())
}

// coerce records the path a coercion call names, the host in it and, for
// a WebDAV path, how the server is made to connect (HTTP NTLM can be
// relayed to LDAP, which SMB's signing prevents: a responder wants to know).
func (x *dc) coerce(field, path string) {
	x.add(field, path)
	x.d.Target = path
	if h := CoercedHost(path); h != "" {
		x.add("coerced to", h)
		x.add("webdav", CoercedWebDAV(path))
	}
}

// CoercedHost is the host a path makes the server connect to: the server
// of a UNC path (\\host\share, \\?\UNC\host\share, the NT form
// \??\UNC\host\share that Coercer sends to MS-EVEN, or the WebDAV forms
// \\host@80\dav and \\host@SSL@443\dav, whose host ends at the first @), a
// URL's host, or a bare server name (\\host or host, as DFSCoerce passes
// it). It is "" for a local path.
func CoercedHost(p string) string {
	server := uncServer(p)
	if i := strings.IndexByte(server, '@'); i > 0 && isUNC(p) {
		server = server[:i]
	}
	return server
}

// CoercedWebDAV says how a WebDAV UNC path is fetched, as the WebDAV
// redirector reads it (DavGetHTTPFromUNCPath: \\host@SSL@port\path is
// HTTPS on port, \\host@port\path HTTP on port, @SSL alone port 443, a
// bare host SMB): "HTTP port 80", "HTTPS port 443", or "" for SMB and
// other paths.
func CoercedWebDAV(p string) string {
	server := uncServer(p)
	i := strings.IndexByte(server, '@')
	if i <= 0 || !isUNC(p) {
		return ""
	}
	scheme, port := "HTTP", ""
	for _, part := range strings.Split(server[i+1:], "@") {
		switch {
		case strings.EqualFold(part, "SSL"):
			scheme = "HTTPS"
		case part != "" && strings.Trim(part, "0123456789") == "":
			port = part
		default:
			return "" // not a form the redirector knows
		}
	}
	if port == "" {
		port = map[string]string{"HTTP": "80", "HTTPS": "443"}[scheme]
	}
	return scheme + " port " + port
}

func isUNC(p string) bool {
	p = strings.TrimSpace(p)
	return strings.HasPrefix(p, `\\`) || strings.HasPrefix(p, `//`) || hasNTUNCPrefix(p)
}

// ntUNCPrefixes name the redirector in Win32 (\\?\, \\.\) and NT object
// manager (\??\) spellings: each is followed by host\share.
var ntUNCPrefixes = []string{`\\?\unc\`, `\\.\unc\`, `\??\unc\`}

func hasNTUNCPrefix(p string) bool {
	for _, pre := range ntUNCPrefixes {
		if len(p) >= len(pre) && strings.EqualFold(p[:len(pre)], pre) {
			return true
		}
	}
	return false
}

// uncServer is the server part of a path: see CoercedHost.
func uncServer(p string) string {
	p = strings.TrimSpace(p)
	low := strings.ToLower(p)
	switch {
	case hasNTUNCPrefix(p):
		p = p[8:] // every prefix is 8 bytes
	case len(p) >= 4 && isUNC(p) && (p[2] == '.' || p[2] == '?') && (p[3] == '\\' || p[3] == '/'):
		return "" // \\.\device, \\?\C:\...: this machine's namespaces, not a server
	case strings.HasPrefix(p, `\\`) || strings.HasPrefix(p, `//`):
		p = p[2:]
	case strings.HasPrefix(low, "http://") || strings.HasPrefix(low, "https://"):
		p = p[strings.Index(p, "//")+2:]
	case len(p) >= 2 && p[1] == ':', p == "", strings.ContainsAny(p, `\/`):
		return "" // a local path
	}
	if i := strings.IndexAny(p, `\/`); i >= 0 {
		p = p[:i]
	}
	return p
}
