package rpcops

import (
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// GuessInterface infers the interface of a call whose bind was not captured:
// from the SMB pipe name, or on TCP (pipe "") from the opnum and a stub that
// parses cleanly as that operation's request.
func GuessInterface(pipe string, opnum uint16, stub []byte) ([16]byte, bool) {
	u, _, ok := GuessCall(pipe, opnum, stub)
	return u, ok
}

// GuessCall is GuessInterface that also says whether the stub parsed as
// NDR64 (a context bound with NDR64 before the capture began), for
// Call.NDR64.
//
// Over a named pipe the pipe decides, and the stub only chooses among the
// interfaces that share a pipe (atsvc carries ATSvc, ITaskSchedulerService
// and SASec). Over TCP the request must parse as the operation's arguments
// with nothing left over; when several interfaces fit, none is chosen. A
// stub that starts with an ORPCTHIS is a DCOM call, matched against the
// common DCOM interfaces the same way (a DCOM call is better named by its
// object IPID, when the activation that made it was seen).
func GuessCall(pipe string, opnum uint16, stub []byte) (iface [16]byte, ndr64, ok bool) {
	if p := normPipe(pipe); p != "" {
		return guessByPipe(p, opnum, stub)
	}
	if len(stub) == 0 {
		return iface, false, false
	}
	for _, n64 := range []bool{false, true} {
		var matches [][16]byte
		for _, u := range guessOrder {
			i := reg()[u]
			if i == nil || i.orpc {
				continue
			}
			if probeRequest(i, opnum, stub, n64) {
				matches = append(matches, u)
			}
		}
		if len(matches) == 1 {
			return matches[0], n64, true
		}
		if len(matches) > 1 {
			return iface, false, false
		}
	}
	if looksORPC(stub) && len(stub) > orpcThisLen(stub) {
		// DCOM methods share opnums and argument shapes (RemAddRef's empty
		// array reads like IDispatch::GetTypeInfo's two integers), and a
		// stub with no argument after the ORPCTHIS fits any method without
		// one: only a stub that fits one interface alone names it.
		for _, n64 := range []bool{false, true} {
			var matches [][16]byte
			for _, u := range dcomGuessOrder {
				if probeRequest(reg()[u], opnum, stub, n64) {
					matches = append(matches, u)
				}
			}
			if len(matches) == 1 {
				return matches[0], n64, true
			}
			if len(matches) > 1 {
				return iface, false, false
			}
		}
	}
	return iface, false, false
}

// orpcThisLen is the length of the ORPCTHIS at the start of a DCOM request
// stub; len(stub) when it cannot be read.
func orpcThisLen(stub []byte) int {
	r := ndr.NewReader(stub, false)
	orpcThis(r)
	if r.Err() != nil {
		return len(stub)
	}
	return r.Offset()
}

// normPipe reduces \PIPE\svcctl, \svcctl and PIPE\svcctl to svcctl.
func normPipe(p string) string {
	p = strings.ToLower(strings.TrimLeft(p, `\/`))
	p = strings.TrimPrefix(p, `pipe\`)
	p = strings.TrimPrefix(p, `pipe/`)
	return p
}

func guessByPipe(p string, opnum uint16, stub []byte) ([16]byte, bool, bool) {
	var primary [16]byte
	var found bool
	var shared [][16]byte
	for _, u := range guessOrder {
		i := reg()[u]
		for k, ip := range i.pipes {
			if ip != p {
				continue
			}
			shared = append(shared, u)
			if k == 0 && !found {
				primary, found = u, true
			}
		}
	}
	if len(shared) == 0 {
		return [16]byte{}, false, false
	}
	if len(shared) > 1 && len(stub) > 0 {
		for _, n64 := range []bool{false, true} {
			for _, u := range shared {
				if probeRequest(reg()[u], opnum, stub, n64) {
					return u, n64, true
				}
			}
		}
	}
	if !found {
		primary = shared[0]
	}
	return primary, StubNDR64(primary, opnum, stub), true
}

// StubNDR64 reports whether a request stub of a known interface reads
// cleanly only as NDR64: the transfer syntax of a context whose bind was
// not captured, when something else (a pipe name, a DCOM IPID) names the
// interface.
func StubNDR64(iface [16]byte, opnum uint16, stub []byte) bool {
	i := reg()[iface]
	return len(stub) > 0 && !probeRequest(i, opnum, stub, false) && probeRequest(i, opnum, stub, true)
}

// looksORPC: an ORPCTHIS starts with COMVERSION 5.x.
func looksORPC(stub []byte) bool {
	return len(stub) >= 32 && stub[0] == 5 && stub[1] == 0 && stub[2] <= 7 && stub[3] == 0
}

// probeRequest reports whether stub reads cleanly as the request of an
// operation: no error and at most a few bytes of zero padding left.
func probeRequest(i *iface, opnum uint16, stub []byte, ndr64 bool) (ok bool) {
	if i == nil || len(stub) == 0 {
		return false
	}
	o, known := i.ops[opnum]
	if !known || (o.req == nil && o.probe == nil) {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	r := ndr.NewReader(stub, false)
	r.SetNDR64(ndr64)
	if i.orpc {
		orpcThis(r)
	}
	if o.handle {
		readHandle(r)
	}
	if o.probe != nil {
		o.probe(r)
	} else {
		c := Call{Interface: i.uuid, Opnum: opnum, Request: stub, NDR64: ndr64}
		x := &dc{s: &Session{Shared: NewShared()}, c: c, d: &Decoded{}, r: r, op: o}
		o.req(x)
	}
	if r.Err() != nil {
		return false
	}
	rest := stub[r.Offset():]
	return len(rest) < 8 && isZero(append(rest, 0))
}

// guessOrder lists the interfaces GuessInterface tries, most common first.
var guessOrder = [][16]byte{
	epmUUID, svcctlUUID, drsuapiUUID, tschUUID, atsvcUUID, sasecUUID, winregUUID, lsaUUID, samrUUID,
	netlogonUUID, srvsvcUUID, wkssvcUUID, eventlogUUID, even6UUID, spoolssUUID, efsrLsaUUID, efsrUUID,
	dfsnmUUID, fsrvpUUID, icprUUID, parUUID,
}

// dcomGuessOrder lists the DCOM interfaces tried for a stub that starts
// with an ORPCTHIS.
var dcomGuessOrder = [][16]byte{
	remUnknown2UUID, dispatchUUID, sysActivatorUUID, wbemServicesUUID, wbemLevel1LoginUUID,
}

// KnownPipe reports whether name (\PIPE\svcctl, svcctl...) is a named pipe
// one of the decoded interfaces is reached over.
func KnownPipe(name string) bool {
	p := normPipe(name)
	if p == "" {
		return false
	}
	for _, i := range reg() {
		for _, ip := range i.pipes {
			if ip == p {
				return true
			}
		}
	}
	return false
}
