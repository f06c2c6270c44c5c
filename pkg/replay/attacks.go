package replay

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Attack is a named attack seen across operations, beside them: Zerologon,
// authentication coercion (PetitPotam, the printer bug, DFSCoerce,
// ShadowCoerce, CheeseOunce), PrintNightmare driver loads, DCSync and
// DCShadow from hosts that are not domain controllers, certificates requested for
// another account, a host reached over a named-pipe C2 channel. Each names its CVE where one exists, its ATT&CK
// technique, a severity, whether it was only attempted or succeeded, and
// the operations that show it. Its JSON Lines record is jsonl.Attack.
type Attack struct {
	Name      string        // "Zerologon", "PetitPotam coercion (MS-EFSR)", ...
	CVE       string        // "CVE-2020-1472", "" when none
	Technique string        // ATT&CK id
	Severity  string        // "critical", "high", "medium"
	Verdict   string        // "exploited", "succeeded", "attempted"
	Time      time.Time     // first operation
	End       time.Time     // last operation's end
	Src       netip.Addr    // the attacker's side
	Dst       netip.Addr    // the host attacked
	Account   string        // the account used, or the one targeted (Zerologon: the machine account)
	Summary   string        // one sentence with the numbers
	Count     int           // operations that make up the pattern
	Evidence  []EvidenceRow // the operations that show it (at most maxEvidence)
	Packets   Evidence      // packet span of all of them, for nwhealth query
}

// EvidenceRow points at one operation of an attack.
type EvidenceRow struct {
	Time      time.Time
	Src       string
	Dst       string
	Interface string
	Operation string
	Target    string
	Status    string // "0x%08x", "" when the reply was not seen
}

const maxEvidence = 8

// Severities, worst first.
const (
	SevCritical = "critical"
	SevHigh     = "high"
	SevMedium   = "medium"
)

func row(o *Operation) EvidenceRow {
	r := EvidenceRow{Time: o.Time.UTC(), Src: addrText(o.Src), Dst: addrText(o.Dst), Interface: o.Interface, Operation: o.Operation, Target: o.Target}
	if o.HasStatus {
		r.Status = fmt.Sprintf("0x%08x", o.Status)
	}
	return r
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// group collects the operations of one attack between two hosts.
type group struct {
	a   Attack
	ops []*Operation
}

func (g *group) add(o *Operation) {
	if len(g.ops) == 0 || o.Time.Before(g.a.Time) {
		g.a.Time = o.Time.UTC()
	}
	if o.End.After(g.a.End) {
		g.a.End = o.End.UTC()
	}
	if g.a.End.Before(g.a.Time) {
		g.a.End = g.a.Time
	}
	g.ops = append(g.ops, o)
}

// finish fills the evidence: the first rows, the last one, and the rows
// marked key (a success, a password set) whatever their place.
func (g *group) finish(key func(*Operation) bool) Attack {
	a := g.a
	a.Count = len(g.ops)
	var keep []*Operation
	for i, o := range g.ops {
		if i < maxEvidence-2 || i == len(g.ops)-1 || (key != nil && key(o)) {
			keep = append(keep, o)
		}
	}
	if len(keep) > maxEvidence {
		keep = append(keep[:maxEvidence-1], keep[len(keep)-1])
	}
	for _, o := range keep {
		a.Evidence = append(a.Evidence, row(o))
	}
	a.Packets = (&Operation{Time: a.Time, End: a.End, Src: a.Src, Dst: a.Dst}).Evidence()
	return a
}

type pairKey struct {
	src, dst netip.Addr
	what     string
}

// DetectAttacks finds the attack patterns in ops (any order). dcs names
// the hosts known to act as domain controllers (MarkReplication has already
// turned their replication into plain operations).
func DetectAttacks(ops []Operation, dcs map[netip.Addr]bool) []Attack {
	idx := make([]*Operation, len(ops))
	for i := range ops {
		idx[i] = &ops[i]
	}
	sort.SliceStable(idx, func(i, j int) bool { return idx[i].Time.Before(idx[j].Time) })

	groups := map[pairKey]*group{}
	var order []pairKey
	get := func(k pairKey, init Attack) *group {
		g := groups[k]
		if g == nil {
			init.Src, init.Dst = k.src, k.dst
			g = &group{a: init}
			groups[k] = g
			order = append(order, k)
		}
		return g
	}
	sealedZL := sealedZerologon(idx)
	for _, o := range idx {
		if isPipeChannel(o) {
			get(pairKey{o.Src, o.Dst, "pipe channel"}, Attack{Name: "Named-pipe C2 channel over SMB", Technique: "T1071.002"}).add(o)
			continue
		}
		if o.Kind != "rpc" {
			continue
		}
		switch {
		case o.Interface == "netlogon" && sealedZL[pairKey{o.Src, o.Dst, "zerologon"}] && isChannelSetup(o):
			get(pairKey{o.Src, o.Dst, "zerologon"}, Attack{Name: "Zerologon", CVE: "CVE-2020-1472", Technique: "T1210"}).add(o)
		case o.Interface == "netlogon" && (o.Field("zerologon") != "" || isZerologonFollowUp(o, groups)):
			get(pairKey{o.Src, o.Dst, "zerologon"}, Attack{Name: "Zerologon", CVE: "CVE-2020-1472", Technique: "T1210"}).add(o)
		case o.Technique == "T1187" && o.Field("coerced to") != "":
			name, cve := coercionName(o.Interface)
			get(pairKey{o.Src, o.Dst, "coerce " + o.Interface}, Attack{Name: name, CVE: cve, Technique: "T1187"}).add(o)
		case o.Field("printnightmare") != "":
			get(pairKey{o.Src, o.Dst, "printnightmare"}, Attack{Name: "PrintNightmare driver load", CVE: "CVE-2021-34527", Technique: "T1210"}).add(o)
		case o.Technique == "T1003.006":
			get(pairKey{o.Src, o.Dst, "dcsync"}, Attack{Name: "DCSync", Technique: "T1003.006"}).add(o)
		case o.Technique == "T1207" && o.Interface == "drsuapi":
			get(pairKey{o.Src, o.Dst, "dcshadow"}, Attack{Name: "DCShadow (rogue domain controller)", Technique: "T1207"}).add(o)
		case o.Technique == "T1649" && certForOther(o):
			get(pairKey{o.Src, o.Dst, "adcs"}, Attack{Name: "Certificate for another account (AD CS ESC1/ESC6)", Technique: "T1649"}).add(o)
		}
	}
	var out []Attack
	for _, k := range order {
		g := groups[k]
		switch k.what {
		case "zerologon":
			out = append(out, zerologon(g, dcs))
		case "printnightmare":
			out = append(out, printNightmare(g))
		case "dcsync", "dcshadow":
			out = append(out, replication(g, k.what))
		case "adcs":
			out = append(out, certAbuse(g))
		case "pipe channel":
			out = append(out, pipeChannelAttack(g))
		default:
			out = append(out, coercion(g, idx, dcs))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if si, sj := sevRank(out[i].Severity), sevRank(out[j].Severity); si != sj {
			return si < sj
		}
		return out[i].Time.Before(out[j].Time)
	})
	return out
}

func sevRank(s string) int {
	switch s {
	case SevCritical:
		return 0
	case SevHigh:
		return 1
	}
	return 2
}

// zerologonRate is how many NetrServerAuthenticate calls from one host to
// one server within zerologonWindow make the Zerologon pattern when the
// arguments are sealed: a client sets up its secure channel once, the
// exploit tries until one of 256 keys fits (hundreds of attempts).
const (
	zerologonRate   = 20
	zerologonWindow = 5 * time.Minute
)

func isChannelSetup(o *Operation) bool {
	return o.Operation == "NetrServerReqChallenge" || strings.HasPrefix(o.Operation, "NetrServerAuthenticate") ||
		strings.HasPrefix(o.Operation, "NetrServerPasswordSet")
}

// sealedZerologon finds the pairs whose secure channel setups come at the
// Zerologon rate.
func sealedZerologon(ops []*Operation) map[pairKey]bool {
	times := map[pairKey][]time.Time{}
	out := map[pairKey]bool{}
	for _, o := range ops {
		if o.Kind != "rpc" || o.Interface != "netlogon" || !strings.HasPrefix(o.Operation, "NetrServerAuthenticate") {
			continue
		}
		k := pairKey{o.Src, o.Dst, "zerologon"}
		ts := append(times[k], o.Time)
		for len(ts) > 0 && o.Time.Sub(ts[0]) > zerologonWindow {
			ts = ts[1:]
		}
		times[k] = ts
		if len(ts) >= zerologonRate {
			out[k] = true
		}
	}
	return out
}

// isZerologonFollowUp: a NetrServerPasswordSet(2) or NetrServerAuthenticate
// on a pair already in a Zerologon attempt belongs to it.
func isZerologonFollowUp(o *Operation, groups map[pairKey]*group) bool {
	if !strings.HasPrefix(o.Operation, "NetrServerPasswordSet") {
		return false
	}
	_, ok := groups[pairKey{o.Src, o.Dst, "zerologon"}]
	return ok
}

func zerologon(g *group, dcs map[netip.Addr]bool) Attack {
	var tries, accepted, challenges, sealed int
	var reset, failedSet *Operation
	for _, o := range g.ops {
		if o.Encrypted {
			sealed++
		}
		switch {
		case o.Operation == "NetrServerReqChallenge":
			challenges++
		case strings.HasPrefix(o.Operation, "NetrServerAuthenticate"):
			tries++
			if o.HasStatus && o.Status == 0 && !o.Partial {
				accepted++
			}
			if g.a.Account == "" {
				g.a.Account = o.Target
			}
		case strings.HasPrefix(o.Operation, "NetrServerPasswordSet"):
			if !o.HasStatus || o.Status == 0 {
				reset = o
			} else {
				failedSet = o
			}
			if g.a.Account == "" {
				g.a.Account = o.Target
			}
		}
	}
	a := g.finish(func(o *Operation) bool {
		return strings.HasPrefix(o.Operation, "NetrServerPasswordSet") || o.HasStatus && o.Status == 0 && strings.HasPrefix(o.Operation, "NetrServerAuthenticate")
	})
	dc := dcLabel(a.Dst, dcs)
	switch {
	case sealed > 0 && sealed == len(g.ops):
		// Sealed calls: no credential or status to read, only the rate.
		a.Verdict, a.Severity = "attempted", SevHigh
		a.Summary = fmt.Sprintf("CVE-2020-1472 pattern against %s from %s: %s NetrServerAuthenticate calls within %s, arguments sealed",
			dc, a.Src, thousands(tries), a.End.Sub(a.Time).Round(time.Second))
		if reset != nil {
			a.Verdict, a.Severity = "exploited", SevCritical
			a.Summary += fmt.Sprintf(", then %s (sent only once a secure channel is up): the machine password was likely reset", reset.Operation)
		}
	case reset != nil:
		a.Verdict, a.Severity = "exploited", SevCritical
		a.Summary = fmt.Sprintf("CVE-2020-1472 exploited against %s from %s: %s zero-credential NetrServerAuthenticate attempts (%d accepted), then %s reset the %s machine password",
			dc, a.Src, thousands(tries), accepted, reset.Operation, firstNonEmpty(a.Account, "domain controller's"))
	case accepted > 0:
		a.Verdict, a.Severity = "exploited", SevCritical
		a.Summary = fmt.Sprintf("CVE-2020-1472: %s accepted a zero credential from %s after %s attempts (secure channel as %s)",
			dc, a.Src, thousands(tries), firstNonEmpty(a.Account, "?"))
		if failedSet != nil {
			a.Summary += fmt.Sprintf("; %s failed (0x%08x): the machine password was not changed", failedSet.Operation, failedSet.Status)
		} else {
			a.Summary += "; no password change seen"
		}
	case tries == 0:
		a.Verdict, a.Severity = "attempted", SevHigh
		a.Summary = fmt.Sprintf("CVE-2020-1472 probed against %s from %s: %s all-zero client challenges, no NetrServerAuthenticate captured",
			dc, a.Src, thousands(challenges))
	default:
		a.Verdict, a.Severity = "attempted", SevHigh
		a.Summary = fmt.Sprintf("CVE-2020-1472 attempted against %s from %s: %s zero-credential NetrServerAuthenticate attempts, none accepted in the capture",
			dc, a.Src, thousands(tries))
	}
	return a
}

func dcLabel(a netip.Addr, dcs map[netip.Addr]bool) string {
	if dcs[a] {
		return "domain controller " + a.String()
	}
	return a.String()
}

func coercionName(iface string) (name, cve string) {
	switch iface {
	case "efsrpc":
		return "PetitPotam coercion (MS-EFSR)", "CVE-2021-36942"
	case "spoolss":
		return "Printer bug coercion (MS-RPRN)", ""
	case "netdfs":
		return "DFSCoerce (MS-DFSNM)", ""
	case "FileServerVssAgent":
		return "ShadowCoerce (MS-FSRVP)", "CVE-2022-30154"
	case "eventlog":
		return "CheeseOunce coercion (MS-EVEN)", ""
	case "IDispatch":
		return "RemoteMonologue coercion (DCOM)", ""
	case "IDataManager":
		return "Performance Logs and Alerts coercion (MS-PLA Extract)", ""
	}
	return "Authentication coercion (" + iface + ")", ""
}

// coercion: the server named a host to call back; when the capture shows
// the server then connecting to that host, the coercion succeeded.
func coercion(g *group, all []*Operation, dcs map[netip.Addr]bool) Attack {
	hosts := map[string]bool{}
	for _, o := range g.ops {
		hosts[o.Field("coerced to")] = true
	}
	a := g.finish(nil)
	var list []string
	for h := range hosts {
		list = append(list, h)
	}
	sort.Strings(list)
	a.Verdict, a.Severity = "attempted", SevHigh
	if dcs[a.Dst] {
		a.Severity = SevCritical
	}
	for _, o := range all {
		if o.Src != a.Dst || o.Time.Before(a.Time) || o.Time.After(a.End.Add(time.Minute)) {
			continue
		}
		for _, h := range list {
			if ip, err := netip.ParseAddr(h); err == nil && ip == o.Dst {
				a.Verdict = "succeeded"
				a.Account = o.Account()
				a.Evidence = append(a.Evidence, row(o))
				break
			}
		}
		if a.Verdict == "succeeded" {
			break
		}
	}
	if a.Account == "" {
		a.Account = g.ops[0].Account()
	}
	a.Summary = fmt.Sprintf("%s asked %s to authenticate to %s (%s)", a.Src, dcLabel(a.Dst, dcs), strings.Join(list, ", "), calls(a.Count))
	if a.Verdict == "succeeded" {
		a.Summary += fmt.Sprintf("; %s then connected there as %s", a.Dst, firstNonEmpty(a.Account, "its machine account"))
	}
	return a
}

func printNightmare(g *group) Attack {
	a := g.finish(nil)
	a.Verdict, a.Severity = "attempted", SevHigh
	var files []string
	for _, o := range g.ops {
		if o.HasStatus && o.Status == 0 {
			a.Verdict, a.Severity = "exploited", SevCritical
		}
		if o.Command != "" && len(files) < 4 {
			files = append(files, o.Command)
		}
		if a.Account == "" {
			a.Account = o.Account()
		}
	}
	a.Summary = fmt.Sprintf("%s installed a printer driver on %s loading %s (%s, %s)", a.Src, a.Dst, strings.Join(files, ", "), calls(a.Count), a.Verdict)
	return a
}

func replication(g *group, what string) Attack {
	a := g.finish(nil)
	a.Verdict, a.Severity = "attempted", SevCritical
	var objs []string
	for _, o := range g.ops {
		// A reply came back and was no fault or error: sealed replies
		// hide the objects, not the fact that they were sent.
		if !o.Partial && (!o.HasStatus || o.Status == 0) || o.Field("objects") != "" && o.Field("objects") != "0" {
			a.Verdict = "exploited"
		}
		if o.Target != "" && len(objs) < 4 && !contains(objs, o.Target) {
			objs = append(objs, o.Target)
		}
		if a.Account == "" {
			a.Account = o.Account()
		}
	}
	if what == "dcsync" {
		a.Summary = fmt.Sprintf("%s, not a domain controller, pulled directory replication from %s (%s", a.Src, a.Dst, calls(a.Count))
	} else {
		a.Summary = fmt.Sprintf("%s, not a domain controller, changed replication on %s (%s", a.Src, a.Dst, calls(a.Count))
	}
	if len(objs) > 0 {
		a.Summary += ": " + strings.Join(objs, "; ")
	}
	a.Summary += ")"
	return a
}

// certForOther: a certificate request whose subject alternative name is a
// UPN of another account than the one that authenticated.
func certForOther(o *Operation) bool {
	for _, s := range strings.Split(o.Field("subject alternative name"), ", ") {
		upn, ok := strings.CutPrefix(s, "upn:")
		if !ok {
			continue
		}
		user, _, _ := strings.Cut(upn, "@")
		if o.User == "" || !strings.EqualFold(strings.TrimSuffix(user, "$"), strings.TrimSuffix(o.User, "$")) {
			return true
		}
	}
	return false
}

func certAbuse(g *group) Attack {
	a := g.finish(nil)
	a.Verdict, a.Severity = "attempted", SevHigh
	var sans []string
	for _, o := range g.ops {
		if o.Field("disposition") == "issued" {
			a.Verdict, a.Severity = "succeeded", SevCritical
		}
		if s := o.Field("subject alternative name"); s != "" && !contains(sans, s) {
			sans = append(sans, s)
		}
		if a.Account == "" {
			a.Account = o.Account()
		}
	}
	a.Summary = fmt.Sprintf("%s asked the CA on %s for a certificate naming %s as %s (%s)", firstNonEmpty(a.Account, a.Src.String()), a.Dst,
		strings.Join(sans, "; "), firstNonEmpty(g.ops[0].Field("template"), "an unnamed template"), a.Verdict)
	return a
}

func isPipeChannel(o *Operation) bool { return o.Kind == "pipe" && o.Operation == "pipe channel" }

// pipeChannelAttack: a host reached over a named-pipe channel, data
// written and read both ways (docs/replay.md, "Raw named pipes"). Every
// channel carried data both ways, so the host answered: succeeded. High
// when something besides the raw bytes says implant (a framework's
// default name, length framing, a schedule); medium otherwise, since an
// unknown product's own pipe protocol looks the same.
func pipeChannelAttack(g *group) Attack {
	a := g.finish(nil)
	a.Verdict, a.Severity = "succeeded", SevMedium
	var pipes, notes []string
	for _, o := range g.ops {
		if !contains(pipes, o.Pipe) && len(pipes) < 4 {
			pipes = append(pipes, o.Pipe)
		}
		if o.Field("framework") != "" || o.Field("framing") != "" || o.Field("schedule") != "" {
			a.Severity = SevHigh
		}
		for _, n := range []string{o.Field("framework"), o.Field("schedule")} {
			if n != "" && !contains(notes, n) && len(notes) < 4 {
				notes = append(notes, n)
			}
		}
		if a.Account == "" {
			a.Account = o.Account()
		}
	}
	what := "channel"
	if a.Count > 1 {
		what = "channels"
	}
	a.Summary = fmt.Sprintf("%s wrote to and read from %s over SMB named-pipe %s %s (%d, %s)", a.Src, a.Dst, what,
		strings.Join(pipes, ", "), a.Count, firstNonEmpty(strings.Join(notes, "; "), "no published default name, no schedule"))
	if a.Severity == SevMedium {
		a.Summary += "; no length framing either: an unknown product's own pipe protocol would look the same"
	}
	return a
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// thousands renders 2000 as "2,000".
// calls counts calls in words: "1 call", "12 calls".
func calls(n int) string {
	if n == 1 {
		return "1 call"
	}
	return thousands(n) + " calls"
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// MarkReplication turns the replication of a domain controller with
// another into a listed, unflagged operation: DCSync (T1003.006) and the
// DCShadow calls (T1207) are what domain controllers do to each other
// every few minutes. dcs are the hosts acting as domain controllers.
func MarkReplication(ops []Operation, dcs map[netip.Addr]bool) {
	for i := range ops {
		markReplication(&ops[i], dcs)
	}
}

func markReplication(o *Operation, dcs map[netip.Addr]bool) {
	if o.Interface != "drsuapi" || (o.Technique != "T1003.006" && o.Technique != "T1207") || !dcs[o.Src] {
		return
	}
	o.Technique, o.Phase = "", ""
	o.Fields = append(o.Fields, Field{"replication", o.Src.String() + " acts as a domain controller: replication between domain controllers"})
}

// DCSet joins the hosts the traffic showed acting as domain controllers
// with others (an inventory's).
func DCSet(seen []netip.Addr, more ...netip.Addr) map[netip.Addr]bool {
	m := make(map[netip.Addr]bool, len(seen)+len(more))
	for _, a := range append(seen, more...) {
		m[a.Unmap()] = true
	}
	return m
}

// AttackCandidate reports whether an operation can take part in an attack
// DetectAttacks finds, so a live run need keep only these.
func AttackCandidate(o *Operation) bool {
	switch o.Kind {
	case "logon", "tree":
		return true // a coerced server's callback
	case "pipe":
		return isPipeChannel(o)
	case "rpc":
		switch o.Technique {
		case "T1187", "T1210", "T1003.006", "T1207", "T1649":
			return true
		}
		return o.Interface == "netlogon" && isChannelSetup(o)
	}
	return false
}
