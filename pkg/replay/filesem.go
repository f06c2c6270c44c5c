package replay

import (
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// fileKind is what a file's location says an SMB read or write of it is,
// beyond "a file on a share": the credential stores that dumping tools
// (secretsdump -use-vss, CrackMapExec --ntds and --lsa, lsassy, DonPAPI,
// dploot) read over admin shares, and the places a write makes persistent
// or turns into policy. Names decide; contents are never needed, so this
// works for partial and encrypted-then-decrypted transfers alike.
type fileKind struct {
	technique, phase, what string
}

// classifyFile names the kind of a file read (write false) or written
// (write true), given its share (the tree's last component, e.g. C$,
// SYSVOL) and its path inside the share. ok is false for ordinary files.
func classifyFile(share, name string, write bool) (fileKind, bool) {
	p := strings.ToLower(strings.ReplaceAll(name, "/", `\`))
	p = strings.TrimLeft(p, `\`)
	base := p
	if i := strings.LastIndexByte(p, '\\'); i >= 0 {
		base = p[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	share = strings.ToLower(share)
	admin := strings.HasSuffix(share, "$") && share != "ipc$"
	// Paths are matched with a leading separator so that "protect\" is a
	// directory name, not the end of another one; an administrative
	// share's file by its local path (ADMIN$\System32 is
	// C:\Windows\System32).
	q := `\` + p
	if l := sharePath(share, p); l != "" {
		q = `\` + l
	}
	if !write {
		switch {
		case base == "ntds.dit":
			return fileKind{"T1003.003", rpcops.PhaseCredAccess, "Active Directory database (NTDS.dit)"}, true
		case hiveName(stem) && hiveExt(ext):
			return fileKind{"T1003.002", rpcops.PhaseCredAccess, "registry hive with local credentials (" + strings.ToUpper(stem) + ")"}, true
		case strings.Contains(base, "lsass") && !lsassItself(ext):
			return fileKind{"T1003.001", rpcops.PhaseCredAccess, "LSASS memory dump"}, true
		case ext == ".dmp" && admin && !crashDump(q, base):
			// Dumping tools (lsassy, CrackMapExec's lsassy and nanodump
			// modules) write the dump under a random name and fetch it
			// over the admin share they wrote it through.
			return fileKind{"T1003.001", rpcops.PhaseCredAccess, "memory dump read over an admin share"}, true
		case strings.Contains(q, `\microsoft\protect\`):
			return fileKind{"T1555.004", rpcops.PhaseCredAccess, "DPAPI master key"}, true
		case strings.Contains(q, `\microsoft\credentials\`) || strings.Contains(q, `\microsoft\vault\`):
			return fileKind{"T1555.004", rpcops.PhaseCredAccess, "Windows Credential Manager store"}, true
		case browserSecret(q, base):
			return fileKind{"T1555.003", rpcops.PhaseCredAccess, "browser credential store"}, true
		}
		return fileKind{}, false
	}
	switch {
	case share == "sysvol" && strings.Contains(q, `\policies\{`):
		return fileKind{"T1484.001", rpcops.PhaseEvasion, "Group Policy object changed"}, true
	case strings.Contains(q, `\start menu\programs\startup\`):
		return fileKind{"T1547.001", rpcops.PhasePersist, "file placed in a Startup folder"}, true
	case strings.Contains(q, `\windows\system32\tasks\`):
		return fileKind{"T1053.005", rpcops.PhasePersist, "scheduled task definition written"}, true
	case strings.Contains(q, `\windows\system32\wbem\mof\`) && ext == ".mof":
		return fileKind{"T1546.003", rpcops.PhasePersist, "MOF file dropped for auto-compilation"}, true
	case !admin && (ext == ".scf" || ext == ".library-ms" || ext == ".searchconnector-ms"):
		// Browsing a share with such a file makes Explorer fetch the icon
		// or location it names, authenticating to the attacker's host.
		return fileKind{"T1187", rpcops.PhaseCredAccess, "forced-authentication lure on a share"}, true
	}
	return fileKind{}, false
}

// hiveName reports the registry hives whose saved copies yield local
// account hashes and LSA secrets.
func hiveName(stem string) bool {
	return stem == "sam" || stem == "system" || stem == "security"
}

// hiveExt reports the extensions saved hives carry ("reg save HKLM\SAM
// sam.save", .hiv, .bak); a plain "system" file with any other extension
// is something else.
func hiveExt(ext string) bool {
	switch ext {
	case "", ".save", ".sav", ".hiv", ".hive", ".bak":
		return true
	}
	return false
}

// browserSecret reports the files that hold a browser's saved passwords,
// cookies or their key: Chromium's "Login Data", "Cookies" and "Local
// State" under "User Data", Firefox's logins.json and key4.db.
func browserSecret(q, base string) bool {
	if strings.Contains(q, `\user data\`) {
		switch base {
		case "login data", "cookies", "local state":
			return true
		}
	}
	if strings.Contains(q, `\mozilla\firefox\profiles\`) {
		switch base {
		case "logins.json", "key4.db", "key3.db", "cookies.sqlite":
			return true
		}
	}
	return false
}

// shareName is a tree's share name, empty for an unknown tree.
func shareName(t *smbTree) string {
	if t == nil {
		return ""
	}
	return t.share
}

// lsassItself reports the files of lsass.exe itself that name it: the
// program, its resources, its prefetch entry (LSASS.EXE-3A8E5B6F.pf), as
// inventory and triage tools read them; a dump is named otherwise
// (ProcDump's lsass.exe_240101_120000.dmp included).
func lsassItself(ext string) bool {
	switch ext {
	case ".exe", ".mui", ".pf", ".mum", ".manifest", ".cat":
		return true
	}
	return false
}

// crashDump reports Windows' own crash dumps, which administrators fetch
// over C$ to debug a crash: the kernel's MEMORY.DMP, minidumps and live
// kernel reports, and Windows Error Reporting's CrashDumps folders. A
// dump named for lsass is judged by its name before this.
func crashDump(q, base string) bool {
	return base == "memory.dmp" || strings.Contains(q, `\windows\minidump\`) ||
		strings.Contains(q, `\windows\livekernelreports\`) || strings.Contains(q, `\crashdumps\`)
}
