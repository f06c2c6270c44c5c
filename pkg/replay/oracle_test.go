package replay

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// tsharkFields runs tshark over file with a display filter and returns the
// requested fields of each matching packet (occurrences of a field in one
// packet are separated by ",").
func tsharkFields(t *testing.T, file, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", file, "-Y", filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"}
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

// TestOracleTshark compares, capture by capture, what replay reports with
// what tshark dissects from the same packets: NTLMSSP accounts, SMB2 tree
// paths, and the opnums of DCE/RPC requests.
func TestOracleTshark(t *testing.T) {
	testenv.Tool(t, "tshark")
	for _, file := range sharedCaptures(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ops, st := replayFile(t, file)

			// Accounts: every NTLM account replay names was in an
			// AUTHENTICATE tshark saw.
			ts := map[string]bool{}
			for _, r := range tsharkFields(t, file, "ntlmssp.messagetype == 3", "ntlmssp.auth.domain", "ntlmssp.auth.username") {
				doms, users := strings.Split(r[0], ","), strings.Split(get(r, 1), ",")
				for i := range users {
					d := ""
					if i < len(doms) && doms[i] != "NULL" {
						d = doms[i]
					}
					ts[d+`\`+users[i]] = true
				}
			}
			ours := map[string]bool{}
			for _, o := range ops {
				if o.Auth == "ntlm" && o.User != "" {
					ours[o.Domain+`\`+o.User] = true
				}
			}
			for a := range ours {
				if !ts[a] {
					t.Errorf("account %s not in tshark's NTLMSSP AUTHENTICATE messages %v", a, keys(ts))
				}
			}

			// Trees: replay's tree connects are the paths tshark saw
			// requested.
			trees := map[string]bool{}
			for _, r := range tsharkFields(t, file, "(smb2.cmd == 3 && smb2.flags.response == 0) || (smb.cmd == 0x75 && smb.flags.response == 0)", "smb2.tree", "smb.path") {
				for _, p := range strings.Split(r[0]+","+get(r, 1), ",") {
					trees[strings.ToLower(p)] = true
				}
			}
			for _, o := range ops {
				if o.Kind == "tree" && !trees[strings.ToLower(o.Target)] {
					t.Errorf("tree %s not requested according to tshark (%v)", o.Target, keys(trees))
				}
			}

			// svcctl: the service names and binary paths tshark decodes
			// in requests are the targets and commands replay reports.
			seen := map[string]bool{}
			for _, o := range ops {
				if o.Interface == "svcctl" {
					seen[strings.ToLower(o.Target)], seen[strings.ToLower(o.Command)] = true, true
					for _, f := range o.Fields {
						seen[strings.ToLower(f.Value)] = true
					}
				}
			}
			for _, r := range tsharkFields(t, file, "svcctl && dcerpc.pkt_type == 0", "svcctl.servicename", "svcctl.binarypathname") {
				for _, v := range strings.Split(r[0]+","+get(r, 1), ",") {
					if v != "" && !seen[strings.ToLower(v)] {
						t.Errorf("svcctl argument %q (tshark) not reported", v)
					}
				}
			}

			// DCE/RPC: the opnums of the requests, call by call. Where a
			// TCP segment was not captured both tools lose calls in
			// different ways, so only gap-free captures must match. An
			// SMB2 IOCTL response may echo the request it answers; tshark
			// dissects the echo as a second request, so responses are
			// left out.
			var want []string
			for _, r := range tsharkFields(t, file, "dcerpc.pkt_type == 0 && dcerpc.cn_flags.first_frag == 1 && !(smb2.flags.response == 1)", "dcerpc.opnum") {
				want = append(want, strings.Split(r[0], ",")...)
			}
			var got []string
			for _, o := range ops {
				if o.Kind == "rpc" && o.Opnum >= 0 {
					got = append(got, itoa(o.Opnum))
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if st.Gaps == 0 && strings.Join(want, " ") != strings.Join(got, " ") {
				t.Errorf("request opnums differ from tshark's:\ntshark %v\nreplay %v", want, got)
			}
		})
	}
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
