package replay

import (
	"context"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// tsharkFields runs tshark over file with a display filter and returns the
// requested fields of each matching packet (occurrences of a field in one
// packet are separated by ",").
func tsharkFields(t *testing.T, file, filter string, fields ...string) [][]string {
	t.Helper()
	return tsharkFieldsWith(t, nil, file, filter, fields...)
}

// tsharkFieldsWith is tsharkFields with tshark options first (a password
// to open sealed calls).
func tsharkFieldsWith(t *testing.T, opts []string, file, filter string, fields ...string) [][]string {
	t.Helper()
	args := append(slices.Clone(opts), "-n", "-r", file, "-Y", filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(testenv.Tool(t, "tshark"), args...).Output()
	if err != nil && len(out) == 0 {
		if ee, ok := err.(*exec.ExitError); !ok || !strings.Contains(string(ee.Stderr), "cut short") {
			t.Fatalf("tshark %v: %v", args, err)
		}
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

func replayFile(t *testing.T, file string) ([]Operation, Stats) {
	t.Helper()
	src, c, err := OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ops []Operation
	st, _ := Run(context.Background(), src, Config{}, func(o Operation) { ops = append(ops, o) })
	return ops, st
}

func sharedCaptures(t testing.TB) []string {
	dir := testenv.SharedFile(t, "pcaps", "remote-ops")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.*cap*"))
	if len(files) == 0 {
		t.Fatal("no shared captures")
	}
	return files
}

// allCaptures lists every capture under the shared pcaps directory.
func allCaptures(t testing.TB) []string {
	dir := testenv.SharedFile(t, "pcaps")
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			switch strings.ToLower(filepath.Ext(p)) {
			case ".pcap", ".pcapng", ".cap":
				files = append(files, p)
			}
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatal("no shared captures")
	}
	sort.Strings(files)
	return files
}

// tsharkView is what one tshark pass over a capture dissects.
type tsharkView struct {
	calls   []tsharkCall        // DCE/RPC requests (first fragments), in order
	ntlm    map[string]bool     // DOMAIN\user of NTLMSSP AUTHENTICATE messages
	trees   map[string]bool     // tree connect paths requested (lower case)
	clients map[string]bool     // client names of TGS-REPs
	strs    map[string][]string // string arguments by field
}

type tsharkCall struct {
	iface string // our name for the interface, "" when tshark could not tell
	opnum string
}

// oracleFields are the string arguments compared both ways: tshark's
// field, and the interface and argument of ours that must hold the same
// values.
var oracleFields = []struct{ tshark, iface, ours string }{
	{"svcctl.servicename", "svcctl", "target"},
	{"svcctl.binarypathname", "svcctl", "command"},
	{"atsvc.atsvc_JobInfo.command", "atsvc", "command"},
	{"spoolss.drivername", "spoolss", "driver"},
	{"spoolss.driverpath", "spoolss", "driver path"},
	{"spoolss.datafile", "spoolss", "data file"},
	{"spoolss.configfile", "spoolss", "config file"},
	{"efs.EfsRpcOpenFileRaw.FileName", "efsrpc", "file"},
	{"efs.EfsRpcEncryptFileSrv.Filename", "efsrpc", "file"},
	{"efs.EfsRpcDecryptFileSrv.FileName", "efsrpc", "file"},
	{"efs.EfsRpcQueryUsersOnFile.FileName", "efsrpc", "file"},
	{"efs.EfsRpcQueryRecoveryAgents.FileName", "efsrpc", "file"},
	{"efs.EfsRpcRemoveUsersFromFile.FileName", "efsrpc", "file"},
	{"efs.EfsRpcAddUsersToFile.FileName", "efsrpc", "file"},
	// MS-EVEN file names: all of them are "backup file" in ours.
	{"eventlog.eventlog_OpenBackupEventLogW.logname", "eventlog", "backup file"},
	{"eventlog.eventlog_BackupEventLogW.backupfilename", "eventlog", "backup file"},
	{"eventlog.eventlog_ClearEventLogW.backupfilename", "eventlog", "backup file"},
}

// tsharkProtocols maps tshark's protocol column to our interface names.
var tsharkProtocols = map[string]string{
	"SVCCTL": "svcctl", "SAMR": "samr", "LSARPC": "lsarpc", "EPM": "epmapper", "RPC_NETLOGON": "netlogon",
	"DRSUAPI": "drsuapi", "ATSVC": "atsvc", "SPOOLSS": "spoolss", "WINREG": "winreg", "SRVSVC": "srvsvc",
	"WKSSVC": "wkssvc", "EVENTLOG": "eventlog", "EFS": "efsrpc", "NETDFS": "netdfs", "FSRVP": "FileServerVssAgent",
	"TaskSchedulerService": "ITaskSchedulerService", "ISystemActivator": "ISystemActivator",
	"IRemUnknown2": "IRemUnknown2", "IRemUnknown": "IRemUnknown", "IOXIDResolver": "IOXIDResolver",
	"IDispatch": "IDispatch", "ITypeInfo": "ITypeInfo", "IProvideClassInfo": "IProvideClassInfo",
	"DSSETUP": "dssetup",
}

var ctxUUID = regexp.MustCompile(`Ctx: \d+ ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

// tsharkDissect runs tshark once over a capture for everything the oracle
// compares; opts go to tshark first.
func tsharkDissect(t *testing.T, file string, opts ...string) tsharkView {
	fields := []string{"_ws.col.Protocol", "_ws.col.Info", "dcerpc.pkt_type", "dcerpc.cn_flags.first_frag", "smb2.flags.response",
		"dcerpc.opnum", "ntlmssp.auth.domain", "ntlmssp.auth.username", "smb2.cmd", "smb2.tree", "smb.cmd", "smb.path",
		"kerberos.msg_type", "kerberos.CNameString", "smb.account", "smb.primary_domain"}
	for _, f := range oracleFields {
		fields = append(fields, f.tshark)
	}
	rows := tsharkFieldsWith(t, opts, file, "dcerpc || ntlmssp.messagetype == 3 || kerberos.msg_type == 13 || smb2.cmd == 3 || smb.cmd == 0x75 || smb.account", fields...)
	v := tsharkView{ntlm: map[string]bool{}, trees: map[string]bool{}, clients: map[string]bool{}, strs: map[string][]string{}}
	col := func(r []string, name string) []string {
		i := slices.Index(fields, name)
		if x := get(r, i); x != "" {
			return strings.Split(x, ",")
		}
		return nil
	}
	for _, r := range rows {
		types, first, opnums := col(r, "dcerpc.pkt_type"), col(r, "dcerpc.cn_flags.first_frag"), col(r, "dcerpc.opnum")
		resp := slices.ContainsFunc(col(r, "smb2.flags.response"), func(s string) bool { return s == "1" || s == "True" })
		if slices.Contains(types, "0") && !resp {
			iface := tsharkProtocols[get(r, 0)]
			if m := ctxUUID.FindStringSubmatch(get(r, 1)); m != nil {
				if u, err := rpcops.ParseUUID(m[1]); err == nil {
					iface = firstNonEmpty(rpcops.InterfaceName(u), rpcops.WellKnownName(u))
				}
			}
			// One row per frame: a frame may carry several PDUs. When
			// every PDU has each field, they line up.
			aligned := len(types) == len(first) && len(types) == len(opnums)
			for k, op := range opnums {
				if aligned && (types[k] != "0" || first[k] != "1") {
					continue
				}
				if !aligned && !slices.Contains(first, "1") {
					continue
				}
				v.calls = append(v.calls, tsharkCall{iface, op})
			}
		}
		doms, users := col(r, "ntlmssp.auth.domain"), col(r, "ntlmssp.auth.username")
		for i, u := range users {
			d := ""
			if i < len(doms) && doms[i] != "NULL" {
				d = doms[i]
			}
			v.ntlm[d+`\`+u] = true
		}
		// SMB1 logons without NTLMSSP (plain LM/NTLM responses).
		pdoms := col(r, "smb.primary_domain")
		for i, u := range col(r, "smb.account") {
			d := ""
			if i < len(pdoms) {
				d = pdoms[i]
			}
			v.ntlm[d+`\`+u] = true
		}
		if slices.Contains(col(r, "smb2.cmd"), "3") && !resp || slices.Contains(col(r, "smb.cmd"), "0x75") {
			for _, p := range append(col(r, "smb2.tree"), col(r, "smb.path")...) {
				v.trees[strings.ToLower(p)] = true
			}
		}
		if slices.Contains(col(r, "kerberos.msg_type"), "13") {
			for _, c := range col(r, "kerberos.CNameString") {
				v.clients[strings.ToLower(c)] = true
			}
		}
		if slices.Contains(types, "0") && !resp {
			// Arguments of requests only: replies list other things
			// (EnumPrinterDrivers' answer names every driver).
			for _, f := range oracleFields {
				v.strs[f.tshark] = append(v.strs[f.tshark], col(r, f.tshark)...)
			}
		}
	}
	return v
}

// oursFor collects our values of one argument of one interface.
func oursFor(ops []Operation, iface, arg string) map[string]bool {
	m := map[string]bool{}
	for i := range ops {
		o := &ops[i]
		if o.Interface != iface || o.Kind != "rpc" {
			continue
		}
		switch arg {
		case "target":
			if strings.HasPrefix(o.Operation, "OpenService") || strings.HasPrefix(o.Operation, "CreateService") {
				m[strings.ToLower(o.Target)] = true
			}
		case "command":
			if strings.HasPrefix(o.Operation, "CreateService") || o.Operation == "NetrJobAdd" {
				m[strings.ToLower(o.Command)] = true
			}
		default:
			for _, f := range o.Fields {
				if f.Name == arg {
					m[strings.ToLower(f.Value)] = true
				}
			}
		}
		delete(m, "")
	}
	return m
}

// TestOracleTshark compares, capture by capture over every shared capture,
// what replay reports with what tshark dissects from the same packets, both
// ways: the interface and opnum of every DCE/RPC request, the string
// arguments tshark decodes for the interfaces both decode (service names
// and binary paths, at job commands, printer driver files, EFS file
// names), NTLMSSP accounts, tree connects, and the client names replay
// takes from the TGS-REP that issued a ticket. tshark runs once per
// capture.
func TestOracleTshark(t *testing.T) {
	testenv.Tool(t, "tshark")
	for _, file := range allCaptures(t) {
		name, _ := filepath.Rel(testenv.SharedDir(t), file)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ops, st := replayFile(t, file)
			compareTshark(t, ops, st, tsharkDissect(t, file))
		})
	}
}

// TestOracleLab is TestOracleTshark over the project's own lab captures
// of real attack tools (rpcops testdata/captures), the sealed ones opened
// with the lab password by both: what replay decrypts and names must be
// what tshark decrypts and dissects, both ways.
func TestOracleLab(t *testing.T) {
	testenv.Tool(t, "tshark")
	files, _ := filepath.Glob(labCapture("rpclab_*.pcap"))
	if len(files) == 0 {
		t.Fatal("no lab captures")
	}
	sec := secretsOf(t, `CORP\alice password:`+labPassword+"\n")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			ops, _, st := replaySealed(t, file, sec)
			v := tsharkDissect(t, file, "-o", "ntlmssp.nt_password:"+labPassword)
			if len(v.calls) == 0 {
				t.Fatal("tshark dissected no call")
			}
			// The coercion captures were made for this check: tshark
			// must have decoded their paths.
			if f := labPaths[filepath.Base(file)]; f != "" && len(v.strs[f]) == 0 {
				t.Errorf("tshark decoded no %s", f)
			}
			compareTshark(t, ops, st, v)
		})
	}
}

// labPaths names the tshark field holding the coerced path of each lab
// capture of a coercion tool.
var labPaths = map[string]string{
	"rpclab_petitpotam_ly4k.pcap":           "efs.EfsRpcOpenFileRaw.FileName",
	"rpclab_petitpotam_topotam_sealed.pcap": "efs.EfsRpcOpenFileRaw.FileName",
	"rpclab_coercer_even_sealed.pcap":       "eventlog.eventlog_OpenBackupEventLogW.logname",
}

// compareTshark checks replay's operations of one capture against
// tshark's dissection of it.
func compareTshark(t *testing.T, ops []Operation, st Stats, v tsharkView) {
	t.Helper()
	for _, o := range ops {
		if o.Auth == "ntlm" && o.User != "" && !v.ntlm[o.Domain+`\`+o.User] {
			t.Errorf("account %s\\%s not in tshark's NTLMSSP AUTHENTICATE messages %v", o.Domain, o.User, keys(v.ntlm))
		}
		if o.Kind == "tree" && !v.trees[strings.ToLower(o.Target)] {
			t.Errorf("tree %s not requested according to tshark (%v)", o.Target, keys(v.trees))
		}
		if o.AccountVia == "ticket" && !v.clients[strings.ToLower(o.User)] {
			t.Errorf("%s names %s via ticket; tshark's TGS-REPs name %v", o.Operation, o.User, keys(v.clients))
		}
	}

	// String arguments, both ways.
	for _, f := range oracleFields {
		ours := oursFor(ops, f.iface, f.ours)
		theirs := map[string]bool{}
		for _, s := range v.strs[f.tshark] {
			if s != "" {
				theirs[strings.ToLower(s)] = true
			}
		}
		for s := range theirs {
			if !ours[s] && st.Gaps == 0 {
				t.Errorf("%s %q (tshark) not reported as %s %s", f.tshark, s, f.iface, f.ours)
			}
		}
		if len(theirs) == 0 {
			continue // tshark does not decode this field here (sealed, NDR64, other opnums)
		}
		// Ours come from every tshark field feeding the same argument.
		all := map[string]bool{}
		for _, g := range oracleFields {
			if g.iface == f.iface && g.ours == f.ours {
				for _, s := range v.strs[g.tshark] {
					if s != "" {
						all[strings.ToLower(s)] = true
					}
				}
			}
		}
		for s := range ours {
			if !all[s] && sameField(f.tshark) {
				t.Errorf("%s %s %q not in tshark's %s %v", f.iface, f.ours, s, f.tshark, keys(all))
			}
		}
	}

	// Calls: where a TCP segment was not captured both tools lose
	// calls in different ways, so only gap-free captures must
	// match call for call.
	if st.Gaps > 0 {
		return
	}
	var got []tsharkCall
	for _, o := range ops {
		if o.Kind == "rpc" && o.Opnum >= 0 {
			got = append(got, tsharkCall{o.Interface, itoa(o.Opnum)})
		}
	}
	used := make([]bool, len(got))
	var missed []string
	// Calls tshark names first, then those it could not name
	// (contexts bound before the capture, sealed calls).
	want := slices.Clone(v.calls)
	slices.SortStableFunc(want, func(a, b tsharkCall) int {
		return boolInt(a.iface == "") - boolInt(b.iface == "")
	})
	for _, w := range want {
		k := slices.IndexFunc(got, func(g tsharkCall) bool {
			return g.opnum == w.opnum && (w.iface == "" || strings.EqualFold(w.iface, g.iface))
		})
		for k >= 0 && used[k] {
			n := slices.IndexFunc(got[k+1:], func(g tsharkCall) bool {
				return g.opnum == w.opnum && (w.iface == "" || strings.EqualFold(w.iface, g.iface))
			})
			if n < 0 {
				k = -1
				break
			}
			k += 1 + n
		}
		if k < 0 {
			missed = append(missed, w.iface+" "+w.opnum)
			continue
		}
		used[k] = true
	}
	var extra []string
	for k, g := range got {
		if !used[k] {
			extra = append(extra, g.iface+" "+g.opnum)
		}
	}
	if len(missed) > 0 {
		t.Errorf("requests tshark decodes that replay does not report: %v", missed)
	}
	if len(extra) > 0 {
		t.Errorf("requests replay reports that tshark does not see: %v", extra)
	}
}

// sameField reports whether every value of ours can be checked against
// tshark's fields: not for efs, which tshark 4.0 decodes only on the
// lsarpc UUID (c681d488-…), not on \pipe\efsrpc's df1941c5-….
func sameField(tsharkField string) bool { return !strings.HasPrefix(tsharkField, "efs.") }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func get(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

func keys(m map[string]bool) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}
