package jsonl

// Flow is one flow record (flows --format jsonl): a TCP connection or a
// UDP/ICMP exchange, with Zeek conn.log's names for the counters.
type Flow struct {
	Type       string   `json:"type"`
	TS         string   `json:"ts"`
	End        string   `json:"end"`
	Duration   float64  `json:"duration"`
	Proto      string   `json:"proto"`
	Orig       string   `json:"orig"`
	OrigPort   uint16   `json:"orig_port"`
	Resp       string   `json:"resp"`
	RespPort   uint16   `json:"resp_port"`
	VLAN       uint16   `json:"vlan,omitempty"`
	OrigPkts   uint64   `json:"orig_pkts"`
	RespPkts   uint64   `json:"resp_pkts"`
	OrigBytes  uint64   `json:"orig_ip_bytes"`
	RespBytes  uint64   `json:"resp_ip_bytes"`
	OrigData   uint64   `json:"orig_bytes"`
	RespData   uint64   `json:"resp_bytes"`
	State      string   `json:"conn_state,omitempty"`
	OrigFlags  string   `json:"orig_flags,omitempty"`
	RespFlags  string   `json:"resp_flags,omitempty"`
	Name       string   `json:"name,omitempty"`
	NameSource string   `json:"name_source,omitempty"`
	Answers    []string `json:"answers,omitempty"`
	Partial    bool     `json:"partial,omitempty"`
	// Version 2 of the flow format: the first HTTP request's target, the
	// destination asked of a proxy, and the bursts inside the flow (their
	// starts when there is more than one; with more than 64, the first and
	// last 32).
	HTTPTarget  string   `json:"http_target,omitempty"`
	ProxyDest   string   `json:"proxy_dest,omitempty"`
	Bursts      uint32   `json:"bursts,omitempty"`
	BurstStarts []string `json:"burst_starts,omitempty"`
	// Version 3: what the server's TLS certificate said when seen in clear.
	TLSNoSNI         bool   `json:"tls_no_sni,omitempty"`
	CertSeen         bool   `json:"cert_seen,omitempty"`
	CertSelfSigned   bool   `json:"cert_self_signed,omitempty"`
	CertIssuerAbsent bool   `json:"cert_issuer_absent,omitempty"`
	CertSubjectCN    string `json:"cert_subject_cn,omitempty"`
	CertIssuerCN     string `json:"cert_issuer_cn,omitempty"`
}

// Import is one input file of an import run.
type Import struct {
	Type    string         `json:"type"`
	File    string         `json:"file"`
	Packets uint64         `json:"packets"`
	Damage  []ImportDamage `json:"damage,omitempty"`
	Error   string         `json:"error,omitempty"` // the input could not be read (the rest were imported)
}

// ImportDamage is one damaged place of an input file, skipped.
type ImportDamage struct {
	Offset int64  `json:"offset"` // in the decompressed stream for gzip/zstd
	Reason string `json:"reason"`
}

// ImportSummary is what an import run stored in all.
type ImportSummary struct {
	Type     string `json:"type"`
	Packets  uint64 `json:"packets"`
	RawBytes uint64 `json:"raw_bytes"`
	Stored   uint64 `json:"stored_bytes"`
	Sealed   int    `json:"shards_sealed"`
	Removed  int    `json:"shards_removed"`
	// Frames stored without an IP header read, and of 802.11 frames
	// those encrypted and those that carry none.
	NoIP           uint64 `json:"no_ip,omitempty"`
	WiFiProtected  uint64 `json:"wifi_protected,omitempty"`
	WiFiManagement uint64 `json:"wifi_management,omitempty"`
	WiFiControl    uint64 `json:"wifi_control,omitempty"`
	WiFiNull       uint64 `json:"wifi_null,omitempty"`
	WiFiAMSDU      uint64 `json:"wifi_amsdu,omitempty"`
}

// Shard is one shard of a store (store info --shards).
type Shard struct {
	Type        string `json:"type"`
	Store       string `json:"store"`
	Name        string `json:"name"`
	Sealed      bool   `json:"sealed"`
	First       string `json:"first"`
	Last        string `json:"last"`
	Blocks      int    `json:"blocks"`
	Packets     uint64 `json:"packets"`
	RawBytes    uint64 `json:"raw_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	IndexBytes  int64  `json:"index_bytes"`
	FlowBytes   int64  `json:"flow_bytes"`
}

// Damage is one damaged place store info found.
type Damage struct {
	Type   string `json:"type"`
	Store  string `json:"store"`
	Shard  string `json:"shard"`
	Block  int    `json:"block"`
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

// Store is a store's summary (store info).
type Store struct {
	Type        string `json:"type"`
	Store       string `json:"store"`
	Shards      int    `json:"shards"`
	First       string `json:"first"`
	Last        string `json:"last"`
	Packets     uint64 `json:"packets"`
	RawBytes    uint64 `json:"raw_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	IndexBytes  int64  `json:"index_bytes"`
	FlowBytes   int64  `json:"flow_bytes"`
	Verified    bool   `json:"verified"`
	Damaged     int    `json:"damaged"`
}

// Capture is capture's counters: TypeCaptureProgress every --stats-every,
// TypeCaptureSummary once at the end.
type Capture struct {
	Type          string          `json:"type"`
	Time          string          `json:"time"`
	Interface     string          `json:"interface"`
	Packets       uint64          `json:"packets"`
	Bytes         uint64          `json:"bytes"`
	KernelPackets uint64          `json:"kernel_packets"`
	KernelDrops   uint64          `json:"kernel_drops"`
	FreezeQueue   uint64          `json:"freeze_queue"`
	Workers       []CaptureWorker `json:"workers"`
	// Flow tables that filled up (a flood of new flows), summary only.
	FlowsEvicted    uint64 `json:"flows_evicted,omitempty"`
	FlowsUnrecorded uint64 `json:"flows_unrecorded,omitempty"`
}

// CaptureWorker is one capture worker's counters.
type CaptureWorker struct {
	Packets     uint64 `json:"packets"`
	KernelDrops uint64 `json:"kernel_drops"`
}
