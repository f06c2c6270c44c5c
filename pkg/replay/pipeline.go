package replay

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Config bounds the pipeline's memory and sets its timeouts. Zero fields
// take the defaults below.
type Config struct {
	IdleTimeout     time.Duration // a connection with no packet for this long is closed (default 5m)
	CallTimeout     time.Duration // a call with no reply for this long is reported half-open (default 30s)
	MaxStreamBuffer int           // bytes buffered per stream direction (default 16 MiB: an SMB2 write of 8 MiB fits)
	MaxBuffered     int64         // bytes buffered across all streams (default 512 MiB)
	MaxConns        int           // connections tracked at once (default 262144)
	MaxOutOfOrder   int           // out-of-order bytes held per direction before a hole is declared (default 1 MiB)
	// Secrets open NTLM-sealed DCE/RPC of the accounts they name
	// (docs/format/ntlm-secrets.md); nil leaves sealed calls by name.
	Secrets *ntlmseal.Secrets
	// Keys open the Kerberos tickets of the services they belong to
	// (docs/format/keytab.md): the ticket's client names the account,
	// and its session keys open Kerberos SMB3 sessions and sealed
	// DCE/RPC. nil leaves Kerberos as the KDC exchanges show it.
	Keys *krbseal.Keys
}

func (c *Config) defaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.MaxStreamBuffer <= 0 {
		c.MaxStreamBuffer = 16 << 20
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = 512 << 20
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1 << 18
	}
	if c.MaxOutOfOrder <= 0 {
		c.MaxOutOfOrder = 1 << 20
	}
}

// Stats counts what the pipeline saw and what it had to give up on; live
// mode prints it periodically, offline mode at the end.
type Stats struct {
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	NotIP        uint64 `json:"not_ip"`
	Conns        uint64 `json:"conns"`         // TCP connections followed (SMB, DCE/RPC, Kerberos)
	ConnsExpired uint64 `json:"conns_expired"` // closed by the idle timeout rather than FIN/RST
	ConnsEvicted uint64 `json:"conns_evicted"` // dropped to stay under MaxConns
	CallsExpired uint64 `json:"calls_expired"` // reported without a reply
	Gaps         uint64 `json:"gaps"`          // holes inside TCP streams (bytes lost from the capture)
	// The edges of a capture are no damage: connections already open when
	// it began (their start, binds and logons were not seen), still open
	// when it ended, and bytes held out of order at the end waiting for a
	// segment that would have come after it. (Omitted when zero: fields
	// added to a JSON Lines record are optional, docs/format/jsonl.md.)
	ConnsMidstream uint64   `json:"conns_midstream,omitempty"`
	ConnsOpenAtEnd uint64   `json:"conns_open_at_end,omitempty"`
	GapsAtEnd      uint64   `json:"gaps_at_end,omitempty"`
	GapPlaces      []string `json:"gap_places,omitempty"` // the first inside gaps: connection, direction, time, bytes
	Resyncs        uint64   `json:"resyncs"`              // framer re-found a message boundary after a gap or garbage
	DroppedBytes   uint64   `json:"dropped_bytes"`        // discarded: over the buffer caps, or skipped after a gap or garbage inside a stream
	// UnframedBytes were skipped before a stream's first message
	// boundary: a connection the input joined mid-message, or one on an
	// SMB, RPC or Kerberos port that carries another protocol. An edge,
	// not damage: nothing the capture held was lost.
	UnframedBytes  uint64 `json:"unframed_bytes,omitempty"`
	DecodeErrors   uint64 `json:"decode_errors"`   // damaged messages skipped
	Operations     uint64 `json:"operations"`      // operations emitted
	EncryptedCalls uint64 `json:"encrypted_calls"` // operations whose arguments were sealed
	// With --ntlm-secrets: sealed operations opened with a secret, and
	// those of a named account that could not be (wrong secret, lost PDU).
	DecryptedCalls     uint64 `json:"decrypted_calls,omitempty"`
	UndecryptableCalls uint64 `json:"undecryptable_calls,omitempty"`
	// With --ntlm-secrets: SMB3 transform messages opened, and those of a
	// session with keys that did not authenticate (wrong secret, damage).
	SMB3Decrypted     uint64 `json:"smb3_decrypted,omitempty"`
	SMB3Undecryptable uint64 `json:"smb3_undecryptable,omitempty"`
	// With --keytab: AP-REQ tickets opened, and those of an etype a key
	// was given for that none opened.
	KerberosDecrypted     uint64 `json:"kerberos_decrypted,omitempty"`
	KerberosUndecryptable uint64 `json:"kerberos_undecryptable,omitempty"`
	// With --ntlm-secrets: WinRM encrypted messages opened, and those of
	// an account the file names that could not be (wrong secret, damage).
	WinRMDecrypted     uint64 `json:"winrm_decrypted,omitempty"`
	WinRMUndecryptable uint64 `json:"winrm_undecryptable,omitempty"`
	// DomainControllers are the hosts the traffic shows acting as domain
	// controllers: answering Kerberos on 88, LDAP on 389/636/3268/3269,
	// DRSUAPI or Netlogon calls.
	DomainControllers []netip.Addr `json:"domain_controllers,omitempty"`
	// KernelDrops (live capture only: RunLive on a Live source) are the
	// packets the kernel dropped because the ring was full: the pipeline
	// fell behind for longer than the ring and queue could hold.
	KernelDrops uint64 `json:"kernel_drops,omitempty"`
}

// Damaged reports whether input was lost or skipped (exit code 3 material).
func (s Stats) Damaged() bool {
	return s.Gaps > 0 || s.DroppedBytes > 0 || s.DecodeErrors > 0 || s.KernelDrops > 0
}

// Pipeline turns packets into operations. It is not safe for concurrent
// use: one goroutine feeds Packet and Tick.
type Pipeline struct {
	cfg   Config
	emit  func(Operation)
	stats Stats

	conns    map[flowKey]*conn
	buffered int64 // bytes held by all framers and reorder queues

	krb     map[netip.Addr]*krbHost
	tickets map[ticketKey]principal // client of each ticket a captured TGS-REP issued
	// krbCtx holds the contexts opened from AP-REQs with --keytab, by
	// authenticator; krbBad the tickets no key opened (not tried again).
	krbCtx   map[ticketKey]krbOpen
	krbBad   map[ticketKey]error
	epmPorts map[netip.AddrPort]struct{} // dynamic RPC endpoints learned from the endpoint mapper
	// transfers maps a host to the files written to it that look like
	// tools (lower-case base name -> \\server\share\path), so a service or
	// task that runs one can say where it came from.
	transfers map[netip.Addr]map[string]string
	// outputs maps a host to the files its commands redirected output to
	// (canonical local path), so reading one back is that command's output.
	outputs map[netip.Addr]map[string]outputLink
	// sharePaths maps a host to its shares' local paths (upper-case
	// share -> lower-case path), as its srvsvc responses gave them.
	sharePaths map[netip.Addr]map[string]string
	// winrmShells are the WinRM shells followed, across connections.
	winrmShells map[winrmShellKey]*winrmShell
	// shared is what the DCE/RPC sessions of the capture learn for each
	// other: DCOM objects by IPID, account names by SID and RID.
	shared *rpcops.Shared

	// apps holds the connections whose protocol is followed, the only
	// ones with calls or files to expire.
	apps map[*conn]struct{}

	flushing bool // Flush is closing every connection: the end of the input

	// smb3Buf holds the plaintext of the SMB3 message being handled
	// (with secrets only).
	smb3Buf []byte

	// dcs are the hosts seen serving what only domain controllers serve.
	dcs map[netip.Addr]bool

	// stubHook, when set (tests), sees each stub opened with a secret.
	stubHook func(dir int, stub []byte)
	// winrmHook, when set (tests), sees each WinRM message opened with a
	// secret (dir 0 from the client).
	winrmHook func(dir int, soap []byte)

	now       time.Time // packet time of the newest packet
	nowWall   time.Time // wall clock when it arrived (live expiry)
	lastSweep time.Time
	lastIdle  time.Time
	hdr       pkthdr.Packet
}

// New returns a pipeline that calls emit for each operation as soon as it
// completes.
func New(cfg Config, emit func(Operation)) *Pipeline {
	cfg.defaults()
	return &Pipeline{
		cfg: cfg, emit: emit,
		conns:     make(map[flowKey]*conn),
		apps:      make(map[*conn]struct{}),
		krb:       make(map[netip.Addr]*krbHost),
		tickets:   make(map[ticketKey]principal),
		krbCtx:    make(map[ticketKey]krbOpen),
		krbBad:    make(map[ticketKey]error),
		epmPorts:  make(map[netip.AddrPort]struct{}),
		shared:    rpcops.NewShared(),
		transfers: make(map[netip.Addr]map[string]string),
		outputs:   make(map[netip.Addr]map[string]outputLink),
		dcs:       make(map[netip.Addr]bool),
	}
}

// Stats returns the counters so far.
func (p *Pipeline) Stats() Stats {
	st := p.stats
	st.GapPlaces = slices.Clone(p.stats.GapPlaces)
	st.DomainControllers = nil
	for a := range p.dcs {
		st.DomainControllers = append(st.DomainControllers, a)
	}
	slices.SortFunc(st.DomainControllers, netip.Addr.Compare)
	return st
}

// actsAsDC records a host seen serving a domain controller's protocol.
func (p *Pipeline) actsAsDC(a netip.Addr) {
	if !p.dcs[a] && len(p.dcs) < maxDCs {
		p.dcs[a] = true
	}
}

const maxDCs = 4096

func (p *Pipeline) out(o Operation) {
	p.stats.Operations++
	if o.Encrypted {
		p.stats.EncryptedCalls++
	}
	switch o.Sealed {
	case SealedDecrypted:
		p.stats.DecryptedCalls++
	case SealedUndecryptable:
		p.stats.UndecryptableCalls++
	}
	if o.End.IsZero() {
		o.End = o.Time
	}
	if o.Kind == "rpc" && o.HasStatus && !o.Partial && (o.Interface == "drsuapi" || o.Interface == "netlogon") {
		p.actsAsDC(o.Dst)
	}
	markReplication(&o, p.dcs)
	p.noteOutputs(&o)
	p.emit(o)
}

// Packet feeds one packet. Packets should come in time order; a packet
// older than the newest seen is still processed.
func (p *Pipeline) Packet(pk Packet) {
	p.stats.Packets++
	p.stats.Bytes += uint64(len(pk.Data))
	if pk.Timestamp.After(p.now) {
		p.now = pk.Timestamp
	}
	h := &p.hdr
	if !pkthdr.Parse(pk.LinkType, pk.Data, h) || h.Fragment || !h.HasPorts {
		if h.IPVersion == 0 {
			p.stats.NotIP++
		}
		p.maybeSweep()
		return
	}
	var payload []byte
	if h.Payload >= 0 && h.PayloadN >= 0 && h.Payload+h.PayloadN <= len(pk.Data) {
		payload = pk.Data[h.Payload : h.Payload+h.PayloadN] // without Ethernet padding
	}
	switch h.Proto {
	case pkthdr.ProtoTCP:
		p.tcpPacket(h, payload, pk.Timestamp)
	case pkthdr.ProtoUDP:
		switch {
		case h.DstPort == 88:
			p.kerberos(h.Src, h.Dst, false, payload)
		case h.SrcPort == 88:
			p.kerberos(h.Dst, h.Src, true, payload)
		}
	}
	p.maybeSweep()
}

// Tick lets live mode expire state when no packets arrive: wall is the
// current wall-clock time; packet time is advanced by the wall time passed
// since the last packet.
func (p *Pipeline) Tick(wall time.Time) {
	if p.nowWall.IsZero() {
		p.nowWall = wall
		return
	}
	if d := wall.Sub(p.nowWall); d > 0 {
		p.now = p.now.Add(d)
		p.nowWall = wall
	}
	p.sweep(false)
}

// MarkWall records the wall clock of the packet just fed, so Tick can
// advance packet time in step with it. Offline runs never call it.
func (p *Pipeline) MarkWall(wall time.Time) { p.nowWall = wall }

func (p *Pipeline) maybeSweep() {
	if p.now.Sub(p.lastSweep) >= time.Second {
		p.sweep(false)
	}
}

// sweep expires half-open calls every second of packet time and idle
// connections every ten; all=true closes everything (end of input).
func (p *Pipeline) sweep(all bool) {
	p.lastSweep = p.now
	if all || p.now.Sub(p.lastIdle) >= 10*time.Second {
		p.lastIdle = p.now
		for k, c := range p.conns {
			if all || p.now.Sub(c.last) > p.cfg.IdleTimeout {
				if !all && c.app != nil {
					p.stats.ConnsExpired++
				}
				p.dropConn(k, c, !all)
			}
		}
	}
	for c := range p.apps {
		c.app.expire(p, p.now.Add(-p.cfg.CallTimeout))
	}
}

// dropConn closes a connection's protocol state and forgets it.
func (p *Pipeline) dropConn(k flowKey, c *conn, expired bool) {
	if c.app != nil && !expired && p.flushing {
		// The input ended with the connection open: an edge, not damage.
		if !c.fin[0] || !c.fin[1] {
			p.stats.ConnsOpenAtEnd++
		}
		for d := range c.dirs {
			if len(c.dirs[d].ooo) > 0 {
				p.stats.GapsAtEnd++
			}
		}
	}
	if c.app != nil {
		c.app.close(p, expired)
		delete(p.apps, c)
	}
	for d := range c.dirs {
		p.buffered -= int64(c.dirs[d].oooBytes)
		c.dirs[d].ooo = nil
		c.dirs[d].oooBytes = 0
	}
	if c.fr[0] != nil {
		c.fr[0].release(p)
		c.fr[1].release(p)
	}
	delete(p.conns, k)
}

// Flush closes every connection, reporting calls still waiting for a reply
// and files still open. Call it at the end of the input.
func (p *Pipeline) Flush() {
	p.flushing = true
	p.sweep(true)
	p.flushing = false
}

// Run feeds every packet of src into a new pipeline and flushes it. A
// damaged-input error from the source (anything but io.EOF) is returned
// after the packets before it were processed; ctx cancellation stops early.
func Run(ctx context.Context, src Source, cfg Config, emit func(Operation)) (Stats, error) {
	p := New(cfg, emit)
	var err error
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		pk, e := src.Next()
		if e != nil {
			if !errors.Is(e, io.EOF) {
				err = e
			}
			break
		}
		p.Packet(pk)
	}
	p.Flush()
	return p.Stats(), err
}

// noteTransfer remembers a tool written to host.
func (p *Pipeline) noteTransfer(host netip.Addr, name, target string) {
	m := p.transfers[host]
	if m == nil {
		if len(p.transfers) >= 4096 {
			clear(p.transfers)
		}
		m = make(map[string]string)
		p.transfers[host] = m
	}
	if len(m) >= 256 {
		clear(m)
	}
	base := name
	if i := strings.LastIndexAny(base, `\/`); i >= 0 {
		base = base[i+1:]
	}
	if base != "" {
		m[strings.ToLower(base)] = target
	}
}

// linkTransfer adds the file a command runs when it was copied to the host
// over SMB earlier (PsExec's service binary, a dropped payload).
func (p *Pipeline) linkTransfer(op *Operation) {
	m := p.transfers[op.Dst]
	if len(m) == 0 || op.Command == "" {
		return
	}
	cmd := strings.ToLower(op.Command)
	for base, target := range m {
		if strings.Contains(cmd, base) {
			op.Fields = append(op.Fields, Field{"transferred file", target})
			return
		}
	}
}
