package replay

import (
	"crypto/sha256"
	"net/netip"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
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
