package krbseal

import (
	"bytes"
	"errors"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// ErrNoKey means no key of the ticket's etype was given: the ticket stays
// as it is, shown as without keys.
var ErrNoKey = errors.New("no key of the ticket's etype")

// maxTries bounds the keys tried on one ticket (a domain's dump holds one
// key per account and etype; the service's own are tried first).
const maxTries = 1 << 14

// Context is one Kerberos GSS-API security context opened with a service
// key: the client the ticket names and the keys both sides derived.
type Context struct {
	// Client and Realm name the ticket's client (its cname and crealm).
	Client, Realm string
	// DCEStyle is the GSS-API DCE style flag of the authenticator's
	// checksum (MS-KILE 3.4.5: three legs, no wrap token padding).
	DCEStyle bool

	session   smbrpc.KrbKey // the ticket's session key
	initiator smbrpc.KrbKey // the authenticator's subkey, if any
	acceptor  smbrpc.KrbKey // the AP-REP's subkey, if any
	initSeq   uint32
	accSeq    uint32
	// wrapKey is the key a wrap token last opened with (see Unwrap).
	wrapKey *smbrpc.KrbKey
}

// candidates orders the keys to try on a ticket: those of the service
// principal itself (matched by name, realm and version), then the machine
// account a host-based service name maps to (cifs/dc01.corp.local and
// every other SPN of the host are keyed by DC01$), then every other key of
// the etype.
func (k *Keys) candidates(t smbrpc.KerberosMsg) []*Key {
	svc := strings.ToLower(t.SName)
	host := ""
	if _, h, ok := strings.Cut(svc, "/"); ok {
		h, _, _ = strings.Cut(h, ".")
		h, _, _ = strings.Cut(h, ":")
		host = h + "$"
	}
	var exact, machine, rest []*Key
	for i := range k.keys {
		key := &k.keys[i]
		if key.EType != t.TicketEnc.EType {
			continue
		}
		p := strings.ToLower(key.Principal)
		switch {
		case p == svc && realmMatch(key.Realm, t.Realm) && (!t.TicketEnc.HasKVNO || key.KVNO == 0 || key.KVNO == t.TicketEnc.KVNO):
			exact = append(exact, key)
		case host != "" && p == host:
			machine = append(machine, key)
		default:
			rest = append(rest, key)
		}
	}
	all := append(append(exact, machine...), rest...)
	if len(all) > maxTries {
		all = all[:maxTries]
	}
	return all
}

// realmMatch compares realms or NetBIOS domains case-insensitively; a key
// without one (a secretsdump line without a domain) matches any.
func realmMatch(a, b string) bool {
	if a == "" || b == "" || strings.EqualFold(a, b) {
		return true
	}
	a, _, _ = strings.Cut(a, ".")
	b, _, _ = strings.Cut(b, ".")
	return strings.EqualFold(a, b)
}

// Accept opens the ticket of an AP-REQ with the keys and then its
// authenticator: the client, the session key, the initiator's subkey and
// sequence number. ErrNoKey: no key of the etype; ErrIntegrity: keys of
// the etype, none of which opens it.
func (k *Keys) Accept(req smbrpc.KerberosMsg) (*Context, error) {
	if req.Type != smbrpc.KrbAPReq || len(req.TicketEnc.Cipher) == 0 {
		return nil, errors.New("not an AP-REQ with a ticket")
	}
	var plain []byte
	tried := 0
	for _, key := range k.candidates(req) {
		tried++
		p, err := decrypt(key.EType, key.value, usageTicket, req.TicketEnc.Cipher)
		if err == nil {
			plain = p
			break
		}
	}
	switch {
	case tried == 0:
		return nil, ErrNoKey
	case plain == nil:
		return nil, ErrIntegrity
	}
	t, ok := smbrpc.ParseEncTicketPart(plain)
	if !ok || keyLen(t.Key.Type) == 0 || len(t.Key.Value) != keyLen(t.Key.Type) {
		return nil, errors.New("the ticket opened but its session key is not one this reader uses")
	}
	c := &Context{Client: t.CName, Realm: t.CRealm, session: cloneKey(t.Key)}
	a, err := c.open(c.session, usageAuthenticator, req.Authenticator)
	if err != nil {
		return c, errors.New("the ticket opened but not its authenticator")
	}
	auth, ok := smbrpc.ParseAuthenticator(a)
	if !ok {
		return c, errors.New("the ticket opened but its authenticator is damaged")
	}
	if validKey(auth.Subkey) {
		c.initiator = cloneKey(auth.Subkey)
	}
	c.initSeq = auth.Seq
	c.DCEStyle = auth.HasGSSFlags && auth.GSSFlags&smbrpc.GSSFlagDCEStyle != 0
	return c, nil
}

// APRep opens an AP-REP of the context with its session key: the
// acceptor's (fromAcceptor) subkey and sequence number. The initiator's
// AP-REP of DCE style's third leg carries no subkey.
func (c *Context) APRep(rep smbrpc.KerberosMsg, fromAcceptor bool) error {
	p, err := c.open(c.session, usageAPRepPart, rep.EncPart)
	if err != nil {
		return err
	}
	r, ok := smbrpc.ParseEncAPRepPart(p)
	if !ok {
		return errors.New("damaged AP-REP part")
	}
	if fromAcceptor {
		if validKey(r.Subkey) {
			c.acceptor = cloneKey(r.Subkey)
		}
		c.accSeq = r.Seq
	}
	return nil
}

// SessionKey is the GSS-API context's key as SMB2 takes it (MS-SMB2
// 3.2.5.3.1, MS-KILE 3.1.1.2): the acceptor's subkey when the AP-REP gave
// one, else the initiator's, else the ticket's session key. SMB2 uses its
// first 16 bytes (padded with zeros when shorter); AES-256 ciphers of SMB
// 3.1.1 the whole key.
func (c *Context) SessionKey() []byte {
	switch {
	case validKey(c.acceptor):
		return c.acceptor.Value
	case validKey(c.initiator):
		return c.initiator.Value
	}
	return c.session.Value
}

func (c *Context) open(key smbrpc.KrbKey, usage uint32, enc smbrpc.KrbEncrypted) ([]byte, error) {
	if len(enc.Cipher) == 0 {
		return nil, errors.New("nothing encrypted")
	}
	if enc.EType != key.Type {
		return nil, errors.New("etype differs from the key's")
	}
	return decrypt(key.Type, key.Value, usage, enc.Cipher)
}

func validKey(k smbrpc.KrbKey) bool {
	return keyLen(k.Type) != 0 && len(k.Value) == keyLen(k.Type)
}

func cloneKey(k smbrpc.KrbKey) smbrpc.KrbKey {
	return smbrpc.KrbKey{Type: k.Type, Value: bytes.Clone(k.Value)}
}
