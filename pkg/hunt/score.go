package hunt

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/periodicity"
)

// Result is what Score found.
type Result struct {
	Findings []Finding // channels and hosts, most suspicious first
	Hosts    int       // internal hosts in the population
	Channels int       // channels with enough check-ins to be measured
	Records  int
	First    time.Time
	Last     time.Time
	// PopulationWeight says how much destination popularity could tell
	// (0 with a handful of internal hosts, 1 from about 15).
	PopulationWeight float64
}

// Model constants. Each is a shape, not a threshold tuned to one sample:
// docs/hunt.md explains them.
const (
	// popFullHosts is the population size from which popularity carries
	// full weight; below popNoHosts it carries none.
	popNoHosts   = 3.0
	popFullHosts = 15.0
	// capNoContext scales the score of a channel with nothing but its own
	// regularity (no informative population, no host evidence): at most
	// medium.
	capNoContext = 0.59
	// newAfter: a peer first reached after this share of the data (at
	// least an hour in) is new.
	newAfter = 0.2
	// popScale: rarity stays near 1 for a handful of hosts and falls off
	// as a Gaussian once about popScale of the hosts (at least 2) reach a
	// destination by IP or name: a fleet is a share of the machines, a
	// handful is not (a campaign on 6 of 120 hosts is still rare).
	popScale = 0.08
	// netScale stretches that for a destination's /24 or /48, and
	// netFloor is what a fully popular network leaves of rarity: provider
	// and cloud ranges are popular and also host controllers, so a popular
	// network discounts a rare address but does not clear it.
	netScale = 4
	netFloor = 0.5
	// minSpan: check-ins within less than this are one burst.
	minSpan = 30 * time.Second
	// Beacon evidence: regularity above beaconCut (what random series
	// reach) rises to certainty on beaconScale.
	beaconCut   = 0.25
	beaconScale = 0.12
	// Corroboration weights: how much each independent piece of evidence
	// about the channel or its source lifts a periodic channel to a rare
	// destination.
	liftLateral = 0.6
	liftTasking = 0.3
	liftNew     = 0.25
	// uncorroborated is the most a schedule to a rare destination scores
	// with nothing else: high at most; critical needs corroboration.
	uncorroborated = 0.78
	// humanFactor discounts a periodic channel confined to the hours its
	// host's user is active.
	humanFactor = 0.75
	// Sizes each way as steady as a beacon's (size regularity, 1 − robust
	// coefficient of variation): from sizeNone no evidence, from sizeFull
	// full, for a schedule known by its shape alone (jittered).
	sizeNone = 0.5
	sizeFull = 0.8
)

// Own evidence: with a population too small to judge popularity (few
// inside hosts, minutes of data), a channel is judged on what it shows by
// itself. A confident schedule to an outside destination on a standard
// port stays medium at most (update and telemetry services do that all
// day); on a port with no expected service it is high (T1571: implants and
// their controllers pick odd ports), and a loop of refused or unanswered
// attempts to such a port (a controller that is down) higher still.
const (
	ownOddPort = 0.74
	ownOddLoop = 0.78
	// loopShare: the share of a channel's attempts that failed for it to
	// be a reconnect loop.
	loopShare = 0.5
)

// A certificate no public CA vouched for (self-signed, or issued by a CA
// the server did not send), presented by a destination few inside hosts
// reach: RAT, Cobalt Strike, Metasploit and Sliver servers ship such
// defaults. Without a schedule it is a finding of its own, medium on a
// port with no expected service and low on a standard one (appliances and
// test servers use self-signed certificates on 443); with a schedule it
// lifts the channel as an odd port does. certRare is the rarity (by
// address or name) a destination needs: a handful of the inside hosts.
const (
	certOddPort = 0.5
	certStdPort = 0.3
	certRare    = 0.5
)

type scored struct {
	f Finding
	// strength is the evidence under the finding's caps (the score before
	// it was held at high without corroboration, at medium with too few
	// hosts, or raised to a certificate's rating): it orders findings of
	// one score, so that those held at a cap are not ranked by address.
	strength float64
}

// Score turns what was added into ranked findings.
func (m *Model) Score() Result {
	res := Result{Records: m.records}
	if m.records == 0 {
		return res
	}
	res.First, res.Last = time.Unix(0, m.first).UTC(), time.Unix(0, m.last).UTC()
	span := m.span()

	// The population: internal hosts that originate traffic of their own.
	active := m.population()
	H := max(len(active), 1)
	res.Hosts = len(active)
	w := clamp01((float64(len(active)) - popNoHosts) / (popFullHosts - popNoHosts))
	res.PopulationWeight = w

	// Names of destinations: the flow's own (SNI, Host, DNS cache), else
	// what DNS answers said. A proxied channel asked for a name: its
	// address, when DNS answered for it.
	for _, c := range m.channels {
		if c.name == "" {
			c.name = m.dnsNames[c.key.dst]
		}
	}
	for _, c := range m.proxied {
		if !c.key.dst.IsValid() {
			c.key.dst = m.nameAddrs[c.phost]
		}
		if c.key.dst.IsValid() && m.Internal(c.key.dst) {
			c.dir = Internal
		}
	}
	// What a forward proxy does on its clients' behalf is theirs: its own
	// connections to hosts they asked for are relayed, and a connection
	// to the proxy is judged by the destination asked for, not by the
	// proxy (a proxy is no rare destination). Neither is scored nor
	// counted in popularity.
	relayed := m.relayed
	all := make([]*channel, 0, len(m.channels)+len(m.proxied))
	for _, c := range m.channels {
		if !relayed(c) {
			all = append(all, c)
		}
	}
	for _, c := range m.proxied {
		all = append(all, c)
	}
	slices.SortFunc(all, cmpChan)

	// Popularity: distinct internal sources per destination IP, name and
	// network, and per service port to the outside. Proxied channels count
	// for the destination asked for, not for the proxy.
	type srcDst[T comparable] struct {
		src netip.Addr
		d   T
	}
	type portKey struct {
		port  uint16
		proto uint8
	}
	seenIP := map[srcDst[netip.Addr]]struct{}{}
	seenName := map[srcDst[string]]struct{}{}
	seenNet := map[srcDst[netip.Prefix]]struct{}{}
	seenPort := map[srcDst[portKey]]struct{}{}
	popIP := map[netip.Addr]int{}
	popName := map[string]int{}
	popNet := map[netip.Prefix]int{}
	popPort := map[portKey]int{} // internal hosts reaching outside addresses on a port
	for _, c := range all {
		k := c.key
		if c.dir == Inbound {
			continue
		}
		if k.dst.IsValid() {
			if _, ok := seenIP[srcDst[netip.Addr]{k.src, k.dst}]; !ok {
				seenIP[srcDst[netip.Addr]{k.src, k.dst}] = struct{}{}
				popIP[k.dst]++
			}
			n := netOf(k.dst)
			if _, ok := seenNet[srcDst[netip.Prefix]{k.src, n}]; !ok {
				seenNet[srcDst[netip.Prefix]{k.src, n}] = struct{}{}
				popNet[n]++
			}
		}
		if c.name != "" {
			if _, ok := seenName[srcDst[string]{k.src, c.name}]; !ok {
				seenName[srcDst[string]{k.src, c.name}] = struct{}{}
				popName[c.name]++
			}
		}
		if pk := (portKey{k.port, k.proto}); c.dir == Outbound {
			if _, ok := seenPort[srcDst[portKey]{k.src, pk}]; !ok {
				seenPort[srcDst[portKey]{k.src, pk}] = struct{}{}
				popPort[pk]++
			}
		}
	}

	// Inbound: outside sources that poll an inside service on a schedule.
	// Several that keep the same schedule, or poll from one network, are a
	// monitoring service (or one client fleet), not a controller.
	type svcKey struct {
		dst   netip.Addr
		port  uint16
		proto uint8
	}
	type poller struct {
		src    netip.Addr
		period float64
	}
	svcPollers := map[svcKey][]poller{}
	for _, c := range all {
		if c.dir != Inbound || c.conns+c.bursts < periodicity.MinEvents {
			continue
		}
		if per := periodicity.AnalyzeRuns(c.runs(m.first)); per.Regularity >= 0.5 && per.Events >= periodicity.MinEvents {
			sk := svcKey{c.key.dst, c.key.port, c.key.proto}
			svcPollers[sk] = append(svcPollers[sk], poller{c.key.src, per.Period})
		}
	}
	// alike counts the pollers of a service like src's: its own schedule
	// (within a quarter) or its network.
	alike := func(sk svcKey, src netip.Addr, period float64) int {
		n := 0
		for _, q := range svcPollers[sk] {
			if q.src == src || netOf(q.src) == netOf(src) || period > 0 && math.Abs(q.period-period) <= 0.25*period {
				n++
			}
		}
		return n
	}

	// Host evidence: lateral fan-out to admin ports, scanning, and the
	// hours each host's user is away.
	hs := m.hostEvidence(active, w, span)
	quiet := map[netip.Addr]uint32{}
	for _, h := range active {
		quiet[h.addr] = m.quietHours(h)
	}

	allowed := func(a netip.Addr, name string) bool {
		return m.cfg.Allowed != nil && m.cfg.Allowed(a, name)
	}

	// Channels: by IP, plus by name where a name spans several addresses.
	var out []scored
	groups := map[nameKey][]*channel{}
	for k, c := range m.channels {
		if c.name != "" && c.dir != Inbound && !relayed(c) {
			nk := nameKey{k.src, c.name, k.port, k.proto}
			groups[nk] = append(groups[nk], c)
		}
	}
	score := func(c *channel, runs [][]float64, sample []event, nameGroup bool, nIPs int) {
		k := c.key
		if allowed(k.src, "") || allowed(k.dst, c.name) || c.via.IsValid() && allowed(netip.Addr{}, c.phost) {
			return
		}
		chSpan := time.Duration(c.last - c.first)
		per := periodicity.AnalyzeRuns(runs)
		scheduled := per.Events >= periodicity.MinEvents && chSpan >= minSpan
		if !scheduled {
			// Too few check-ins, or one burst: only a certificate can
			// make it a finding (judged below, once rarity is known).
			if !c.cert.PrivateIssuer() || c.dir == Inbound || c.via.IsValid() {
				return
			}
			per = periodicity.Result{}
		} else {
			res.Channels++
		}
		// A sampled channel reports its counts scaled to all its check-ins.
		scale := float64(c.conns+c.bursts) / float64(max(1, len(sample)))
		sz := sized(sample)
		ob := make([]float64, len(sz))
		rb := make([]float64, len(sz))
		for i, e := range sz {
			ob[i], rb[i] = float64(e.obytes), float64(e.resp)
		}
		sizeReg := (periodicity.SizeRegularity(ob) + periodicity.SizeRegularity(rb)) / 2

		// Beacon evidence: how sure we are that a schedule exists, over
		// how much of the data. Steady sizes are not counted: keepalives
		// and idle implants both have them.
		cov := 1.0
		if span > 0 {
			cov = float64(chSpan) / float64(span)
		}
		spanF := 0.6 + 0.4*math.Min(1, cov/0.5)
		// A schedule whose jitter hides the beat (±50-100%: Cobalt
		// Strike, Sliver, Empire and Mythic all allow it) still shows in
		// its shape: bounded intervals, a persistent series and steady
		// sizes each way. That evidence stands in for regularity when it
		// is the stronger; it needs sizes (bursts inside a connection carry
		// none), since event traffic can be bounded and persistent too.
		sizeF := 0.0
		if len(sz) >= periodicity.MinEvents {
			sizeF = clamp01((sizeReg - sizeNone) / (sizeFull - sizeNone))
		}
		evidence := func(reg float64) float64 {
			if b := reg * spanF; b > beaconCut {
				return 1 - math.Exp(-(b-beaconCut)/beaconScale)
			}
			return 0
		}
		bp := evidence(max(per.Regularity, per.Bounded*sizeF))
		// The shape decided when the beat alone gives less than half the
		// evidence: then it is the first reason.
		jittered := evidence(per.Regularity) < 0.5*bp
		// A handful of random events often fits some period: confidence
		// grows with the intervals seen (0.4 at 5, 0.75 at 10, 0.95 at 20).
		bp *= 1 - math.Exp(-float64(max(per.Events-3, 0))/6)

		inbound := c.dir == Inbound
		internalDst := c.dir == Internal
		inside := k.src // the inside host of the channel
		if inbound {
			inside = k.dst
		}
		popScaleN := math.Max(2, popScale*float64(H))
		var rarDst, rar float64
		var pop int
		var popBy string
		if inbound {
			// An outside address that reaches many inside hosts (a scanner,
			// a monitoring service) is no rare controller, nor is one of
			// several that poll the same inside service.
			nIn := max(m.inTargets[k.src], alike(svcKey{k.dst, k.port, k.proto}, k.src, per.Period))
			rarDst = rarity(nIn, popScaleN)
			rar = rarDst * (netFloor + (1-netFloor)*rarity(m.inNetTargets[netOf(k.src)], netScale*popScaleN))
			pop, popBy = nIn, "inside hosts it reaches, or outside pollers of the service like it (same schedule or network)"
		} else {
			// Rarity: every other internal host that reaches the destination
			// (by address or by name, whichever is more) makes a fleet
			// behaviour (software on many machines) likelier than an
			// intrusion; the scale grows with the population, so a campaign
			// on 20 of 10,000 hosts is still rare. A popular network (a
			// provider range) discounts, but does not clear, a rare address.
			nDst := popIP[k.dst]
			if c.name != "" {
				nDst = max(nDst, popName[c.name])
			}
			rarDst = rarity(nDst, popScaleN)
			netF := 1.0
			if k.dst.IsValid() {
				netF = netFloor + (1-netFloor)*rarity(popNet[netOf(k.dst)], netScale*popScaleN)
			}
			rar = rarDst * netF
			pop, popBy = popIP[k.dst], "IP"
			if c.name != "" && popName[c.name] > pop {
				pop, popBy = popName[c.name], "name"
			}
			if k.dst.IsValid() {
				if n := popNet[netOf(k.dst)]; n > pop {
					pop, popBy = n, "network "+netOf(k.dst).String()
				}
			}
		}
		rarEff := w*rar + (1-w)*0.5
		rarDstEff := w*rarDst + (1-w)*0.5

		destF := 1.0
		infra := infraPort(k.port, k.proto)
		// Name service straight to an outside server, where most hosts
		// use an inside resolver, is no infrastructure habit.
		dnsOut := c.dir == Outbound && (k.port == 53 || k.port == 853) && w > 0 &&
			float64(popPort[portKey{k.port, k.proto}]) < math.Max(3, 0.2*float64(H))
		switch {
		case internalDst && infra:
			destF = 0.35
		case internalDst:
			destF = 0.6
		case infra && !dnsOut:
			destF = 0.7
		}
		// An odd port: no expected service there (T1571). Inbound to an
		// admin port is remote administration from outside (T1133), no odd
		// port.
		nonStd := !internalDst && !standardPort(k.port, k.proto) && !(inbound && adminIndex(k.port) >= 0)
		// An inside destination that no other inside host reaches, on a
		// port with no expected inside service (not admin, infrastructure
		// or a standard service), is judged as an outside one (below).
		asOutside := internalDst && popIP[k.dst] <= 1 && !infra && adminIndex(k.port) < 0 &&
			!standardPort(k.port, k.proto) && !c.via.IsValid()
		// An inside web server that no other inside host reaches, polled
		// through at least half the data, is judged on its own evidence too
		// when the population cannot say whether that is fleet software:
		// held at most medium, as a schedule on a standard port is, and
		// discounted as an inbound one (a server's clients come on
		// schedules too).
		insideWeb := internalDst && popIP[k.dst] <= 1 && webPort(k.port, k.proto) && !c.via.IsValid() && cov >= 0.5
		cert := c.cert.PrivateIssuer() && rarDst >= certRare && (c.dir == Outbound || asOutside) && !c.via.IsValid()
		if !scheduled && !cert {
			return
		}
		raw := uncorroborated * bp * (0.3 + 0.7*rarEff) * destF
		if nonStd {
			raw += 0.1 * bp * (1 - raw)
		}
		if cert {
			raw += 0.1 * bp * (1 - raw)
		}

		// Corroboration: evidence independent of the schedule, about the
		// channel (tasking, newness, night activity) and its source
		// (lateral movement). It lifts a periodic channel to a destination
		// few hosts use by address or name; a popular provider range does
		// not excuse it, fleet traffic is not lifted.
		he := hs[inside]
		var lat float64
		if he != nil {
			lat = he.lateral
		}
		task := tasking(sz)
		var isNew bool
		if h := m.hosts[inside]; h != nil {
			newCut := h.first + int64(max(time.Hour, time.Duration(3*per.Period*float64(time.Second)), time.Duration(0.1*float64(span))))
			isNew = c.first > newCut && span >= 2*time.Hour
		}
		night, inQuiet, quietN := diurnal(c.hours, quiet[inside], spanHours(c.first, c.last))
		newF := 0.0
		if isNew {
			newF = 1
		}
		// Activity through the quiet hours is no evidence by itself (agents
		// run at night too); activity confined to the busy hours is
		// evidence of a person, and discounts below.
		lift := 1 - (1-liftLateral*lat)*(1-liftTasking*task.evidence)*(1-liftNew*newF)
		sc := 1 - (1-raw)*(1-lift*bp*rarDstEff)
		human := night >= 0 && night < 0.2 && bp > 0
		humanF := 1.0
		if human {
			humanF = humanFactor
		}
		sc *= humanF
		sc *= capNoContext + (1-capNoContext)*math.Max(w, lat)

		// The channel's own evidence, for a population too small to
		// judge popularity. An inside destination that no other inside
		// host reaches, on a port with no expected inside service (not
		// admin, infrastructure or a standard service), is judged as an
		// outside one: in a lab or a small capture the controller often
		// sits in the same private range (a container network).
		failedShare := float64(c.failed) / float64(max(1, c.conns))
		loop := c.conns >= periodicity.MinEvents && failedShare >= loopShare
		oddPort := nonStd || asOutside
		var own float64
		if !internalDst || asOutside || insideWeb {
			cp := capNoContext
			if oddPort || cert {
				cp = ownOddPort
				if loop || oddPort && cert {
					cp = ownOddLoop
				}
			}
			own = cp * bp * humanF
			if inbound && !oddPort || insideWeb {
				own *= 0.9 // a server's clients come on schedules too
			}
			own = 1 - (1-own)*(1-liftLateral*lat*bp)
		}
		usedOwn := false
		if w < 1 && own > sc {
			usedOwn = (1-w)*own > w*sc
			sc = w*sc + (1-w)*own
		}
		certAlone := false
		sc0 := sc // the schedule's score, under a certificate's rating
		if cert {
			cs := certStdPort
			if oddPort {
				cs = certOddPort
			}
			if cs > sc {
				sc, certAlone = cs, true
			}
		}
		sc = clamp01(sc)
		strength := sc
		if certAlone {
			strength = clamp01(sc0)
		}

		f := Finding{
			Kind: KindChannel, Src: k.src, Dst: k.dst, DstName: c.name, DstPort: k.port, Proto: k.proto,
			Score: sc, PeriodSec: per.Period, Jitter: per.Jitter, Regularity: per.Regularity,
			Connections: c.conns, FirstSeen: time.Unix(0, c.first).UTC(), LastSeen: time.Unix(0, c.last).UTC(),
			Popularity: pop, Hosts: len(active), Beacon: bp >= 0.3, Direction: c.dir, Via: c.via, Own: usedOwn,
		}
		if c.via.IsValid() && c.phost != "" && c.name == "" {
			f.DstName = c.phost
		}
		if h := m.hosts[inside]; he != nil && h != nil {
			f.Fanout = len(h.dsts)
		}
		// Reasons, strongest first.
		if jittered {
			f.Reasons = append(f.Reasons, fmt.Sprintf("jittered schedule: intervals %s, active in %.0f%% of %s over %s (%d check-ins, spread %.2f, sizes steady %.2f)",
				fmtRange(per.Lo, per.Hi), 100*per.Persistence, binName(per.BinSec), fmtDur(chSpan),
				int(math.Round(float64(per.Events)*scale)), per.Spread, sizeReg))
		}
		if per.Period > 0 {
			events := int(math.Round(float64(per.Events) * scale))
			r := fmt.Sprintf("check-ins every %s ±%.0f%% over %s (%d check-ins, regularity %.2f",
				FormatPeriod(f.PeriodSec), 100*per.Jitter, fmtDur(chSpan), events, per.Regularity)
			if per.Missed > 0 {
				r += fmt.Sprintf(", %d missed", int(math.Round(float64(per.Missed)*scale)))
			}
			if per.Gaps > 0 {
				r += fmt.Sprintf(", %d long pauses", int(math.Round(float64(per.Gaps)*scale)))
			}
			if c.sampled() {
				r += fmt.Sprintf(", measured on a sample of %d", len(sample))
			}
			f.Reasons = append(f.Reasons, r+")")
		}
		if c.bursts > 0 {
			f.Reasons = append(f.Reasons, fmt.Sprintf("%d of the check-ins inside kept-open connections (%d connections)", c.bursts, c.conns))
		}
		if c.via.IsValid() {
			f.Reasons = append(f.Reasons, fmt.Sprintf("through the forward proxy %s, asked for %s:%d", c.via, c.phost, k.port))
		}
		if inbound {
			f.Reasons = append(f.Reasons, fmt.Sprintf("inbound: %s opens connections to inside host %s, which answers", k.src, k.dst))
		}
		if nameGroup {
			f.Reasons = append(f.Reasons, fmt.Sprintf("channel by name %s over %d addresses", c.name, nIPs))
		}
		if len(sz) >= periodicity.MinEvents {
			f.Reasons = append(f.Reasons, fmt.Sprintf("sizes %s (regularity %.2f)", map[bool]string{true: "steady", false: "vary"}[sizeReg >= 0.6], sizeReg))
		}
		switch {
		case w > 0 && inbound:
			f.Reasons = append(f.Reasons, fmt.Sprintf("%d %s (of %d active inside hosts; rarity %.2f)", pop, popBy, len(active), rar))
		case w > 0:
			f.Reasons = append(f.Reasons, fmt.Sprintf("destination reached by %d of %d internal hosts (by %s; rarity %.2f)", pop, len(active), popBy, rar))
		default:
			f.Reasons = append(f.Reasons, fmt.Sprintf("only %d internal hosts: popularity not informative", len(active)))
		}
		if loop {
			f.Reasons = append(f.Reasons, fmt.Sprintf("reconnect loop: %d of %d attempts refused or unanswered", c.failed, c.conns))
		}
		if task.evidence > 0.1 {
			f.Reasons = append(f.Reasons, fmt.Sprintf("occasional large transfers: %d of %d check-ins moved about %s against a steady %s (tasking)",
				int(math.Round(float64(task.bursts)*scale)), c.conns, fmtBytes(task.big), fmtBytes(task.base)))
		}
		if isNew {
			f.Reasons = append(f.Reasons, fmt.Sprintf("new: began %s after the source was first seen", fmtDur(time.Duration(c.first-m.hosts[inside].first))))
		}
		if night >= 0.5 && bp > 0 {
			f.Reasons = append(f.Reasons, fmt.Sprintf("also checks in while the source's user is away (%d of %d quiet hours)", inQuiet, quietN))
		}
		if human {
			f.Reasons = append(f.Reasons, fmt.Sprintf("only in the source's busy hours (%d of %d quiet hours): likely a person's doing", inQuiet, quietN))
		}
		if internalDst && !asOutside {
			f.Reasons = append(f.Reasons, "internal destination")
		}
		if dnsOut {
			f.Reasons = append(f.Reasons, fmt.Sprintf("name service straight to an outside server (%d of %d hosts do)", popPort[portKey{k.port, k.proto}], len(active)))
		}
		if nonStd {
			f.Reasons = append(f.Reasons, fmt.Sprintf("non-standard port %d/%s", k.port, ProtoName(k.proto)))
		}
		if cert && certAlone {
			// What rated it goes first (a table shows the first reason).
			f.Reasons = append([]string{certReason(c.cert)}, f.Reasons...)
		} else if cert {
			f.Reasons = append(f.Reasons, certReason(c.cert))
		}
		if lat > 0.2 {
			f.Reasons = append(f.Reasons, fmt.Sprintf("source also fans out to %d internal peers on admin ports", he.adminPeers))
		}
		switch {
		case certAlone && !scheduled:
			f.Reasons = append(f.Reasons, "no schedule to score: rated on the certificate from a rare destination (medium on a port with no expected service, low on a standard one)")
		case certAlone:
			f.Reasons = append(f.Reasons, "rated on the certificate from a rare destination more than on the schedule")
		case bp == 0:
		case usedOwn && asOutside:
			f.Reasons = append(f.Reasons, fmt.Sprintf("population too small to judge: scored on the channel's own evidence; inside destination %s reached by no other inside host on odd port %d, judged as outside", k.dst, k.port))
		case usedOwn && insideWeb:
			f.Reasons = append(f.Reasons, fmt.Sprintf("population too small to judge: scored on the channel's own evidence; inside web server %s reached by no other inside host, polled through %.0f%% of the data: held at most medium", k.dst, 100*math.Min(1, cov)))
		case usedOwn && oddPort:
			f.Reasons = append(f.Reasons, "population too small to judge: scored on the channel's own evidence (a schedule to an odd port)")
		case usedOwn:
			f.Reasons = append(f.Reasons, "population too small to judge: scored on the channel's own evidence; a schedule on a standard port is held at most medium")
		case math.Max(w, lat) < 0.5:
			f.Reasons = append(f.Reasons, "nothing but its own behaviour: held at most medium")
		}
		f.Attack = channelAttack(k.port, k.proto, c.nameSrc, nonStd || asOutside, bp)
		if cert {
			f.Attack = append(f.Attack, "T1573.002") // encrypted channel, asymmetric: the implant's own PKI
			if oddPort {
				f.Attack = append(f.Attack, "T1571")
			}
			f.Attack = dedupe(f.Attack)
		}
		if inbound && adminIndex(k.port) >= 0 && bp >= 0.3 {
			f.Attack = dedupe(append(f.Attack, "T1133")) // external remote services
		}
		if c.via.IsValid() && bp >= 0.3 {
			f.Attack = dedupe(append(f.Attack, "T1090")) // proxy
		}
		f.Severity = SeverityOf(f.Score)
		out = append(out, scored{f: f, strength: strength})
	}
	for _, c := range all {
		score(c, c.runs(m.first), c.sample(), false, 1)
	}
	// Name channels whose name covers several addresses. Sampled members
	// cannot be interleaved into one series: such a group is left out.
	gkeys := make([]nameKey, 0, len(groups))
	for k, g := range groups {
		if len(g) >= 2 && !slices.ContainsFunc(g, (*channel).sampled) {
			gkeys = append(gkeys, k)
		}
	}
	slices.SortFunc(gkeys, func(a, b nameKey) int {
		if c := a.src.Compare(b.src); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.port, b.port), cmp.Compare(a.proto, b.proto))
	})
	for _, gk := range gkeys {
		g := groups[gk]
		slices.SortFunc(g, func(a, b *channel) int {
			return cmp.Or(cmp.Compare(b.conns, a.conns), a.key.dst.Compare(b.key.dst))
		})
		merged := &channel{key: g[0].key, dir: g[0].dir, name: gk.name, nameSrc: g[0].nameSrc, first: g[0].first, last: g[0].last}
		for _, c := range g {
			merged.conns += c.conns
			merged.bursts += c.bursts
			merged.failed += c.failed
			merged.first, merged.last = min(merged.first, c.first), max(merged.last, c.last)
			merged.events = append(merged.events, c.events...)
			merged.hours |= c.hours
			merged.holes = append(merged.holes, c.holes...)
			if !merged.cert.Seen() {
				merged.cert = c.cert
			}
		}
		score(merged, merged.runs(m.first), merged.events, true, len(g))
	}

	// Lateral channels of hosts with fan-out evidence.
	keys := make([]chanKey, 0, len(m.channels))
	for k := range m.channels {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpKey)
	for _, k := range keys {
		he := hs[k.src]
		if he == nil || he.lateral < 0.3 || !m.Internal(k.dst) || adminIndex(k.port) < 0 || k.proto != 6 {
			continue
		}
		if allowed(k.src, "") || allowed(k.dst, "") {
			continue
		}
		c := m.channels[k]
		// One peer of a fan-out is a detail of its host's finding, which
		// carries the severity: at most medium on its own.
		sc := 0.4 * he.lateral
		f := Finding{Kind: KindChannel, Src: k.src, Dst: k.dst, DstName: c.name, DstPort: k.port, Proto: k.proto,
			Score: sc, Severity: SeverityOf(sc), Connections: c.conns, FirstSeen: time.Unix(0, c.first).UTC(),
			LastSeen: time.Unix(0, c.last).UTC(), Popularity: popIP[k.dst], Hosts: len(active), Fanout: he.adminPeers, Lateral: true,
			Direction: Internal,
			Reasons:   []string{fmt.Sprintf("admin port %d on an internal peer, one of %d the source reached (population median %.0f)", k.port, he.adminPeers, he.adminMedian)},
			Attack:    lateralAttack(1 << adminIndex(k.port)),
		}
		out = append(out, scored{f: f, strength: sc})
	}

	// Covert channels, judged apart from the channels, are evidence about
	// their hosts too.
	out = append(out, m.scoreDNS(w, H, allowed)...)
	out = append(out, m.scoreICMP(w, H, allowed)...)

	// Hosts: all their evidence (docs/hunt.md, The score, step 10).
	out = append(out, m.hostFindings(out, active, hs, w, allowed)...)

	slices.SortStableFunc(out, func(a, b scored) int {
		if c := cmp.Compare(b.f.Score, a.f.Score); c != 0 {
			return c
		}
		// At one score (a cap: high without corroboration, medium with
		// too few hosts, a certificate's rating), the stronger evidence
		// under it first.
		if c := cmp.Compare(b.strength, a.strength); c != 0 {
			return c
		}
		if a.f.Kind != b.f.Kind {
			// A host before its channel or covert finding at the same
			// score: the host is what to act on (and an inbound channel's
			// source is not it).
			if a.f.Kind == KindHost || b.f.Kind == KindHost {
				return cmp.Compare(kindOrder(a.f.Kind), kindOrder(b.f.Kind))
			}
			return strings.Compare(string(b.f.Kind), string(a.f.Kind))
		}
		if c := a.f.Src.Compare(b.f.Src); c != 0 {
			return c
		}
		if c := a.f.Dst.Compare(b.f.Dst); c != 0 {
			return c
		}
		if c := cmp.Compare(a.f.DstPort, b.f.DstPort); c != 0 {
			return c
		}
		return strings.Compare(a.f.DstName, b.f.DstName)
	})
	res.Findings = make([]Finding, len(out))
	for i := range out {
		res.Findings[i] = out[i].f
	}
	return res
}

// relayed reports whether a channel is a forward proxy's business: a
// connection to a proxy's proxy port (the request in it is the channel),
// or the proxy's own connection to a host its clients asked for.
func (m *Model) relayed(c *channel) bool {
	k := c.key
	if pi := m.proxies[k.dst]; pi != nil && pi.ports[k.port] && !c.via.IsValid() {
		return true
	}
	pi := m.proxies[k.src]
	if pi == nil || c.dir == Inbound {
		return false
	}
	name := c.name
	if name == "" {
		name = m.dnsNames[k.dst]
	}
	return name != "" && pi.hosts[name] || pi.hosts[k.dst.String()]
}

// cmpChan orders channels for a deterministic scoring order.
func cmpChan(a, b *channel) int {
	return cmp.Or(cmpKey(a.key, b.key), strings.Compare(a.phost, b.phost), a.via.Compare(b.via))
}

// nameKey groups the channels of one source to one name.
type nameKey struct {
	src   netip.Addr
	name  string
	port  uint16
	proto uint8
}

func cmpKey(a, b chanKey) int {
	if c := a.src.Compare(b.src); c != 0 {
		return c
	}
	if c := a.dst.Compare(b.dst); c != 0 {
		return c
	}
	if c := cmp.Compare(a.port, b.port); c != 0 {
		return c
	}
	return cmp.Compare(a.proto, b.proto)
}

type hostEv struct {
	adminPeers  int
	newAdmin    int
	ports       uint16
	adminMedian float64
	adminZ      float64
	lateral     float64
	scanPeers   int
	scanPort    uint32
	scanShare   float64 // failed share of the destinations on that port
	scanZ       float64
	scan        float64
}

// hostEvidence scores each active host's fan-out against the population.
func (m *Model) hostEvidence(active []*host, w float64, span time.Duration) map[netip.Addr]*hostEv {
	hs := make(map[netip.Addr]*hostEv, len(active))
	admin := make([]float64, 0, len(active))
	scans := make([]float64, 0, len(active))
	newCut := int64(math.MaxInt64)
	if span >= 2*time.Hour {
		newCut = m.first + int64(max(time.Hour, time.Duration(newAfter*float64(span))))
	}
	for _, h := range active {
		he := &hostEv{}
		for _, p := range h.internal {
			if p.ports != 0 {
				he.adminPeers++
				he.ports |= p.ports
				if p.first >= newCut {
					he.newAdmin++
				}
			}
		}
		for port, n := range h.failedDsts {
			if n > he.scanPeers || n == he.scanPeers && port < he.scanPort {
				he.scanPeers, he.scanPort = n, port
				he.scanShare = float64(n) / float64(max(1, h.portDsts[port]))
			}
		}
		hs[h.addr] = he
		admin = append(admin, float64(he.adminPeers))
		scans = append(scans, float64(he.scanPeers))
	}
	aMed, aMAD := medianMAD(admin)
	sMed, sMAD := medianMAD(scans)
	for _, he := range hs {
		he.adminMedian = aMed
		he.adminZ = (float64(he.adminPeers) - aMed) / (1.4826*aMAD + 1)
		he.scanZ = (float64(he.scanPeers) - sMed) / (1.4826*sMAD + 1)
		if he.adminPeers >= 3 {
			base := 1 - math.Exp(-float64(he.adminPeers-2)/3)
			dev := w*clamp01(he.adminZ/4) + (1-w)*0.5
			newness := 0.6 + 0.4*float64(he.newAdmin)/float64(he.adminPeers)
			if newCut == math.MaxInt64 {
				newness = 0.8 // too little history to tell new from old
			}
			he.lateral = base * dev * newness
		}
		if he.scanPeers > 5 {
			// A scanner fails on most of what it tries; a browser on few.
			base := (1 - math.Exp(-float64(he.scanPeers-5)/15)) * he.scanShare * he.scanShare
			dev := w*clamp01(he.scanZ/4) + (1-w)*0.6
			he.scan = base * dev
		}
	}
	return hs
}

// rarity is 1 for one host reaching a destination and falls off as a
// Gaussian in the further hosts, on the given scale.
func rarity(n int, scale float64) float64 {
	x := float64(max(n-1, 0)) / scale
	return math.Exp(-x * x)
}

func medianMAD(x []float64) (med, mad float64) {
	if len(x) == 0 {
		return 0, 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	for i := range s {
		s[i] = math.Abs(s[i] - med)
	}
	slices.Sort(s)
	mad = s[len(s)/2]
	return med, mad
}

// netOf is the /24 (IPv4) or /48 (IPv6) holding a.
func netOf(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p
}

// infraPort: name, time, address and discovery services every host uses.
func infraPort(port uint16, proto uint8) bool {
	switch port {
	case 53, 5353, 5355, 853:
		return true
	case 123, 67, 68, 137, 138, 1900, 3702, 161:
		return proto == 17
	case 88, 389, 636, 3268:
		return true
	case 500, 4500, 1194, 51820: // VPN tunnels keep themselves alive
		return proto == 17
	}
	return proto == 1 || proto == 58
}

// webPort: the web ports implants poll over HTTP(S) (T1071.001).
func webPort(port uint16, proto uint8) bool {
	return proto == 6 && (port == 80 || port == 443 || port == 8080 || port == 8443)
}

// standardPort: ports where a service of that name is expected, so a
// connection there does not stand out by its port.
func standardPort(port uint16, proto uint8) bool {
	switch port {
	case 20, 21, 22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 853, 993, 995,
		3478, 5222, 5223, 8080, 8443, 8883, 1883, 5228, 19302,
		500, 4500, 1194, 1701, 1723, 51820: // VPN: IKE, NAT-T, OpenVPN, L2TP, PPTP, WireGuard
		return true
	}
	return proto == 1 || proto == 58 || port == 0
}

func channelAttack(port uint16, proto uint8, src flow.NameSource, nonStd bool, bp float64) []string {
	if bp < 0.3 {
		return nil
	}
	var ids []string
	switch {
	case proto == 6 && (port == 80 || port == 8080 || port == 8000 || port == 8008):
		ids = append(ids, "T1071.001")
	case proto == 6 && (port == 443 || port == 8443):
		ids = append(ids, "T1071.001", "T1573")
	case proto == 6 && (port == 993 || port == 995 || port == 465 || port == 853 || port == 8883):
		ids = append(ids, "T1573")
	case port == 53:
		ids = append(ids, "T1071.004")
	}
	if src == flow.NameSNI && !slices.Contains(ids, "T1573") {
		ids = append(ids, "T1573")
	}
	if nonStd {
		ids = append(ids, "T1571")
	}
	return ids
}

// certReason says what the certificate was.
func certReason(c flow.TLSCert) string {
	cn := func(s string) string {
		if s == "" {
			return "(no CN)"
		}
		return "CN=" + s
	}
	if c.SelfSigned() {
		return fmt.Sprintf("TLS with a self-signed certificate %s issued by %s", cn(c.SubjectCN), cn(c.IssuerCN))
	}
	return fmt.Sprintf("TLS with a certificate %s issued by %s, a CA that no chain to a public root vouched for (private CA)", cn(c.SubjectCN), cn(c.IssuerCN))
}

func lateralAttack(ports uint16) []string {
	var ids []string
	for i, p := range adminPorts {
		if ports&(1<<i) == 0 {
			continue
		}
		switch p {
		case 139, 445:
			ids = append(ids, "T1021.002")
		case 135:
			ids = append(ids, "T1047")
		case 3389:
			ids = append(ids, "T1021.001")
		case 5985, 5986:
			ids = append(ids, "T1021.006")
		case 22:
			ids = append(ids, "T1021.004")
		}
	}
	return dedupe(ids)
}

func portList(ports uint16) string {
	var s []string
	for i, p := range adminPorts {
		if ports&(1<<i) != 0 {
			s = append(s, fmt.Sprint(p))
		}
	}
	return strings.Join(s, ",")
}

func dedupe(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func fmtBytes(b float64) string {
	switch {
	case b < 2048:
		return fmt.Sprintf("%.0f B", b)
	case b < 2<<20:
		return fmt.Sprintf("%.0f KB", b/1024)
	}
	return fmt.Sprintf("%.1f MB", b/(1<<20))
}

// FormatPeriod prints a period for people: "2.2s", "61s", "15.5m", "1.0h"
// ("?" when unknown).
func FormatPeriod(s float64) string {
	switch {
	case s <= 0:
		return "?"
	case s < 10:
		return fmt.Sprintf("%.1fs", s)
	case s < 120:
		return fmt.Sprintf("%.0fs", s)
	case s < 7200:
		return fmt.Sprintf("%.1fm", s/60)
	}
	return fmt.Sprintf("%.1fh", s/3600)
}

// fmtRange prints a range of intervals in the unit of its top:
// "0.3-14 s", "1.5-9.8 m", or "1.0 s-6.5 m" when the bottom would read 0.
func fmtRange(lo, hi float64) string {
	unit := func(x float64) (string, float64) {
		switch {
		case x >= 7200:
			return "h", 3600
		case x >= 120:
			return "m", 60
		}
		return "s", 1
	}
	num := func(x float64) string {
		if x < 10 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	u, div := unit(hi)
	if lo < 0.1*div {
		lu, ldiv := unit(lo)
		return num(lo/ldiv) + " " + lu + "-" + num(hi/div) + " " + u
	}
	return num(lo/div) + "-" + num(hi/div) + " " + u
}

// binName names a persistence window: "minutes", "5-minute windows".
func binName(s float64) string {
	switch s {
	case 60:
		return "minutes"
	case 3600:
		return "hours"
	case 86400:
		return "days"
	}
	if s > 86400 {
		return fmt.Sprintf("%.0f-day windows", s/86400)
	}
	if s < 3600 {
		return fmt.Sprintf("%.0f-minute windows", s/60)
	}
	return fmt.Sprintf("%.0f-hour windows", s/3600)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0fm", d.Minutes())
	}
	return fmt.Sprintf("%.1fh", d.Hours())
}
