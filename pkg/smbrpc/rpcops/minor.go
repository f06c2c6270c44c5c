package rpcops

import "strings"

// Interfaces whose calls carry little to decode but whose operations a
// responder should see by name rather than as "opnum N": the DPAPI
// backup-key service (MS-BKRP, always sealed), the directory role query
// every domain member makes (MS-DSSP), and mimikatz's own RPC server
// (kull_m_rpc "mimicom", started by rpc::server), whose commands are
// encrypted by mimikatz itself with a key agreed in MimiBind: a MimiBind
// from another host says mimikatz is being driven remotely.
var (
	bkrpUUID    = mustUUID("3dde7c30-165d-11d1-ab8f-00805f14db40")
	dsspUUID    = mustUUID("3919286a-b10c-11d0-9ba8-00c04fd92ef5")
	mimicomUUID = mustUUID("17fc11e9-c258-4b8d-8d07-2f4125156244")
)

// bkrpActions are BackuprKey's pguidActionAgent values (MS-BKRP 3.1.4.1).
var bkrpActions = map[[16]byte]string{
	mustUUID("7f752b10-178e-11d1-ab8f-00805f14db40"): "BACKUPKEY_BACKUP_GUID (wrap a secret)",
	mustUUID("7fe94d50-178e-11d1-ab8f-00805f14db40"): "BACKUPKEY_RESTORE_GUID_WIN2K (unwrap a secret)",
	mustUUID("018ff48a-eaba-40c6-8f6d-72370240e967"): "BACKUPKEY_RETRIEVE_BACKUP_KEY_GUID (the domain's public backup key)",
	mustUUID("47270c64-2fc7-499b-ac5b-0e37cdce899a"): "BACKUPKEY_RESTORE_GUID (unwrap a secret)",
}

func init() { builders = append(builders, registerMinor) }

func registerMinor() {
	// Every DPAPI client asks the DC to wrap and unwrap its master keys:
	// domain chatter. Stealing the backup key itself goes through LSA
	// (LsarRetrievePrivateData of G$BCKUPKEY_*), decoded in lsa.go.
	register(&iface{name: "BackupKey", uuid: bkrpUUID, names: []string{"BackuprKey"},
		ops: map[uint16]op{0: {noise: true, req: bkrpRequest}}})
	register(&iface{name: "dssetup", uuid: dsspUUID, names: []string{"DsRolerGetPrimaryDomainInformation"},
		ops: map[uint16]op{0: {noise: true}}})
	register(&iface{name: "mimicom", uuid: mimicomUUID, names: []string{"MimiBind", "MimiUnbind", "MimiCommand"},
		ops: map[uint16]op{
			0: {technique: "T1003", phase: PhaseCredAccess},
			1: {noise: true},
			2: {technique: "T1003", phase: PhaseCredAccess},
		}})
}

// bkrpRequest names BackuprKey's action: its first argument is a
// reference pointer to a GUID, so the GUID's bytes open the stub.
func bkrpRequest(x *dc) {
	g := x.r.UUID()
	if x.r.Err() != nil {
		return
	}
	a, ok := bkrpActions[g]
	if !ok {
		a = "{" + strings.ToUpper(UUIDString(g)) + "}"
	}
	x.d.Target = a
	x.add("action", a)
}
