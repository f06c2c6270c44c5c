package jsonl

// IndicatorMatch is one shared indicator that fired over the traffic
// (docs/intel.md): its inside hosts, when, how much, and the query that
// pulls the packets. Written by hunt and report with --indicators.
type IndicatorMatch struct {
	Type           string          `json:"type"`
	ID             string          `json:"id"`
	IndicatorID    string          `json:"indicator_id,omitempty"` // the STIX id; absent for a list entry
	IndicatorRef   string          `json:"indicator_ref"`          // the STIX id, or file:line
	Name           string          `json:"name"`
	Pattern        string          `json:"pattern"`
	Source         string          `json:"source"`
	Severity       string          `json:"severity"`
	Confidence     *int            `json:"confidence,omitempty"`
	IndicatorTypes []string        `json:"indicator_types"`
	Values         []string        `json:"values"`
	Via            []string        `json:"via"`
	FirstSeen      string          `json:"first_seen"`
	LastSeen       string          `json:"last_seen"`
	Connections    int             `json:"connections"`
	Bytes          uint64          `json:"bytes"`
	Hosts          []IndicatorHost `json:"hosts"`
	Query          string          `json:"query"`
}

// IndicatorHost is one inside host of an indicator match.
type IndicatorHost struct {
	Host        string          `json:"host"`
	FirstSeen   string          `json:"first_seen"`
	LastSeen    string          `json:"last_seen"`
	Connections int             `json:"connections"`
	Bytes       uint64          `json:"bytes"`
	Values      []string        `json:"values"`
	Via         []string        `json:"via"`
	Peers       []IndicatorPeer `json:"peers"`
	Query       string          `json:"query"`
}

// IndicatorPeer is one other end of a host's matching traffic.
type IndicatorPeer struct {
	Addr        string `json:"addr"`
	Port        uint16 `json:"port,omitempty"`
	Proto       string `json:"proto,omitempty"`
	Connections int    `json:"connections"`
	Named       bool   `json:"named"` // the indicator names this address (a destination to block)
}
