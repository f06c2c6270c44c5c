package rpcops

import "testing"

// The BackuprKey stubs were written by impacket 0.10.0's bkrp.BackuprKey
// (an encoder and GUID table independent of ours), e.g.
// BackuprKey(pguidActionAgent=BACKUPKEY_RETRIEVE_BACKUP_KEY_GUID,
// pDataIn=4 zero bytes, cbDataIn=4, dwParam=0).getData().
func TestMinorInterfaces(t *testing.T) {
	hx := func(s string) []byte { return mustHex(t, s) }
	for _, c := range []struct {
		name      string
		call      Call
		op        string
		target    string
		technique string
		noise     bool
	}{
		{"BackuprKey retrieve", Call{Interface: bkrpUUID, Opnum: 0,
			Request: hx("8af48f01baeac6408f6d72370240e96704000000000000000400000000000000")},
			"BackuprKey", "BACKUPKEY_RETRIEVE_BACKUP_KEY_GUID (the domain's public backup key)", "", true},
		{"BackuprKey restore", Call{Interface: bkrpUUID, Opnum: 0,
			Request: hx("640c2747c72f9b49ac5b0e37cdce899a04000000000000000400000000000000")},
			"BackuprKey", "BACKUPKEY_RESTORE_GUID (unwrap a secret)", "", true},
		{"BackuprKey sealed", Call{Interface: bkrpUUID, Opnum: 0}, "BackuprKey", "", "", true},
		{"BackuprKey truncated", Call{Interface: bkrpUUID, Opnum: 0, Request: hx("8af48f01baea")}, "BackuprKey", "", "", true},
		{"dssetup", Call{Interface: dsspUUID, Opnum: 0}, "DsRolerGetPrimaryDomainInformation", "", "", true},
		{"MimiBind", Call{Interface: mimicomUUID, Opnum: 0}, "MimiBind", "", "T1003", false},
		{"MimiCommand", Call{Interface: mimicomUUID, Opnum: 2}, "MimiCommand", "", "T1003", false},
		{"MimiUnbind", Call{Interface: mimicomUUID, Opnum: 1}, "MimiUnbind", "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decode(c.call)
			if d.Operation != c.op || d.Target != c.target || d.Technique != c.technique || d.Noise != c.noise {
				t.Errorf("got %q %q %q noise=%v, want %q %q %q noise=%v",
					d.Operation, d.Target, d.Technique, d.Noise, c.op, c.target, c.technique, c.noise)
			}
		})
	}
}
