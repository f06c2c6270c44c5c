package replay

import (
	"crypto/sha256"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
)

// krbHost is what the KDC exchanges of one client address showed: which
// client name obtained a ticket for which service (TGS-REP), and the last
// client names that logged on (AS-REQ/AS-REP).
type krbHost struct {
	bySName map[string]principal // lower-case service principal -> client
	last    principal            // newest user (not machine) logon
	lastAny principal
}

type principal struct{ name, realm string }

const (
	maxKrbHosts    = 65536
	maxKrbServices = 256
	maxTickets     = 1 << 16
)

// ticketKey identifies a ticket by its encrypted part (a SHA-256 prefix:
// the cipher is random to anyone without the service key).
type ticketKey [16]byte

func keyOf(cipher []byte) ticketKey {
	h := sha256.Sum256(cipher)
	return ticketKey(h[:16])
}

// byTicket names the client of the ticket an AP-REQ presents, when the
// TGS-REP that issued it was captured.
func (p *Pipeline) byTicket(cipher []byte) (principal, bool) {
	if len(cipher) == 0 {
		return principal{}, false
	}
	pr, ok := p.tickets[keyOf(cipher)]
	return pr, ok
}

// kerberos reads one Kerberos message that client exchanged with its KDC
// (fromKDC: the KDC sent it).
func (p *Pipeline) kerberos(client, kdc netip.Addr, fromKDC bool, b []byte) {
	k, ok := smbrpc.ParseKerberos(b)
	if ok && fromKDC && (k.Type == smbrpc.KrbASRep || k.Type == smbrpc.KrbTGSRep || k.Type == smbrpc.KrbError) {
		p.actsAsDC(kdc)
	}
	if !ok || k.CName == "" {
		return
	}
	h := p.krb[client]
	if h == nil {
		if len(p.krb) >= maxKrbHosts {
			clear(p.krb) // a blunt bound: names are relearned from the next exchanges
		}
		h = &krbHost{bySName: make(map[string]principal)}
		p.krb[client] = h
	}
	pr := principal{k.CName, k.CRealm}
	switch k.Type {
	case smbrpc.KrbTGSRep:
		if len(k.Ticket) > 0 {
			if len(p.tickets) >= maxTickets {
				clear(p.tickets) // a blunt bound: later tickets are learnt again
			}
			p.tickets[keyOf(k.Ticket)] = pr
		}
		if len(h.bySName) >= maxKrbServices {
			clear(h.bySName)
		}
		h.bySName[strings.ToLower(k.SName)] = pr
	case smbrpc.KrbASRep, smbrpc.KrbASReq:
		// An AS-REQ names a client that may not exist (password spraying);
		// its AS-REP confirms it. Both are kept: the newest wins.
		h.lastAny = pr
		if !strings.HasSuffix(pr.name, "$") {
			h.last = pr
		}
	}
}

// kerberosClient names the client of an AP-REQ from addr for service: the
// TGS-REP that issued the ticket, else the host's newest logon.
func (p *Pipeline) kerberosClient(addr netip.Addr, service string) (principal, bool) {
	h := p.krb[addr]
	if h == nil {
		return principal{}, false
	}
	if pr, ok := h.bySName[strings.ToLower(service)]; ok {
		return pr, true
	}
	// Tickets are often requested by the host's short name and used by
	// its full one, or the other way round: match on the first label.
	want := strings.ToLower(service)
	for s, pr := range h.bySName {
		if sameService(s, want) {
			return pr, true
		}
	}
	if h.last.name != "" {
		return h.last, true
	}
	return h.lastAny, h.lastAny.name != ""
}

// sameService compares service/host principals by service and the host's
// first label.
func sameService(a, b string) bool {
	as, ah, ok1 := strings.Cut(a, "/")
	bs, bh, ok2 := strings.Cut(b, "/")
	if !ok1 || !ok2 || as != bs {
		return false
	}
	ah, _, _ = strings.Cut(ah, ".")
	bh, _, _ = strings.Cut(bh, ".")
	return ah == bh
}

// viaKeytab is account.via for a client read from the ticket itself,
// opened with a --keytab key.
const viaKeytab = "keytab"

// krbOpen is what the keys made of one AP-REQ: its context (nil when the
// ticket did not open) or why not.
type krbOpen struct {
	ctx *krbseal.Context
	err error
}

// krbAccept opens the ticket and authenticator of an AP-REQ with the
// --keytab keys. A context comes back with a nil error when both opened,
// with an error when only the ticket did (the client is known, the keys
// are not); nil and krbseal.ErrNoKey when no key of the etype was given.
// Each AP-REQ is opened once (the SMB or RPC code asks again for its
// keys), and a ticket none of the keys opens is not tried again.
func (p *Pipeline) krbAccept(k smbrpc.KerberosMsg) (*krbseal.Context, error) {
	if p.cfg.Keys.Len() == 0 {
		return nil, krbseal.ErrNoKey
	}
	// The ticket and authenticator together name one AP-REQ (an
	// authenticator alone could be empty in a damaged message).
	h := sha256.New()
	h.Write(k.Ticket)
	h.Write(k.Authenticator.Cipher)
	var ak ticketKey
	copy(ak[:], h.Sum(nil))
	if o, ok := p.krbCtx[ak]; ok {
		return o.ctx, o.err
	}
	tk := keyOf(k.Ticket)
	if err, ok := p.krbBad[tk]; ok {
		return nil, err
	}
	c, err := p.cfg.Keys.Accept(k)
	if c == nil {
		if len(p.krbBad) >= maxTickets {
			clear(p.krbBad)
		}
		p.krbBad[tk] = err
		if !errors.Is(err, krbseal.ErrNoKey) {
			p.stats.KerberosUndecryptable++
		}
		return nil, err
	}
	p.stats.KerberosDecrypted++
	if len(p.krbCtx) >= maxTickets {
		clear(p.krbCtx) // a blunt bound: a context asked for again is opened again
	}
	p.krbCtx[ak] = krbOpen{c, err}
	return c, err
}

// krbConn follows Kerberos over TCP: 4-byte record marks around each
// message.
type krbConn struct{ c *conn }

func (k *krbConn) frame(p *Pipeline, dir int, msg []byte, _ time.Time) {
	if len(msg) > 4 {
		p.kerberos(k.c.client.Addr(), k.c.server.Addr(), dir == 1, msg[4:])
	}
}
func (k *krbConn) gap(*Pipeline, int)          {}
func (k *krbConn) expire(*Pipeline, time.Time) {}
func (k *krbConn) close(*Pipeline, bool)       {}
