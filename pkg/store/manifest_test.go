package store

import (
	"os"
	"strings"
	"testing"
)

// The version-1 fixtures were written by the first writer of the layout
// (docs/format/object-store.md); readers of later versions must still
// accept them.
const fixtureKey = "sensors/sensor-a/2026-03-03/20260303T000000Z_20260303T000003Z_imp-00000000.manifest"

func TestManifestFixtureV1(t *testing.T) {
	b, err := os.ReadFile("testdata/objstore-v1/nwhealth-store.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkMarker(b); err != nil {
		t.Fatal(err)
	}
	k, ok := parseObjectKey(fixtureKey)
	if !ok {
		t.Fatal("fixture key not recognised")
	}
	b, err = os.ReadFile("testdata/objstore-v1/shard.manifest")
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(b, k.sensor, k.sf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Blocks == 0 || m.Packets == 0 || m.object(extIndex).Size == 0 || m.TrailerOffset == 0 {
		t.Fatalf("%+v", m)
	}
	// Every field is checked: a changed one is refused.
	for _, c := range []struct{ from, to string }{
		{`"version": 1`, `"version": 2`},
		{`"sensor": "sensor-a"`, `"sensor": "sensor-b"`},
		{`"format": "nwhealth-shard-manifest"`, `"format": "x"`},
		{`.idx"`, `.flows"`},
		{`"blocks"`, `"unknown": 1, "blocks"`},
		{`"size": 2600`, `"size": 1073741825`},  // an index larger than 1 GiB
		{`"size": 24173`, `"size": 1073741825`}, // a flow file larger than 1 GiB
		{`"size": 315799`, `"size": -1`},
	} {
		bad := strings.Replace(string(b), c.from, c.to, 1)
		if bad == string(b) {
			t.Fatalf("%q not in the fixture", c.from)
		}
		if _, err := decodeManifest([]byte(bad), k.sensor, k.sf); err == nil {
			t.Errorf("%s -> %s accepted", c.from, c.to)
		}
	}
}

func TestParseObjectKey(t *testing.T) {
	for key, ok := range map[string]bool{
		fixtureKey: true,
		"sensors/sensor-a/2026-03-03/20260302T235945Z_20260303T000003Z_imp-00000000.shard": true,
		"sensors/sensor-a/2026-03-02/20260302T235945Z_20260303T000003Z_imp-00000000.shard": false, // day is not LAST's
		"sensors/-a/2026-03-03/20260302T235945Z_20260303T000003Z_imp-00000000.shard":       false,
		"sensors/a/2026-03-03/x/20260302T235945Z_20260303T000003Z_imp-00000000.shard":      false,
		"sensors/a/2026-03-03/imp-00000000.shard.open":                                     false,
		"sensors/a/2026-03-03/20260302T235945Z_20260303T000003Z_imp-00000000.tmp":          false,
		"sensors/../2026-03-03/20260302T235945Z_20260303T000003Z_imp-00000000.shard":       false,
	} {
		if _, got := parseObjectKey(key); got != ok {
			t.Errorf("%s: %v", key, got)
		}
	}
}

func TestSensorNames(t *testing.T) {
	for name, ok := range map[string]bool{"a": true, "sensor-01.dc2": true, "-a": false, "": false, "a/b": false, "a b": false, strings.Repeat("a", 64): false} {
		if ValidSensor(name) != ok {
			t.Errorf("%q", name)
		}
	}
	if !ValidSensor(DefaultSensor()) {
		t.Errorf("default sensor %q", DefaultSensor())
	}
}

func FuzzDecodeManifest(f *testing.F) {
	if b, err := os.ReadFile("testdata/objstore-v1/shard.manifest"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"format":"nwhealth-shard-manifest","version":1}`))
	k, _ := parseObjectKey(fixtureKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b, k.sensor, k.sf)
		if err == nil && (len(m.Objects) != 3 || m.TrailerOffset > m.Objects[0].Size) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func FuzzParseObjectKey(f *testing.F) {
	f.Add(fixtureKey)
	f.Add("sensors/a/2026-03-03/20260302T235945Z_20260303T000003Z_c01-00000012.idx")
	f.Fuzz(func(t *testing.T, key string) {
		k, ok := parseObjectKey(key)
		if ok && objectKey(k.sensor, k.sf, k.ext) != key {
			t.Fatalf("%q parsed but rebuilds as %q", key, objectKey(k.sensor, k.sf, k.ext))
		}
	})
}
