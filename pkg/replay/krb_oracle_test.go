package replay

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
)

// The Kerberos lab (scripts/krblab/run.sh: a Samba AD DC and its real
// clients, testdata/SOURCES.md): its keytab opens every ticket, SMB3
// session and sealed call, and tshark, given the same keytab, agrees on
// each account, operation and byte count.

func krblab(t *testing.T, name string) string {
	return filepath.Join(testenv.ModuleRoot(t), "testdata", "krblab", name)
}

// krblabKeys reads the keytab of the lab run that recorded file: the
// RC4-only run's for the captures named _rc4.
func krblabKeys(t *testing.T, file string) *krbseal.Keys {
	t.Helper()
	k, _, err := krbseal.Load(krblabKeytab(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func krblabKeytab(t *testing.T, file string) string {
	if strings.HasSuffix(file, "_rc4.pcap") {
		return krblab(t, "krblab_rc4.keytab")
	}
	return krblab(t, "krblab.keytab")
}

func krbOpts(t *testing.T, file string) []string {
	return []string{"-o", "kerberos.decrypt:TRUE", "-o", "kerberos.file:" + krblabKeytab(t, file)}
}

// tsharkClients maps each client port of an AP-REQ outside the KDC
// exchanges to the client name tshark read in its decrypted ticket.
func tsharkClients(t *testing.T, file string) map[int]string {
	m := map[int]string{}
	for _, r := range tsharkFieldsWith(t, krbOpts(t, file), file, "kerberos.msg_type == 14 && !(tcp.port == 88)", "tcp.srcport", "kerberos.CNameString", "kerberos.crealm") {
		port, _ := strconv.Atoi(r[0])
		if len(r) < 3 || r[1] == "" {
			t.Fatalf("tshark did not open the ticket of port %d: %q", port, r)
		}
		name, _, _ := strings.Cut(r[1], ",")
		realm, _, _ := strings.Cut(r[2], ",")
		m[port] = name + "@" + realm
	}
	return m
}

// checkAccounts: every Kerberos operation of a connection whose AP-REQ
// tshark opened names the same client, read from the ticket.
func checkAccounts(t *testing.T, ops []Operation, want map[int]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("tshark saw no AP-REQ")
	}
	seen := map[int]bool{}
	for _, o := range ops {
		w, ok := want[int(o.SrcPort)]
		if !ok || o.Auth != "kerberos" {
			continue
		}
		seen[int(o.SrcPort)] = true
		if got := o.User + "@" + o.Domain; got != w || o.AccountVia != viaKeytab {
			t.Errorf("%s %s from port %d: account %s via %q, tshark %s", o.Interface, o.Operation, o.SrcPort, got, o.AccountVia, w)
		}
	}
	for port := range want {
		if !seen[port] {
			t.Errorf("no operation of the Kerberos connection from port %d (tshark: %s)", port, want[port])
		}
	}
}

// Sealed SAMR and DRSUAPI (DCSync): the opnums of every call tshark
// decrypted, connection by connection, are those replay decrypted and
// decoded, and the strings both read inside the stubs agree.
func TestKerberosSealedRPCOracle(t *testing.T) {
	for _, c := range []struct {
		file    string
		strings string // a field tshark reads only in the decrypted stub
		op      string // the operation whose field holds it
		ours    string
	}{
		{"samr_kerberos_sealed.pcap", "samr.samr_LookupDomain.domain_name", "LookupDomainInSamServer", "domain"},
		{"samr_kerberos_sealed_rc4.pcap", "samr.samr_LookupDomain.domain_name", "LookupDomainInSamServer", "domain"},
		{"dcsync_kerberos.pcap", "drsuapi.DsReplicaSyncRequest1Info.nc_dn", "DRSGetNCChanges", "naming context"},
	} {
		t.Run(c.file, func(t *testing.T) {
			file := krblab(t, c.file)
			ops, st := replayWith(t, file, Config{Keys: krblabKeys(t, file)}, nil, nil)
			checkAccounts(t, ops, tsharkClients(t, file))
			var want, got []string
			var wantStr, gotStr []string
			for _, r := range tsharkFieldsWith(t, krbOpts(t, file), file, "dcerpc.pkt_type == 0 && dcerpc.auth_level == 6 && (samr || drsuapi)", "tcp.srcport", "dcerpc.opnum", c.strings) {
				want = append(want, r[0]+" "+r[1])
				if len(r) > 2 && r[2] != "" {
					wantStr = append(wantStr, r[2])
				}
			}
			sealed := 0
			for _, o := range ops {
				if !o.Encrypted {
					continue
				}
				sealed++
				if o.Sealed != SealedDecrypted {
					t.Errorf("%s %s: sealed %q %v", o.Interface, o.Operation, o.Sealed, o.Fields)
				}
				got = append(got, fmt.Sprintf("%d %d", o.SrcPort, o.Opnum))
				if v := o.Field(c.ours); v != "" && o.Operation == c.op {
					gotStr = append(gotStr, v)
				}
			}
			if len(want) < 2 || strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("decrypted calls (port opnum):\n ours   %v\n tshark %v", got, want)
			}
			if len(wantStr) == 0 || strings.Join(gotStr, "|") != strings.Join(wantStr, "|") {
				t.Errorf("%s: ours %q, tshark %q", c.strings, gotStr, wantStr)
			}
			if st.KerberosDecrypted == 0 || st.KerberosUndecryptable != 0 || int(st.DecryptedCalls) != sealed {
				t.Errorf("stats %+v, %d sealed calls", st, sealed)
			}
		})
	}
}

// The SMB3-encrypted Kerberos session: tshark, given the session key MS-SMB2
// takes from the GSS context (the acceptor's subkey from the AP-REP tshark
// decrypted), decrypts the same session; its writes and reads are the
// files and byte counts replay reports.
func TestKerberosSMB3Oracle(t *testing.T) {
	for _, name := range []string{"smb3_kerberos.pcap", "smb3_kerberos_rc4.pcap"} {
		t.Run(name, func(t *testing.T) { kerberosSMB3Oracle(t, krblab(t, name)) })
	}
}

func kerberosSMB3Oracle(t *testing.T, file string) {
	ops, st := replayWith(t, file, Config{Keys: krblabKeys(t, file)}, nil, nil)
	checkAccounts(t, ops, tsharkClients(t, file))
	var uat []string
	for _, r := range tsharkFieldsWith(t, krbOpts(t, file), file, "smb2.cmd == 1 && smb2.flags.response == 1 && kerberos.msg_type == 15", "smb2.sesid", "kerberos.keyvalue") {
		id, err := strconv.ParseUint(strings.TrimPrefix(r[0], "0x"), 16, 64)
		key, _, _ := strings.Cut(r[1], ",")
		if err != nil || len(key) < 32 {
			t.Fatalf("session setup response %q", r)
		}
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], id)
		uat = append(uat, "-o", fmt.Sprintf(`uat:smb2_seskey_list:%s,%s,"",""`, hex.EncodeToString(le[:]), key[:32]))
	}
	if len(uat) == 0 {
		t.Fatal("tshark read no acceptor subkey")
	}
	// Writes and reads by byte count, and the files the session
	// created (opened) by name.
	var want []string
	names := map[string]bool{}
	for _, r := range tsharkFieldsWith(t, uat, file, "(smb2.cmd == 9 && smb2.flags.response == 0) || (smb2.cmd == 8 && smb2.flags.response == 1) || (smb2.cmd == 5 && smb2.flags.response == 0)", "smb2.cmd", "smb2.write_length", "smb2.olb.length", "smb2.filename") {
		switch r[0] {
		case "9":
			want = append(want, "write file "+r[1])
		case "8":
			want = append(want, "read file "+r[2]) // the read blob's length
		case "5":
			if r[3] != "" {
				names[r[3]] = true
			}
		}
	}
	var got []string
	for _, o := range ops {
		if o.Kind != "file" {
			continue
		}
		if o.Decrypted != decryptedSMB3 {
			t.Errorf("%s %s: not from the decrypted session", o.Operation, o.Target)
		}
		got = append(got, fmt.Sprintf("%s %d", o.Operation, o.Size))
		if name := o.Target[strings.LastIndex(o.Target, `\`)+1:]; !names[name] {
			t.Errorf("%s %s: tshark saw no create of %q (%v)", o.Operation, o.Target, name, names)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("file operations:\n ours   %q\n tshark %q", got, want)
	}
	if st.SMB3Decrypted == 0 || st.SMB3Undecryptable != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A wrong key opens nothing and decodes nothing: tickets are counted
// undecryptable, sealed calls and the SMB3 session say why, and nothing
// else changes from a run without keys. Keys of another etype only are
// no keys at all: the output is that of a run without them.
func TestKerberosWrongOrMissingKey(t *testing.T) {
	wrong, err := krbseal.Parse(strings.NewReader("KRBLAB.TEST\\DC01$:aes256-cts-hmac-sha1-96:" + strings.Repeat("11", 32) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := krbseal.Parse(strings.NewReader("DC01$:1000:aad3b435b51404eeaad3b435b51404ee:" + strings.Repeat("22", 16) + ":::\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"smb3_kerberos.pcap", "samr_kerberos_sealed.pcap", "dcsync_kerberos.pcap", "smb3_kerberos_rc4.pcap", "samr_kerberos_sealed_rc4.pcap"} {
		t.Run(name, func(t *testing.T) {
			file := krblab(t, name)
			plain, _ := replayWith(t, file, Config{}, nil, nil)
			wrong, other := wrong, other
			if strings.HasSuffix(name, "_rc4.pcap") {
				wrong, other = other, wrong // an rc4-hmac key is the wrong one there, the AES one of another etype
			}
			ops, st := replayWith(t, file, Config{Keys: wrong}, nil, nil)
			if st.KerberosDecrypted != 0 || st.KerberosUndecryptable == 0 || st.SMB3Decrypted != 0 || st.DecryptedCalls != 0 {
				t.Errorf("wrong key: stats %+v", st)
			}
			if len(ops) != len(plain) {
				t.Fatalf("wrong key: %d operations, %d without keys", len(ops), len(plain))
			}
			for i, o := range ops {
				if o.AccountVia == viaKeytab || o.Decrypted != "" || o.Sealed == SealedDecrypted {
					t.Errorf("wrong key opened %s %s (%s, %q)", o.Interface, o.Operation, o.AccountVia, o.Decrypted)
				}
				if o.Operation != plain[i].Operation || o.User != plain[i].User {
					t.Errorf("wrong key: operation %d is %s by %s, without keys %s by %s", i, o.Operation, o.User, plain[i].Operation, plain[i].User)
				}
				if o.Encrypted && o.Kind == "rpc" && (o.Sealed != SealedUndecryptable || !strings.Contains(o.Field("sealed"), "no key opens the ticket")) {
					t.Errorf("wrong key: sealed %s %s: %q %v", o.Interface, o.Operation, o.Sealed, o.Fields)
				}
				if o.Kind == "smb3-encrypted" && !strings.Contains(fmt.Sprint(o.Fields), "no key opens the ticket") {
					t.Errorf("wrong key: the encrypted session does not say why: %v", o.Fields)
				}
			}
			ops, st = replayWith(t, file, Config{Keys: other}, nil, nil)
			if st.KerberosDecrypted != 0 || st.KerberosUndecryptable != 0 {
				t.Errorf("keys of another etype: stats %+v", st)
			}
			if fmt.Sprint(ops) != fmt.Sprint(plain) {
				t.Errorf("keys of another etype changed the output:\n%v\n%v", ops, plain)
			}
		})
	}
}

// WinRM with Kerberos message encryption (pywinrm's envelopes over MIT's
// gss_wrap_iov, scripts/krblab/winrm_kerberos.py): tshark names the account
// but does not open the bodies, so the known plaintext is the oracle: the
// command the lab ran and the output its service returned, the sequence
// of actions pywinrm sends, and every part's OriginalContent length (in
// clear, counted by the WinRM decoder) matched by what was opened.
func TestKerberosWinRM(t *testing.T) {
	file := krblab(t, "winrm_kerberos.pcap")
	ops, st := replayWith(t, file, Config{Keys: krblabKeys(t, file)}, nil, nil)
	checkAccounts(t, ops, tsharkClients(t, file))
	var got []string
	for _, o := range ops {
		got = append(got, o.Operation+" "+o.Command+o.Field("output"))
		if o.Decrypted != "winrm" {
			t.Errorf("%s: not decrypted (%q) %v", o.Operation, o.Decrypted, o.Fields)
		}
	}
	want := "Create shell |Command whoami /all|Receive krblab\\alice|Signal terminate |Delete shell |session " // the session closes last
	if strings.Join(got, "|") != want {
		t.Errorf("operations\n %q\nwant\n %q", strings.Join(got, "|"), want)
	}
	if st.WinRMDecrypted != 10 || st.WinRMUndecryptable != 0 || st.DecodeErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	wrong, _ := krbseal.Parse(strings.NewReader("KRBLAB.TEST\\DC01$:aes256-cts-hmac-sha1-96:" + strings.Repeat("11", 32) + "\n"))
	ops, st = replayWith(t, file, Config{Keys: wrong}, nil, nil)
	if st.WinRMDecrypted != 0 || st.WinRMUndecryptable != 10 || len(ops) != 1 || ops[0].Sealed != SealedUndecryptable {
		t.Errorf("wrong key: stats %+v, %d operations", st, len(ops))
	}
}
