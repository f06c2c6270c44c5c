package demogen

import (
	"math"
	"net/netip"
	"time"
)

// plan schedules the sample's conversations. It draws only from its own
// generator, in a fixed order, so the schedule is the same on every run;
// each job gets a seed of its own for the bytes it builds.
type plan struct {
	cfg    Config
	end    time.Time
	net    *network
	r      *rng
	jobs   []job
	labels *Labels
	eph    map[netip.Addr]uint16  // next ephemeral port per host
	cache  map[cacheKey]time.Time // when a host's cached DNS answer for a name expires
	tls    map[cacheKey]time.Time // when a host last talked TLS to a name (session tickets)
	conns  int
}

type cacheKey struct {
	host netip.Addr
	name string
}

func newPlan(cfg Config) *plan {
	p := &plan{cfg: cfg, end: cfg.Start.Add(cfg.Duration), r: newRNG(cfg.Seed),
		eph: map[netip.Addr]uint16{}, cache: map[cacheKey]time.Time{}, tls: map[cacheKey]time.Time{}}
	p.net = newNetwork(cfg.Start, cfg.Workstations)
	p.labels = &Labels{Scenario: "nwhealth demo", Seed: cfg.Seed, Start: cfg.Start, End: p.end,
		Domain: nbDomain + " (" + dnsDomain + ")", Internal: "10.20.0.0/16"}
	for _, h := range append(p.net.servers(), p.net.ws...) {
		p.labels.Hosts = append(p.labels.Hosts, HostLabel{Addr: h.addr.String(), Name: h.name, Role: h.role, User: h.user})
	}
	if cfg.Shapes.any() {
		p.addShapeHosts()
	}
	return p
}

// add schedules build at start.
func (p *plan) add(start time.Time, build func(out *[]packet, r *rng)) {
	p.jobs = append(p.jobs, job{start: start, seq: len(p.jobs), seed: p.r.u64(), build: build})
}

// port returns a fresh ephemeral port of h (Windows' dynamic range).
func (p *plan) port(h netip.Addr) uint16 {
	v := p.eph[h]
	if v < 49152 {
		v = 49152 + uint16(p.r.intn(4000))
	}
	p.eph[h] = v + 1 + uint16(p.r.intn(3))
	if p.eph[h] < v { // wrapped
		p.eph[h] = 0
	}
	return v
}

// lanRTT and wanRTT are round trips seen from the core switch.
func lanRTT(r *rng) time.Duration {
	return time.Duration(150+r.intn(250)) * time.Microsecond
}

func wanRTT(r *rng, base time.Duration) time.Duration {
	return base + time.Duration(r.exp()*float64(3*time.Millisecond))
}

const (
	lanRate = 110e6 // bytes per second of a gigabit host
	wanRate = 6e6   // the Internet uplink's share per connection
)

// resolve schedules a DNS lookup of name by h at t when its cached answer
// has expired, and returns when the connection after it can start.
func (p *plan) resolve(h *host, name string, addr netip.Addr, t time.Time) time.Time {
	k := cacheKey{h.addr, name}
	if exp, ok := p.cache[k]; ok && t.Before(exp) {
		return t
	}
	p.cache[k] = t.Add(300 * time.Second)
	dns := p.net.dns
	id := p.r.u16()
	cport := p.port(h.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		udpExchange(out, r, t, h.node, dns.node, cport, 53, dnsQuery(id, name), dnsAnswer(id, name, 300, addr),
			lanRTT(r)+time.Duration(r.intn(int(15*time.Millisecond))))
	})
	return t.Add(20 * time.Millisecond)
}

// https schedules an HTTPS exchange from h to a server on the outside
// (or inside, when srv is inside) after resolving its name. A client
// that talked to the server in the last hour resumes its TLS session.
func (p *plan) https(h *host, srv node, name string, port uint16, t time.Time, req, resp int, think time.Duration) {
	if p.net.proxy != nil && srv.mac == routerMAC {
		p.proxiedHTTPS(h, srv, name, port, t, req, resp, think)
		return
	}
	if name != "" {
		t = p.resolve(h, name, srv.addr, t)
	}
	k := cacheKey{h.addr, name}
	last, ok := p.tls[k]
	resume := ok && t.Sub(last) < time.Hour
	p.tls[k] = t
	cport := p.port(h.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		rtt, rate := lanRTT(r), lanRate
		if srv.mac == routerMAC {
			rtt, rate = wanRTT(r, 12*time.Millisecond), wanRate
		}
		c := newTCP(out, r, t, h.node, srv, cport, port, rtt, rate)
		tlsSession(c, name, resume, req, resp, think, r)
	})
}

// background schedules the ordinary traffic of the day.
func (p *plan) background() {
	n := p.net
	start, end := p.cfg.Start, p.end
	for _, h := range n.ws {
		p.browsing(h)
	}
	// Every workstation: NTP to the domain controller (w32time polls a
	// fixed 1024 s), the monitoring agent every minute, update and
	// telemetry checks, mail polling.
	for _, h := range n.ws {
		t := start.Add(secs(p.r.uniform(0, 1024)))
		for ; t.Before(end); t = t.Add(1024 * time.Second) {
			p.ntp(h, t)
		}
	}
	periodic := []struct {
		name          string
		srv           node
		port          uint16
		every, jitter float64
		share         float64
		req, resp     int
	}{
		{"mon01." + dnsDomain, n.mon.node, 8443, 60, 0.02, 1, 600, 200},
		{"mail." + dnsDomain, n.mail.node, 993, 300, 0, 0.9, 300, 900},
		{"av-update.vendor.example", outside(netip.MustParseAddr("198.51.100.20"), 54), 443, 3600, 0.05, 1, 700, 5000},
		{"telemetry.os.example", outside(netip.MustParseAddr("198.51.100.40"), 116), 443, 900, 0.1, 0.95, 1500, 400},
	}
	for _, pj := range periodic {
		for _, h := range n.ws {
			if p.r.float() >= pj.share {
				continue
			}
			t := start.Add(secs(p.r.uniform(0, pj.every)))
			for t.Before(end) {
				p.https(h, pj.srv, pj.name, pj.port, t, noisy(p.r, pj.req, 0.05), noisy(p.r, pj.resp, 0.05), 2*time.Millisecond)
				t = t.Add(secs(p.r.jitter(pj.every, pj.jitter)))
			}
		}
	}
	// SMB: at logon each workstation reads group policy from the domain
	// controller and maps the department share; group policy refreshes
	// every 90 minutes, give or take 30.
	for _, h := range n.ws {
		logon := start.Add(secs(p.r.uniform(60, 1560)))
		p.gpo(h, logon)
		p.mapShare(h, logon.Add(secs(p.r.uniform(20, 60))))
		for t := logon.Add(secs(p.r.jitter(5400, 1.0/3))); t.Before(end); t = t.Add(secs(p.r.jitter(5400, 1.0/3))) {
			p.gpo(h, t)
		}
	}
}

func secs(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }

func noisy(r *rng, n int, v float64) int {
	return max(1, int(float64(n)*float64(1+float64(v*r.norm()))))
}

// browsing schedules one person's web use: visits arrive at random during
// working hours (08:00-18:00 UTC), most to popular sites, a quarter to the
// long tail; one in ten is plain HTTP.
func (p *plan) browsing(h *host) {
	const perHour = 20.0
	t := p.cfg.Start
	for {
		t = t.Add(secs(p.r.exp() * 3600 / perHour))
		if !t.Before(p.end) {
			return
		}
		hod := float64(t.Hour()) + float64(t.Minute())/60
		if hod < 8 || hod >= 18 || (hod >= 12 && hod < 12.5 && p.r.float() < 0.7) {
			continue
		}
		var s site
		if p.r.float() < 0.25 {
			s = longTailSite(p.r.intn(4000))
		} else {
			s = popularSite(zipf(p.r, len(popularSites)))
		}
		srv := outside(s.addr, 52)
		resp := p.r.lognormal(5000, 1.1, 300, 300_000)
		req := p.r.between(300, 1400)
		if p.r.float() < 0.1 {
			if p.net.proxy != nil {
				p.proxiedHTTP(h, srv, s.name, "/"+[]string{"index.html", "news/latest", "img/banner.png"}[p.r.intn(3)], t, resp)
				continue
			}
			t2 := p.resolve(h, s.name, s.addr, t)
			cport := p.port(h.addr)
			p.conns++
			name := s.name
			path := "/" + []string{"index.html", "assets/app.js", "img/banner.png", "api/v1/status", "news/latest"}[p.r.intn(5)]
			p.add(t2, func(out *[]packet, r *rng) {
				c := newTCP(out, r, t2, h.node, srv, cport, 80, wanRTT(r, 15*time.Millisecond), wanRate)
				httpSession(c, name, path, resp, time.Duration(r.between(5, 120))*time.Millisecond, r)
			})
			continue
		}
		p.https(h, srv, s.name, 443, t, req, resp, time.Duration(p.r.between(10, 250))*time.Millisecond)
	}
}

// zipf draws an index in [0, n) with probability falling as 1/(i+1).
func zipf(r *rng, n int) int {
	hn := 0.0
	for i := 1; i <= n; i++ {
		hn += 1 / float64(i)
	}
	u := r.float() * hn
	for i := 1; i <= n; i++ {
		u -= 1 / float64(i)
		if u <= 0 {
			return i - 1
		}
	}
	return n - 1
}

// ntp schedules one time synchronisation with the domain controller.
func (p *plan) ntp(h *host, t time.Time) {
	dc := p.net.dc
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		req := ntpPacket(false, t, 0, r)
		origin := ntpTime(t)
		udpExchange(out, r, t, h.node, dc.node, 123, 123, req, ntpPacket(true, t.Add(200*time.Microsecond), origin, r), lanRTT(r))
	})
}

// gpo schedules a group policy refresh: the machine account reads the
// policy's gpt.ini from SYSVOL on the domain controller. (The file is
// opened and closed without a read, so replay reports only plumbing.)
func (p *plan) gpo(h *host, t time.Time) {
	n := p.net
	cport := p.port(h.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		c := newTCP(out, r, t, h.node, n.dc.node, cport, 445, lanRTT(r), lanRate)
		c.handshake()
		s := &smbClient{c: c, r: r, think: 300 * time.Microsecond, serve: 200 * time.Microsecond}
		s.login(n.smbPeer(n.dc, r), account{nbDomain, h.name + "$", h.name})
		ipc, _ := s.treeConnect(`\\`+n.dc.fqdn()+`\IPC$`, sharePipe, maxAccessIPC)
		sysvol, _ := s.treeConnect(`\\`+n.dc.fqdn()+`\SYSVOL`, shareDisk, maxAccessUserDir)
		fid := s.open(sysvol, dnsDomain+`\Policies\{31B2F340-016D-11D2-945F-00C04FB984F9}\gpt.ini`,
			accessFileRead, attrNormal, shareAll, dispOpen, optNonDirectory, actionOpened, 23)
		s.close(sysvol, fid)
		s.logoff(ipc, sysvol)
	})
}

// mapShare schedules the logon script's drive mapping of the department
// share on the file server.
func (p *plan) mapShare(h *host, t time.Time) {
	n := p.net
	cport := p.port(h.addr)
	p.conns++
	p.add(t, func(out *[]packet, r *rng) {
		c := newTCP(out, r, t, h.node, n.fs.node, cport, 445, lanRTT(r), lanRate)
		c.handshake()
		s := &smbClient{c: c, r: r, think: 400 * time.Microsecond, serve: 250 * time.Microsecond}
		s.login(n.smbPeer(n.fs, r), account{nbDomain, h.user, h.name})
		tree, _ := s.treeConnect(`\\`+n.fs.name+`\Departments`, shareDisk, maxAccessUserDir)
		fid := s.open(tree, "Sales", accessDirList, attrDirectory, shareAll, dispOpen, optDirectory, actionOpened, 0)
		s.close(tree, fid)
		s.logoff(tree)
	})
}

// beaconSpec describes a beacon: its controller, interval and jitter
// (uniform, or normal when normal is set), the share of missed check-ins
// and of check-ins carrying a tasking of taskKB, and sizes.
type beaconSpec struct {
	name       string
	srv        node
	interval   float64
	jitter     float64
	normal     bool
	miss, task float64
	req, resp  int
	taskKB     int
	from       time.Time
	think      time.Duration
}

// beacon schedules the check-ins of h from b.from to the end.
func (p *plan) beacon(h *host, b beaconSpec) {
	for t := b.from; t.Before(p.end); {
		if p.r.float() >= b.miss {
			resp := noisy(p.r, b.resp, 0.08)
			if p.r.float() < b.task {
				resp += b.taskKB * 1024
			}
			p.https(h, b.srv, b.name, 443, t, noisy(p.r, b.req, 0.08), resp, b.think)
		}
		var d float64
		if b.normal {
			d = p.r.normJitter(b.interval, b.jitter)
		} else {
			d = p.r.jitter(b.interval, b.jitter)
		}
		t = t.Add(secs(math.Max(d, 1)))
	}
}
