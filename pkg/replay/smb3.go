package replay

import (
	"errors"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/smb3crypt"
)

// Opening SMB3-encrypted sessions with --ntlm-secrets (docs/replay.md
// "Encrypted SMB3 sessions"): the connection's dialect and cipher come
// from the NEGOTIATE response, the session key from the session's NTLM
// exchange (ntlmseal), the SMB 3.1.1 context from the preauthentication
// hash chained over NEGOTIATE and SESSION_SETUP; then each transform
// message is opened and its SMB2 messages go through the clear path.

// smb3Conn is what decryption needs of one connection; made only when
// secrets were given.
type smb3Conn struct {
	dialect, cipher uint16
	compression     bool
	preauth         smb3crypt.Preauth // the connection's (3.1.1)
	// setup is the preauth hash of a session being set up whose first
	// request had no SessionId yet; its response names the session.
	setup *smb3crypt.Preauth
	// setupKrb is that session's Kerberos state: a Kerberos setup is
	// one leg, its AP-REQ in the request without a SessionId.
	setupKrb *smb3Sess
	// inDecrypted is set while the messages of a decrypted transform are
	// handled: what they open or report came from a decrypted session.
	inDecrypted bool
}

// smb3Sess is one session's decryption state.
type smb3Sess struct {
	preauth smb3crypt.Preauth
	chal    []byte           // the NTLM CHALLENGE, copied
	krb     *krbseal.Context // a Kerberos setup's context, opened with --keytab
	key     []byte           // the session key (16 bytes for NTLM; Kerberos: the GSS key, up to 32)
	keyOK   bool
	// why the session cannot be opened ("" while it may): a wrong
	// secret, a CHALLENGE not captured, Kerberos...
	why     string
	crypt   *smb3crypt.Session
	started bool // preauth holds the session's hash
	done    bool // the final SESSION_SETUP response was seen
	// Messages opened, and those that did not authenticate or were
	// compressed (not decoded).
	opened, failed, compressed int
}

// decryptedSMB3 is the Operation.Decrypted value of SMB3 decryption.
const decryptedSMB3 = "smb3"

// maxSMB3Buf bounds the plaintext buffer the pipeline keeps between
// messages (larger ones get their own, collected after use).
const maxSMB3Buf = 1 << 20

func (s *smbConn) smb3Sess(id uint64) *smb3Sess {
	ss := s.session(id)
	if ss.smb3 == nil {
		ss.smb3 = &smb3Sess{}
	}
	return ss.smb3
}

// smb3Negotiate follows NEGOTIATE requests and responses.
func (s *smbConn) smb3Negotiate(h smbrpc.SMB2Header, m []byte) {
	e := s.enc3
	if !h.Response() {
		// A new negotiation: the 3.1.1 hash starts from zero with it.
		e.preauth.Reset()
		e.preauth.Add(m)
		return
	}
	n, err := smbrpc.ParseSMB2NegotiateResp(m)
	if err != nil && n.Dialect == 0 {
		return
	}
	e.dialect, e.cipher, e.compression = n.Dialect, n.Cipher, n.Compression
	switch n.Dialect {
	case smb3crypt.Dialect300, smb3crypt.Dialect302:
		e.cipher = smb3crypt.AES128CCM
	case smb3crypt.Dialect311:
		e.preauth.Add(m)
	}
}

// smb3SetupReq follows a SESSION_SETUP request: the preauth hash, and
// with the AUTHENTICATE, the session key.
func (s *smbConn) smb3SetupReq(p *Pipeline, h smbrpc.SMB2Header, m, blob []byte) {
	e := s.enc3
	if h.SessionID == 0 {
		// A new session: its hash starts from the connection's.
		e.setup = &smb3crypt.Preauth{Value: e.preauth.Value}
		e.setup.Add(m)
		e.setupKrb = nil
		if k, ok := smbrpc.FindAPReq(blob); ok && smbrpc.FindNTLMSSP(blob) == nil && p.cfg.Keys.Len() > 0 {
			e.setupKrb = &smb3Sess{}
			s.krbSetup(p, e.setupKrb, k)
		}
		return
	}
	st := s.smb3Sess(h.SessionID)
	if st.done {
		return // a reauthentication keeps the session's keys
	}
	if !st.started {
		// The session's first request already had its id (the capture
		// began inside the setup): a 3.1.1 hash will not match.
		st.started, st.preauth.Value = true, e.preauth.Value
	}
	st.preauth.Add(m)
	msg := smbrpc.FindNTLMSSP(blob)
	if smbrpc.NTLMType(msg) != smbrpc.NTLMAuthenticate {
		if k, ok := smbrpc.FindAPReq(blob); ok && msg == nil {
			s.krbSetup(p, st, k)
		}
		return
	}
	key, err := p.cfg.Secrets.SessionKey(st.chal, msg)
	switch {
	case err == nil:
		st.key, st.keyOK, st.why = key[:], true, ""
	case errors.Is(err, ntlmseal.ErrNoSecret):
		st.keyOK, st.why = false, "" // not an account of the file: shown as without secrets
	default:
		st.keyOK, st.why = false, err.Error()
	}
}

// smb3SetupResp follows a SESSION_SETUP response: the CHALLENGE, the
// preauth hash of every response but the last, and at the last the keys.
func (s *smbConn) smb3SetupResp(h smbrpc.SMB2Header, m []byte) {
	e := s.enc3
	st := s.smb3Sess(h.SessionID)
	if !st.started && e.setup != nil {
		st.started, st.preauth.Value = true, e.setup.Value
		e.setup = nil
		if k := e.setupKrb; k != nil {
			st.krb, st.why = k.krb, k.why
			e.setupKrb = nil
		}
	}
	if st.done {
		return
	}
	if st.krb != nil && (h.Status == smbrpc.StatusMoreProcessing || h.Status == smbrpc.StatusSuccess) {
		// The acceptor's AP-REP (mutual authentication) carries the
		// subkey the session key comes from.
		if blob, _, err := smbrpc.ParseSMB2SessionSetup(m, true); err == nil {
			if rep, ok := smbrpc.FindAPRep(blob); ok {
				if err := st.krb.APRep(rep, true); err != nil {
					st.why = "kerberos AP-REP: " + err.Error()
				}
			}
		}
	}
	switch h.Status {
	case smbrpc.StatusMoreProcessing:
		st.preauth.Add(m)
		if blob, _, err := smbrpc.ParseSMB2SessionSetup(m, true); err == nil {
			if c := smbrpc.FindNTLMSSP(blob); smbrpc.NTLMType(c) == smbrpc.NTLMChallenge && len(c) <= maxChallenge {
				st.chal = append(st.chal[:0], c...)
			}
		}
		return
	case smbrpc.StatusSuccess:
	default:
		return
	}
	st.done = true
	if st.krb != nil && st.why == "" {
		st.key, st.keyOK = append(st.key[:0], st.krb.SessionKey()...), true
	}
	if !st.keyOK {
		return
	}
	c, err := smb3crypt.NewSession(e.dialect, e.cipher, st.key, &st.preauth.Value)
	clear(st.key)
	st.key = nil
	if err != nil {
		st.why = err.Error()
		return
	}
	st.crypt = c
}

// krbSetup follows the AP-REQ of a Kerberos session setup with --keytab:
// its context gives the session key once the setup succeeds.
func (s *smbConn) krbSetup(p *Pipeline, st *smb3Sess, k smbrpc.KerberosMsg) {
	c, err := p.krbAccept(k)
	switch {
	case c != nil && err == nil:
		st.krb, st.keyOK, st.why = c, false, ""
	case errors.Is(err, krbseal.ErrNoKey):
		st.krb, st.why = nil, "" // no key of its etype: shown as without keys
	case c != nil:
		st.krb, st.why = nil, "kerberos: "+err.Error()
	default:
		st.krb, st.why = nil, "kerberos: no key opens the ticket of "+k.SName
	}
}

// smb3Open opens a transform message of a session with keys and feeds
// the SMB2 messages it carried to the clear path. It reports false when
// the message stays encrypted (no keys for it, or it did not open).
func (s *smbConn) smb3Open(p *Pipeline, dir int, body []byte, sessID uint64, ts time.Time) bool {
	ss := s.sessions[sessID]
	if ss == nil || ss.smb3 == nil || ss.smb3.crypt == nil {
		return false
	}
	st := ss.smb3
	if !s.decided {
		return false // no message in clear said which side is the client
	}
	d := dir
	if s.flip {
		d = 1 - dir
	}
	plain, err := st.crypt.Open(d, body, p.smb3Buf)
	if cap(plain) > cap(p.smb3Buf) && cap(plain) <= maxSMB3Buf {
		p.smb3Buf = plain[:0] // one buffer for every session of the pipeline
	}
	if err != nil {
		st.failed++
		p.stats.SMB3Undecryptable++
		return false
	}
	st.opened++
	p.stats.SMB3Decrypted++
	switch smbrpc.SMBProto(plain) {
	case smbrpc.ProtoSMB2:
		s.enc3.inDecrypted = true
		err := smbrpc.SplitSMB2(plain, func(h smbrpc.SMB2Header, m []byte) {
			s.smb2(p, s.orient(dir, h.Response()), h, m, ts)
		})
		s.enc3.inDecrypted = false
		if err != nil {
			p.stats.DecodeErrors++
		}
		return true
	case smbrpc.ProtoCompressed:
		// SMB 3.1.1 compression inside encryption: not decoded, told on
		// the session's smb3-encrypted operation.
		st.compressed++
		return false
	}
	p.stats.DecodeErrors++
	return true
}

// smb3Why says why an encrypted session of a named account was not
// opened, "" when no secret names its account (or none were given).
func (st *smb3Sess) smb3Why() string {
	switch {
	case st == nil:
		return ""
	case st.compressed > 0 && st.failed == 0:
		return "messages are SMB 3.1.1-compressed after decryption (not decoded)"
	case st.failed > 0 && st.opened == 0:
		return "no message authenticated: wrong secret, or keys of a session whose setup was not captured"
	case st.failed > 0:
		return "some messages did not authenticate (damaged or cut short)"
	case st.why != "":
		return st.why
	case st.crypt == nil && st.keyOK:
		return "the session setup's end was not captured"
	}
	return ""
}
