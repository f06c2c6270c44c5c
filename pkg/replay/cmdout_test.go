package replay

import (
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// redirectTargets lists the files a command line sends output to, as a
// host with no share paths known places them: `> f`, `1> f`, `>> f`,
// cmd's escaped `^> f` inside an echoed batch line; `2>&1` and the like
// are not files. A path under the Windows directory is %systemroot%\...;
// one under another environment variable needs the command's account and
// is left out.
func redirectTargets(cmd string) []string {
	p := New(Config{}, func(Operation) {})
	op := &Operation{Dst: netip.IPv4Unspecified()}
	var out []string
	for _, r := range redirects(cmd) {
		if _, pl, ok := p.placeRedirect(op, r); ok {
			out = append(out, pl.key)
		}
	}
	return out
}

func TestRedirectTargets(t *testing.T) {
	for _, c := range []struct {
		name, cmd string
		want      []string
	}{
		{"wmiexec", `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__1493067577.21 2>&1`, []string{`%systemroot%\__1493067577.21`}},
		{"smbexec echoes into a batch", `%COMSPEC% /Q /c echo dir ^> \\127.0.0.1\C$\__output 2^>^&1 > %TEMP%\execute.bat & %COMSPEC% /Q /c %TEMP%\execute.bat & del %TEMP%\execute.bat`, []string{`c:\__output`}},
		{"atexec", `cmd.exe /C ipconfig > %windir%\Temp\nZfRUBts.tmp 2>&1`, []string{`%systemroot%\temp\nzfrubts.tmp`}},
		{"systemroot, append", `cmd /c net user >> %SystemRoot%\Temp\o.txt`, []string{`%systemroot%\temp\o.txt`}},
		{"drive path, quoted", `cmd /c dir > "C:\Users\Public\out put.txt"`, []string{`c:\users\public\out put.txt`}},
		{"other drive share", `cmd /c dir 1>\\localhost\D$\x.log`, []string{`d:\x.log`}},
		{"no space, slash", `cmd /c dir >C:/t/o.txt`, []string{`c:\t\o.txt`}},
		{"stderr only into stdout", `cmd /c dir 2>&1`, nil},
		{"temp variable: the account unknown", `cmd /c dir > %TEMP%\o.txt`, nil},
		{"program data: Windows' default", `cmd /c dir > %ProgramData%\o.txt`, []string{`c:\programdata\o.txt`}},
		{"an unknown variable", `cmd /c dir > %OUTDIR%\o.txt`, nil},
		{"written out under the Windows directory", `cmd /c dir > C:\Windows\Temp\o.txt`, []string{`%systemroot%\temp\o.txt`}},
		{"a non-administrative share", `cmd /c dir > \\fs\public\o.txt`, nil},
		{"no redirect", `powershell -enc AAAA`, nil},
		{"dangling", `cmd /c dir >`, nil},
		{"unterminated quote", `cmd /c dir > "C:\x`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := redirectTargets(c.cmd); !slices.Equal(got, c.want) {
				t.Errorf("redirectTargets(%q) = %q, want %q", c.cmd, got, c.want)
			}
		})
	}
}

func TestSharePath(t *testing.T) {
	for _, c := range []struct{ share, name, want string }{
		{"ADMIN$", `__1493067577.21`, `c:\windows\__1493067577.21`},
		{"ADMIN$", `\Temp\X.tmp`, `c:\windows\temp\x.tmp`},
		{"C$", `Windows\Temp\cfidsE`, `c:\windows\temp\cfidse`},
		{"e$", `a/b`, `e:\a\b`},
		{"IPC$", `x`, ``},
		{"SYSVOL", `x`, ``},
		{"", `x`, ``},
	} {
		if got := sharePath(c.share, c.name); got != c.want {
			t.Errorf("sharePath(%q, %q) = %q, want %q", c.share, c.name, got, c.want)
		}
	}
}

func TestClassifyFile(t *testing.T) {
	for _, c := range []struct {
		share, name string
		write       bool
		want        string // technique, "" for an ordinary file
	}{
		{"C$", `Windows\Temp\ntds.dit`, false, "T1003.003"},
		{"ADMIN$", `Temp\NTDS.dit`, false, "T1003.003"},
		{"C$", `Windows\Temp\sam.save`, false, "T1003.002"},
		{"C$", `temp\SYSTEM`, false, "T1003.002"},
		{"C$", `temp\security.hiv`, false, "T1003.002"},
		{"C$", `Windows\System32\system.ini`, false, ""},
		{"C$", `Windows\Temp\lsass.DMP`, false, "T1003.001"},
		{"ADMIN$", `Temp\a8f3k2.dmp`, false, "T1003.001"},
		{"C$", `Users\Public\lsass_2024.zip`, false, "T1003.001"},
		{"C$", `Windows\Temp\lsass.exe_240101_120000.dmp`, false, "T1003.001"},
		// lsass's own program, its resources and its prefetch entry (a
		// triage collector reading C:\Windows\Prefetch) are no dump.
		{"ADMIN$", `System32\lsass.exe`, false, ""},
		{"C$", `Windows\System32\en-US\lsass.exe.mui`, false, ""},
		{"ADMIN$", `Prefetch\LSASS.EXE-3A8E5B6F.pf`, false, ""},
		{"Crashes", `app.dmp`, false, ""},
		// Windows' own crash dumps, which administrators fetch to debug a
		// crash: no credential dumping by their place.
		{"C$", `Windows\MEMORY.DMP`, false, ""},
		{"ADMIN$", `MEMORY.DMP`, false, ""},
		{"ADMIN$", `Minidump\120726-12345-01.dmp`, false, ""},
		{"C$", `Windows\LiveKernelReports\WATCHDOG-20261207-0800.dmp`, false, ""},
		{"C$", `Users\bob\AppData\Local\CrashDumps\app.exe.4242.dmp`, false, ""},
		{"C$", `Windows\Minidump\lsass.exe_240101_120000.dmp`, false, "T1003.001"}, // named for lsass: a dump of it wherever it lies
		{"C$", `Users\bob\AppData\Roaming\Microsoft\Protect\S-1-5-21-1\0b1c2d3e-1111-2222-3333-444455556666`, false, "T1555.004"},
		{"C$", `Users\bob\AppData\Local\Microsoft\Credentials\DFBE70A7E5CC19A398EBF1B96859CE5D`, false, "T1555.004"},
		{"C$", `Users\bob\AppData\Local\Microsoft\Vault\4BF4C442-9B8A-41A0-B380-DD4A704DDB28\Policy.vpol`, false, "T1555.004"},
		{"C$", `Users\bob\AppData\Local\Google\Chrome\User Data\Default\Login Data`, false, "T1555.003"},
		{"C$", `Users\bob\AppData\Local\Google\Chrome\User Data\Local State`, false, "T1555.003"},
		{"C$", `Users\bob\AppData\Roaming\Mozilla\Firefox\Profiles\x.default\key4.db`, false, "T1555.003"},
		{"C$", `Users\bob\Documents\Login Data`, false, ""},
		{"SYSVOL", `corp.local\Policies\{31B2F340-016D-11D2-945F-00C04FB984F9}\Machine\Preferences\ScheduledTasks\ScheduledTasks.xml`, true, "T1484.001"},
		{"SYSVOL", `corp.local\Policies\{31B2F340-016D-11D2-945F-00C04FB984F9}\gpt.ini`, false, ""},
		{"C$", `Users\bob\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\up.lnk`, true, "T1547.001"},
		{"C$", `ProgramData\Microsoft\Windows\Start Menu\Programs\Startup\desktop.ini`, false, ""},
		{"ADMIN$", `System32\Tasks\Updater`, true, "T1053.005"},
		{"C$", `Windows\System32\Tasks\Updater`, true, "T1053.005"},
		{"C$", `Windows\System32\wbem\MOF\evil.mof`, true, "T1546.003"},
		{"Public", `@lure.scf`, true, "T1187"},
		{"Public", `docs.library-ms`, true, "T1187"},
		{"Public", `report.docx`, true, ""},
		{"C$", `x.scf`, true, ""},
	} {
		k, ok := classifyFile(c.share, c.name, c.write)
		if got := k.technique; got != c.want || ok != (c.want != "") {
			t.Errorf("classifyFile(%q, %q, %v) = %q %v, want %q", c.share, c.name, c.write, got, ok, c.want)
		}
	}
}

func TestOutputText(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
		ok   bool
	}{
		{[]byte("C:\\\r\n"), `C:\`, true},
		{[]byte("nt authority\\system\r\n"), `nt authority\system`, true},
		{[]byte{'o', 0, 'k', 0, '\r', 0, '\n', 0}, "ok", true},
		{[]byte("\r\n"), "", false},
		{[]byte{0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff}, "", false},
	} {
		got, ok := outputText(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("outputText(%q) = %q %v, want %q %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestCommandOutputOracle checks, on real captures of impacket's wmiexec,
// smbexec and dcomexec and CrackMapExec's wmiexec, that every file tshark
// exports from the SMB reads under a name a command redirected into is
// reported as that command's output, with the file's text, in order.
func TestCommandOutputOracle(t *testing.T) {
	dir := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn")
	for _, name := range []string{"wmiexec.pcap", "wmi_exec1.pcap", "smbexec.pcap", "smb_exec_only_two_commands.pcap", "mmcexec.pcap", "cme_wmiexec_snickle.pcap"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name)
			ops, _ := replayFile(t, file)
			var got []string
			bases := map[string]bool{}
			for _, op := range ops {
				for _, tgt := range redirectTargets(op.Command) {
					bases[tgt[strings.LastIndexByte(tgt, '\\')+1:]] = true
				}
				if op.Operation != "read command output" {
					continue
				}
				if op.Field("output of") == "" || op.Phase != "execution" || op.Technique == "" {
					t.Errorf("%s: output read without its command or technique: %+v", name, op)
				}
				got = append(got, op.Field("output"))
			}
			if len(bases) == 0 {
				t.Fatalf("%s: no command redirects its output", name)
			}
			want := exportedOutputs(t, file, bases)
			if len(want) == 0 {
				t.Fatalf("%s: tshark exported no output file", name)
			}
			// tshark numbers the repeats of each name, not the files in
			// capture order across names: compare as multisets.
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: outputs\n got %q\nwant %q (tshark --export-objects smb)", name, got, want)
			}
		})
	}
}

// exportedOutputs returns the text of each file tshark exports from SMB
// whose base name is in bases ("" for one that is not text).
func exportedOutputs(t *testing.T, file string, bases map[string]bool) []string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(testenv.Tool(t, "tshark"), "-n", "-r", file, "-q", "--export-objects", "smb,"+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tshark --export-objects: %v: %s", err, b)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range ents {
		name, err := url.PathUnescape(e.Name())
		if err != nil {
			name = e.Name()
		}
		name = strings.ToLower(name[strings.LastIndexAny(name, `\/`)+1:])
		// "__1493067577(3).21": the third repeat of "__1493067577.21".
		if i := strings.LastIndexByte(name, '('); i >= 0 {
			if j := strings.IndexByte(name[i:], ')'); j > 0 {
				name = name[:i] + name[i+j+1:]
			}
		}
		if !bases[name] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		txt, ok := outputText(b[:min(len(b), maxOutputText)])
		if !ok {
			txt = "" // not text (cls's form feed, a binary file typed): no output field
		}
		texts = append(texts, txt)
	}
	return texts
}

// FuzzRedirectTargets feeds arbitrary command lines (they come from the
// wire): no panic, and every target is a canonical drive path.
func FuzzRedirectTargets(f *testing.F) {
	for _, s := range []string{
		`cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__1493067577.21 2>&1`,
		`%COMSPEC% /Q /c echo dir ^> \\127.0.0.1\C$\__output 2^>^&1 > %TEMP%\execute.bat`,
		`cmd /c dir > "C:\x y.txt"`, `>`, `>>`, `> "`, `>\\`, `>\\a\`, `>\\a\b`, `>%windir%\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		for _, tgt := range redirectTargets(cmd) {
			drive := len(tgt) >= 3 && tgt[1] == ':' && tgt[2] == '\\'
			if !drive && !strings.HasPrefix(tgt, systemRoot+`\`) || tgt != strings.ToLower(tgt) {
				t.Fatalf("target %q of %q is not a canonical path", tgt, cmd)
			}
		}
		classifyFile("C$", cmd, false)
		classifyFile("SYSVOL", cmd, true)
		outputText([]byte(cmd))
	})
}

// TestLinkOutputWho: a file a command redirected into is that command's
// output only for the host the file is on and for the client that ran the
// command. An administrator's script writing C:\output.txt does not make
// another client's later read of it "command output" of that script, and
// a redirect into another host's share (\\10.1.0.7\C$\o.txt) names a file
// of that host, not of the one the command ran on.
func TestLinkOutputWho(t *testing.T) {
	var (
		admin  = netip.MustParseAddr("10.1.0.5")
		other  = netip.MustParseAddr("10.1.0.6")
		target = netip.MustParseAddr("10.1.0.9")
		far    = netip.MustParseAddr("10.1.0.7")
	)
	p := New(Config{}, func(Operation) {})
	p.noteOutputs(&Operation{Src: admin, Dst: target, Command: `cmd.exe /c inventory.cmd > C:\output.txt`, Technique: "T1569.002"})
	p.noteOutputs(&Operation{Src: admin, Dst: target, Command: `cmd.exe /c whoami > \\10.1.0.7\C$\o.txt`, Technique: "T1047"})
	p.noteOutputs(&Operation{Src: admin, Dst: target, Command: `cmd.exe /c ipconfig 1> \\127.0.0.1\ADMIN$\__out 2>&1`, Technique: "T1047"})
	for _, c := range []struct {
		name         string
		reader, host netip.Addr
		share, file  string
		want         bool
	}{
		{"the client that ran it reads it back", admin, target, "C$", `output.txt`, true},
		{"another client reads the same file", other, target, "C$", `output.txt`, false},
		{"loopback share: the target's own file", admin, target, "ADMIN$", `__out`, true},
		{"another host's share: not the target's file", admin, target, "C$", `o.txt`, false},
		{"another host's share: that host's file", admin, far, "C$", `o.txt`, true},
	} {
		op := Operation{Src: c.reader, Dst: c.host, Operation: "read"}
		if got := p.linkOutput(c.host, &op, c.share, c.file, []byte("x\r\n")); got != c.want {
			t.Errorf("%s: linked %v, want %v (%+v)", c.name, got, c.want, op)
		}
	}
}
