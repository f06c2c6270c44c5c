package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/sensor"
)

// Object store layout (docs/format/object-store.md).
const (
	markerKey       = "nwhealth-store.json"
	markerFormat    = "nwhealth-object-store"
	manifestFormat  = "nwhealth-shard-manifest"
	objectVersion   = 1
	sensorsDir      = "sensors/"
	extManifest     = ".manifest"
	dayLayout       = "2006-01-02"
	maxManifestSize = 64 << 10
	maxMarkerSize   = 4 << 10
)

// ErrObjectVersion means an object store layout or manifest of a version
// this nwhealth does not know.
var ErrObjectVersion = errors.New("unsupported object store version")

// ValidSensor reports whether name may name a sensor (sensor.Valid: one
// definition for the bucket's layout and the flow database).
func ValidSensor(name string) bool { return sensor.Valid(name) }

// DefaultSensor is the host name made a valid sensor name (sensor.Default).
func DefaultSensor() string { return sensor.Default() }

// partitionOf is the day partition of a sealed shard: the UTC day of its
// last packet second.
func partitionOf(sf ShardFile) string { return sf.Last.UTC().Format(dayLayout) }

// objectKey is the key (under the store's prefix) of one of a shard's
// objects; ext is extShard, extIndex, extFlows or extManifest.
func objectKey(sensor string, sf ShardFile, ext string) string {
	return sensorsDir + sensor + "/" + partitionOf(sf) + "/" + sf.stem() + ext
}

// objectKeyParts is a listed key understood.
type objectKeyParts struct {
	sensor string
	day    string
	stem   string
	ext    string
	sf     ShardFile // parsed from the stem (sealed)
}

// parseObjectKey recognises the keys of shard objects; ok is false for
// any other key. Every part is checked, and the day must be the shard's.
func parseObjectKey(key string) (objectKeyParts, bool) {
	var p objectKeyParts
	rest, ok := strings.CutPrefix(key, sensorsDir)
	if !ok {
		return p, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !ValidSensor(parts[0]) {
		return p, false
	}
	p.sensor, p.day = parts[0], parts[1]
	name := parts[2]
	for _, ext := range []string{extShard, extIndex, extFlows, extManifest} {
		if strings.HasSuffix(name, ext) && !strings.HasSuffix(name, extOpen) {
			p.ext, p.stem = ext, strings.TrimSuffix(name, ext)
			break
		}
	}
	if p.ext == "" {
		return p, false
	}
	sf, ok := parseName("", p.stem+extShard)
	if !ok || !sf.Sealed || partitionOf(sf) != p.day {
		return p, false
	}
	sf.Base = p.stem
	p.sf = sf
	return p, true
}

// Manifest describes a shard's objects (docs/format/object-store.md).
type Manifest struct {
	Format        string           `json:"format"`
	Version       int              `json:"version"`
	Sensor        string           `json:"sensor"`
	Shard         string           `json:"shard"`
	First         time.Time        `json:"first"`
	Last          time.Time        `json:"last"`
	Blocks        int              `json:"blocks"`
	Packets       uint64           `json:"packets"`
	RawBytes      uint64           `json:"raw_bytes"`
	TrailerOffset int64            `json:"trailer_offset"`
	Objects       []ManifestObject `json:"objects"`
	Uploaded      time.Time        `json:"uploaded"`
}

// ManifestObject is one object of a shard.
type ManifestObject struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// manifestExts are the objects a manifest lists, in order.
var manifestExts = []string{extShard, extIndex, extFlows}

// encode writes the manifest as JSON.
func (m *Manifest) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// object returns the entry for ext.
func (m *Manifest) object(ext string) ManifestObject {
	for i, e := range manifestExts {
		if e == ext && i < len(m.Objects) {
			return m.Objects[i]
		}
	}
	return ManifestObject{}
}

// decodeManifest reads and checks a manifest for the shard stem of
// sensor: format, version, names, sizes and digests, times inside the
// name's seconds. Nothing in it is trusted before these checks.
func decodeManifest(b []byte, sensor string, sf ShardFile) (*Manifest, error) {
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes, more than %d", len(b), maxManifestSize)
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if head.Format != manifestFormat {
		return nil, fmt.Errorf("manifest: format %q, not %s", head.Format, manifestFormat)
	}
	if head.Version < 1 || head.Version > objectVersion {
		return nil, fmt.Errorf("manifest: %w %d", ErrObjectVersion, head.Version)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	stem := sf.stem()
	switch {
	case m.Sensor != sensor:
		return nil, fmt.Errorf("manifest names sensor %q, its key %q", m.Sensor, sensor)
	case m.Shard != stem:
		return nil, fmt.Errorf("manifest names shard %q, its key %q", m.Shard, stem)
	case len(m.Objects) != len(manifestExts):
		return nil, fmt.Errorf("manifest lists %d objects, not %d", len(m.Objects), len(manifestExts))
	case m.First.Before(sf.First) || m.Last.After(sf.Last) || m.Last.Before(m.First):
		return nil, fmt.Errorf("manifest times %s..%s outside the shard name's", m.First.Format(time.RFC3339Nano), m.Last.Format(time.RFC3339Nano))
	case m.Blocks < 0 || m.Blocks > 1<<24:
		return nil, fmt.Errorf("manifest: %d blocks out of bounds", m.Blocks)
	}
	for i, ext := range manifestExts {
		o := m.Objects[i]
		if o.Name != stem+ext {
			return nil, fmt.Errorf("manifest object %d is %q, want %q", i, o.Name, stem+ext)
		}
		// An index or flow file is read whole (into memory, or into the
		// cache), so it is held to what a local one may be: a hostile
		// bucket's manifest and listing agreeing on a huge size take no
		// memory or disk.
		limit := int64(1 << 50)
		switch ext {
		case extIndex:
			limit = maxIndexFile
		case extFlows:
			limit = maxFlowFile
		}
		if o.Size < 0 || o.Size > limit {
			return nil, fmt.Errorf("manifest: %s size %d out of bounds (at most %d)", o.Name, o.Size, limit)
		}
		if d, err := hex.DecodeString(o.SHA256); err != nil || len(d) != 32 || strings.ToLower(o.SHA256) != o.SHA256 {
			return nil, fmt.Errorf("manifest: %s sha256 %q is not 64 lower-case hex digits", o.Name, o.SHA256)
		}
	}
	if sz := m.Objects[0].Size; m.TrailerOffset < 0 || m.TrailerOffset > sz {
		return nil, fmt.Errorf("manifest: trailer offset %d outside the shard's %d bytes", m.TrailerOffset, sz)
	}
	return &m, nil
}

// marker is the layout marker object.
type marker struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

func checkMarker(b []byte) error {
	var m marker
	if len(b) > maxMarkerSize || json.Unmarshal(b, &m) != nil || m.Format != markerFormat {
		return fmt.Errorf("%s is not an nwhealth layout marker", markerKey)
	}
	if m.Version < 1 || m.Version > objectVersion {
		return fmt.Errorf("%s: %w %d", markerKey, ErrObjectVersion, m.Version)
	}
	return nil
}

func markerBytes() []byte {
	b, _ := json.Marshal(marker{Format: markerFormat, Version: objectVersion})
	return append(b, '\n')
}
