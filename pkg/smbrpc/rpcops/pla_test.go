package rpcops

import "testing"

// MS-PLA calls as the public Extract coercion PoC sends them with impacket:
// get_DataManager (opnum 57) on the activated IDataCollectorSet, then
// IDataManager::Extract (opnum 31) with two BSTRs.
func plaFixtures() []fixture {
	cab := `\\10.0.0.66\share\evil.cab`
	return []fixture{
		{name: "Extract UNC cabinet", iface: plaDataManagerUUID, opnum: 31,
			req: func(s *sb) { s.orpcThis().bstr(cab).bstr(`C:\Windows\Temp\plaext`) },
			want: want{op: "Extract", target: cab, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"coerced to": "10.0.0.66", "cabinet": cab, "destination": `C:\Windows\Temp\plaext`}}},
		{name: "Extract local cabinet", iface: plaDataManagerUUID, opnum: 31,
			req:  func(s *sb) { s.orpcThis().bstr(`C:\PerfLogs\a.cab`).bstr(`C:\PerfLogs\x`) },
			want: want{op: "Extract", target: `C:\PerfLogs\a.cab`}},
		{name: "SetCredentials", iface: plaDataCollectorSetUUID, opnum: 58,
			req:  func(s *sb) { s.orpcThis().bstr(`CORP\svc`).bstr("Secret123!") },
			want: want{op: "SetCredentials", target: `CORP\svc`, fields: map[string]string{"password": "set"}}},
		{name: "Commit", iface: plaDataCollectorSetUUID, opnum: 60,
			req:  func(s *sb) { s.orpcThis().bstr("Evil").bstr("").u32(3).null() },
			want: want{op: "Commit", target: "Evil", fields: map[string]string{"mode": "CreateNew|Modify"}}},
	}
}

func TestPlaFixtures(t *testing.T) {
	runNDRFixtures(t, plaFixtures())
	// The password is never shown.
	d := Decode(plaFixtures()[2].call(false))
	for _, f := range d.Fields {
		if f.Value == "Secret123!" {
			t.Fatalf("password shown in %q", f.Name)
		}
	}
}

// TestPlaExtractChain: the DataManager returned by get_DataManager keeps
// the DataCollectorSet class, so Extract on it names the class and the
// activation's abuse note leads there.
func TestPlaExtractChain(t *testing.T) {
	s := Session{Shared: NewShared()}
	set := mustUUID("0000b001-0000-0000-0000-000000000001")
	mgr := mustUUID("0000b002-0000-0000-0000-000000000002")
	s.Shared.add(set, mustUUID("03837521-098b-11d8-9414-505054503030"), plaDataCollectorSetUUID)
	c := fixture{iface: plaDataCollectorSetUUID, opnum: 57, req: func(s *sb) { s.orpcThis() },
		resp: func(s *sb) { s.orpcThat().mip(objrefStandard(plaDataManagerUUID, mgr)).status(0) }}.call(false)
	c.Object = set
	check(t, s.Decode(c), want{op: "get_DataManager", target: "DataCollectorSet (MS-PLA)",
		fields: map[string]string{"object": "IDataManager IPID {0000b002-0000-0000-0000-000000000002}"}})
	f := plaFixtures()[0]
	c = f.call(false)
	c.Interface, c.Object = [16]byte{}, mgr // no bind seen: the IPID names the interface
	w := f.want
	w.target = `\\10.0.0.66\share\evil.cab`
	d := s.Decode(c)
	check(t, d, w)
	if d.Interface != "IDataManager" {
		t.Errorf("interface %q from the IPID", d.Interface)
	}
}
