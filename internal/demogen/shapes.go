package demogen

import (
	"fmt"
	"net/netip"
	"time"
)

// Shapes add command-and-control shapes the default sample lacks, each
// with the benign traffic that looks most like it (the hard negatives).
// They are off by default: the default sample stays byte for byte what
// it was.
type Shapes struct {
	// KeepAlive: one workstation keeps a TLS connection to a controller
	// open and checks in inside it every minute, reconnecting every hour
	// or two. Every workstation keeps a chat connection with a heartbeat
	// every 30 s (fleet software), and one holds a quote ticker that
	// pushes every 15 s in office hours (one host, a popular network).
	KeepAlive bool
	// Proxy: outbound web traffic goes through a forward proxy (PRX01,
	// 10.20.0.8:3128): HTTPS as CONNECT, plain HTTP as absolute-URI
	// requests; the proxy resolves names and connects upstream. The
	// sample's beacons go through it too, and one more workstation polls a
	// controller with absolute-URI requests in a kept-alive connection to
	// the proxy.
	Proxy bool
	// Inbound: an inside web server (WEB01, 10.20.0.80) open to the
	// Internet: visitors, an uptime monitor polling it and the mail server
	// from four addresses of one network, scanners sweeping every inside
	// address, and a web shell on it polled from outside every 200-350 s.
	Inbound bool
	// DNSBeacon: one workstation's implant talks through the inside
	// resolver (Cobalt Strike and Sliver DNS beacons): a lookup of a fresh
	// random name under one registered domain every minute ±20%, each from
	// a new source port as a stub resolver sends it.
	DNSBeacon bool
}

func (s Shapes) any() bool { return s.KeepAlive || s.Proxy || s.Inbound || s.DNSBeacon }

// Roles of the shapes, by workstation index (after the story's roles).
const (
	idxKeepAlive   = 17
	idxTicker      = 19
	idxProxyPoller = 25
	idxDNSBeacon   = 29
)

var (
	c2Keep   = site{"sync.cloud-notes.example", netip.MustParseAddr("203.0.113.140")}
	c2Proxy  = site{"update-check.example.net", netip.MustParseAddr("192.0.2.77")}
	chat     = site{"chat.office-suite.example", netip.AddrFrom4([4]byte{198, 18, 10, 90})}
	ticker   = site{"quotes.ticker.example", netip.AddrFrom4([4]byte{198, 18, 13, 44})}
	webShell = netip.MustParseAddr("203.0.113.200")
)

const proxyPort = 3128

// pickFree returns the workstation at index i (modulo), or the next one
// no role of the story took.
func (n *network) pickFree(i int, taken ...*host) *host {
	i %= len(n.ws)
	for {
		h := n.ws[i]
		free := true
		for _, x := range taken {
			if x == h {
				free = false
			}
		}
		if free {
			return h
		}
		i = (i + 1) % len(n.ws)
	}
}

// addShapeHosts puts the proxy and the web server on the network.
func (p *plan) addShapeHosts() {
	s := p.cfg.Shapes
	if s.Proxy {
		p.net.proxy = &host{node: inside("10.20.0.8", 64), name: "PRX01", role: "forward web proxy (port 3128)"}
		p.labels.Hosts = append(p.labels.Hosts, HostLabel{Addr: p.net.proxy.addr.String(), Name: p.net.proxy.name, Role: p.net.proxy.role})
	}
	if s.Inbound {
		p.net.web = &host{node: inside("10.20.0.80", 64), name: "WEB01", role: "web server open to the Internet"}
		p.labels.Hosts = append(p.labels.Hosts, HostLabel{Addr: p.net.web.addr.String(), Name: p.net.web.name, Role: p.net.web.role})
	}
}

// shapes schedules the shapes' traffic and labels.
func (p *plan) shapes() {
	s := p.cfg.Shapes
	zero, slow, wh, psA, psB, at := p.net.roles()
	taken := []*host{zero, slow, wh, psA, psB, at}
	if s.KeepAlive {
		p.keepAliveShape(taken)
	}
	if s.Proxy {
		p.proxyShape(taken)
	}
	if s.Inbound {
		p.inboundShape()
	}
	if s.DNSBeacon {
		p.dnsBeaconShape(taken)
	}
}

// dnsBeaconDomain is the DNS beacon's registered domain (RFC 2606: no
// other traffic of the sample names it).
const dnsBeaconDomain = "example.com"

// dnsBeaconShape: a lookup every minute ±20% of a fresh name, a 26
// character base32 label (the encoded check-in) and a hex session id
// under the beacon's domain, answered with one address.
func (p *plan) dnsBeaconShape(taken []*host) {
	n := p.net
	h := n.pickFree(idxDNSBeacon, taken...)
	const b32 = "abcdefghijklmnopqrstuvwxyz234567"
	session := fmt.Sprintf("%08x", p.r.u32())
	answer := netip.MustParseAddr("192.0.2.53")
	for t := p.cfg.Start.Add(p.cfg.Duration / 8); t.Before(p.end); t = t.Add(secs(p.r.jitter(60, 0.2))) {
		label := make([]byte, 26)
		for i := range label {
			label[i] = b32[p.r.intn(len(b32))]
		}
		name := string(label) + "." + session + ".sync." + dnsBeaconDomain
		id, cport, at := p.r.u16(), p.port(h.addr), t
		p.conns++
		p.add(at, func(out *[]packet, r *rng) {
			udpExchange(out, r, at, h.node, n.dns.node, cport, 53, dnsQuery(id, name), dnsAnswer(id, name, 0, answer),
				lanRTT(r)+time.Duration(r.intn(int(40*time.Millisecond))))
		})
	}
	l := p.labels
	l.C2Pairs = append(l.C2Pairs, Pair{Src: h.addr.String(), Dst: n.dns.addr.String(), Port: 53, Name: dnsBeaconDomain, Interval: 60,
		Note: "DNS beacon through the inside resolver: a fresh random name under one domain every minute, ±20% uniform jitter"})
	l.Compromised = append(l.Compromised, h.addr.String())
}

// keptTLS is one TLS connection from h to srv that stays open from t for
// span, with an exchange every period (±jitter) of req and resp bytes,
// at the times within accepts (all when nil).
func (p *plan) keptTLS(h *host, srv node, name string, t time.Time, span time.Duration, period, jitter float64, req, resp int, within func(time.Time) bool) {
	cport := p.port(h.addr)
	p.conns++
	end := t.Add(span)
	var at []time.Time
	for x := t.Add(secs(p.r.uniform(1, 5))); x.Before(end); x = x.Add(secs(p.r.jitter(period, jitter))) {
		if within == nil || within(x) {
			at = append(at, x)
		}
	}
	p.add(t, func(out *[]packet, r *rng) {
		c := newTCP(out, r, t, h.node, srv, cport, 443, wanRTT(r, 12*time.Millisecond), wanRate)
		c.handshake()
		hello := clientHello(name, false, r)
		c.send(0, hello)
		c.turn(200 * time.Microsecond)
		c.send(1, serverFlight(hello, false, r))
		c.turn(300 * time.Microsecond)
		c.send(0, tlsClientFinish(r))
		for _, x := range at {
			if x.After(c.t) {
				c.wait(x.Sub(c.t))
			}
			c.send(0, tlsData(noisy(r, req, 0.05), r))
			c.turn(30 * time.Millisecond)
			c.send(1, tlsData(noisy(r, resp, 0.05), r))
		}
		if end.After(c.t) {
			c.wait(end.Sub(c.t))
		}
		c.send(0, tlsRecord(tlsAppData, tlsVersion12, r.bytes(19)))
		c.close(0)
	})
}

func (p *plan) keepAliveShape(taken []*host) {
	n := p.net
	start, end := p.cfg.Start, p.end
	h := n.pickFree(idxKeepAlive, taken...)
	tk := n.pickFree(idxTicker, append(taken, h)...)
	// The implant: one connection at a time, an hour or two each, a
	// check-in every minute ±25% inside it.
	from := start.Add(p.cfg.Duration / 10)
	for t := from; t.Before(end); {
		span := secs(p.r.uniform(3600, 7200))
		if t.Add(span).After(end) {
			span = end.Sub(t)
		}
		p.resolve(h, c2Keep.name, c2Keep.addr, t)
		p.keptTLS(h, outside(c2Keep.addr, 47), c2Keep.name, t.Add(30*time.Millisecond), span, 60, 0.25, 420, 260, nil)
		t = t.Add(span + secs(p.r.uniform(2, 20)))
	}
	// Fleet: a chat client on every workstation, reconnecting hourly, a
	// heartbeat every 30 s.
	for _, w := range n.ws {
		for t := start.Add(secs(p.r.uniform(0, 600))); t.Before(end); t = t.Add(time.Hour) {
			p.resolve(w, chat.name, chat.addr, t)
			p.keptTLS(w, outside(chat.addr, 52), chat.name, t.Add(30*time.Millisecond), min(time.Hour-time.Second, end.Sub(t)), 30, 0.02, 90, 90, nil)
		}
	}
	// One host's quote ticker: pushes every 15 s, office hours only.
	office := func(x time.Time) bool {
		hod := float64(x.Hour()) + float64(x.Minute())/60
		return hod >= 9 && hod < 17
	}
	for t := start; t.Before(end); t = t.Add(2 * time.Hour) {
		p.resolve(tk, ticker.name, ticker.addr, t)
		p.keptTLS(tk, outside(ticker.addr, 52), ticker.name, t.Add(30*time.Millisecond), min(2*time.Hour-time.Second, end.Sub(t)), 15, 0, 60, 700, office)
	}
	l := p.labels
	l.C2Pairs = append(l.C2Pairs, Pair{Src: h.addr.String(), Dst: c2Keep.addr.String(), Port: 443, Name: c2Keep.name, Interval: 60,
		Note: "check-ins inside kept-alive TLS connections of 1-2 h, ±25% uniform jitter"})
	l.Compromised = append(l.Compromised, h.addr.String())
	l.HardNegative = append(l.HardNegative, Pair{Src: tk.addr.String(), Dst: ticker.addr.String(), Port: 443, Name: ticker.name,
		Interval: 15, Note: "benign quote ticker pushing in a kept-alive connection, office hours, one host in a popular network"})
}

// proxiedHTTPS is one HTTPS exchange of h with srv through the proxy:
// CONNECT, the proxy's own connection upstream (after resolving the name
// when its cached answer expired), and the TLS session relayed.
func (p *plan) proxiedHTTPS(h *host, srv node, name string, port uint16, t time.Time, req, resp int, think time.Duration) {
	px := p.net.proxy
	up := p.resolve(px, name, srv.addr, t.Add(time.Millisecond))
	k := cacheKey{h.addr, name}
	last, ok := p.tls[k]
	resume := ok && t.Sub(last) < time.Hour
	p.tls[k] = t
	cport, uport := p.port(h.addr), p.port(px.addr)
	p.conns += 2
	p.add(t, func(out *[]packet, r *rng) {
		cl := newTCP(out, r, t, h.node, px.node, cport, proxyPort, lanRTT(r), lanRate)
		cl.handshake()
		cl.send(0, []byte(fmt.Sprintf("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nProxy-Connection: keep-alive\r\n\r\n", name, port, name, port)))
		u := newTCP(out, r, later(cl.t, up), px.node, srv, uport, port, wanRTT(r, 12*time.Millisecond), wanRate)
		u.handshake()
		cl.t = later(cl.t, u.t)
		cl.send(1, []byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		relay := func(dir int, b []byte) { // dir 0: client to server
			a, z := cl, u
			if dir == 1 {
				a, z = u, cl
			}
			a.send(dir, b)
			z.t = later(z.t, a.t.Add(60*time.Microsecond))
			z.send(dir, b)
		}
		cl.turn(100 * time.Microsecond)
		hello := clientHello(name, resume, r)
		relay(0, hello)
		u.turn(200 * time.Microsecond)
		relay(1, serverFlight(hello, resume, r))
		cl.turn(300 * time.Microsecond)
		relay(0, append(tlsClientFinish(r), tlsData(req, r)...))
		u.turn(think)
		relay(1, tlsData(resp, r))
		cl.wait(time.Duration(r.intn(int(80 * time.Millisecond))))
		relay(0, tlsRecord(tlsAppData, tlsVersion12, r.bytes(19)))
		cl.close(0)
		u.t = later(u.t, cl.t)
		u.close(0)
	})
}

// proxiedHTTP is a plain HTTP GET of url through the proxy (an
// absolute-URI request), with the proxy's request upstream.
func (p *plan) proxiedHTTP(h *host, srv node, name, path string, t time.Time, resp int) {
	px := p.net.proxy
	up := p.resolve(px, name, srv.addr, t.Add(time.Millisecond))
	cport, uport := p.port(h.addr), p.port(px.addr)
	p.conns += 2
	p.add(t, func(out *[]packet, r *rng) {
		cl := newTCP(out, r, t, h.node, px.node, cport, proxyPort, lanRTT(r), lanRate)
		cl.handshake()
		cl.send(0, []byte(fmt.Sprintf("GET http://%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nProxy-Connection: close\r\n\r\n", name, path, name)))
		u := newTCP(out, r, later(cl.t, up), px.node, srv, uport, 80, wanRTT(r, 12*time.Millisecond), wanRate)
		u.handshake()
		u.send(0, []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 prx01\r\nX-Forwarded-For: %s\r\nConnection: close\r\n\r\n", path, name, h.addr)))
		u.turn(20 * time.Millisecond)
		body := append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", resp)), r.bytes(resp)...)
		u.send(1, body)
		u.close(1)
		cl.t = later(cl.t, u.t)
		cl.send(1, body)
		cl.close(1)
	})
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *plan) proxyShape(taken []*host) {
	n := p.net
	start, end := p.cfg.Start, p.end
	h := n.pickFree(idxProxyPoller, taken...)
	// Absolute-URI polls in a connection to the proxy kept open for an
	// hour at a time, every 45 s ±30%. The proxy fetches each poll with a
	// connection of its own.
	px := n.proxy
	from := start.Add(p.cfg.Duration / 8)
	srv := outside(c2Proxy.addr, 50)
	for t := from; t.Before(end); {
		span := min(time.Hour, end.Sub(t))
		var at []time.Time
		for x := t.Add(secs(p.r.uniform(1, 5))); x.Before(t.Add(span)); x = x.Add(secs(p.r.jitter(45, 0.3))) {
			at = append(at, x)
		}
		cport := p.port(h.addr)
		p.conns++
		type upstream struct {
			t    time.Time
			port uint16
		}
		var ups []upstream
		for _, x := range at {
			ups = append(ups, upstream{p.resolve(px, c2Proxy.name, c2Proxy.addr, x), p.port(px.addr)})
			p.conns++
		}
		t0, end0 := t, t.Add(span)
		p.add(t0, func(out *[]packet, r *rng) {
			cl := newTCP(out, r, t0, h.node, px.node, cport, proxyPort, lanRTT(r), lanRate)
			cl.handshake()
			for i, x := range at {
				if x.After(cl.t) {
					cl.wait(x.Sub(cl.t))
				}
				path := fmt.Sprintf("/api/v2/ping?id=%08x", r.u32())
				cl.send(0, []byte(fmt.Sprintf("POST http://%s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 96\r\nProxy-Connection: keep-alive\r\n\r\n%s", c2Proxy.name, path, c2Proxy.name, r.bytes(96))))
				u := newTCP(out, r, later(cl.t, ups[i].t), px.node, srv, ups[i].port, 80, wanRTT(r, 12*time.Millisecond), wanRate)
				u.handshake()
				u.send(0, []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 prx01\r\nContent-Length: 96\r\n\r\n%s", path, c2Proxy.name, r.bytes(96))))
				u.turn(40 * time.Millisecond)
				body := append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 48\r\n\r\n"), r.bytes(48)...)
				u.send(1, body)
				u.close(1)
				cl.t = later(cl.t, u.t)
				cl.send(1, body)
			}
			if end0.After(cl.t) {
				cl.wait(end0.Sub(cl.t))
			}
			cl.close(0)
		})
		t = t.Add(span + secs(p.r.uniform(2, 20)))
	}
	l := p.labels
	l.C2Pairs = append(l.C2Pairs, Pair{Src: h.addr.String(), Dst: c2Proxy.addr.String(), Port: 80, Name: c2Proxy.name, Interval: 45,
		Note: "through the forward proxy: absolute-URI POSTs every 45 s ±30% in a connection kept open for an hour"})
	l.Compromised = append(l.Compromised, h.addr.String())
}

func (p *plan) inboundShape() {
	n := p.net
	start, end := p.cfg.Start, p.end
	web := n.web
	serve := func(cli node, t time.Time, port uint16, req string, resp int, think time.Duration) {
		cport := uint16(32768 + p.r.intn(28000))
		p.conns++
		p.add(t, func(out *[]packet, r *rng) {
			c := newTCP(out, r, t, cli, web.node, cport, port, wanRTT(r, 20*time.Millisecond), wanRate)
			c.handshake()
			c.send(0, []byte(req))
			c.turn(think)
			body := append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n", resp)), r.bytes(resp)...)
			c.send(1, body)
			c.close(1)
		})
	}
	get := func(path string) string {
		return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: www.corp.example\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n", path)
	}
	// Visitors: 40 an hour, each from an address of its own, a few pages.
	for t := start; ; {
		t = t.Add(secs(p.r.exp() * 3600 / 40))
		if !t.Before(end) {
			break
		}
		v := outside(netip.AddrFrom4([4]byte{100, byte(64 + p.r.intn(64)), byte(p.r.intn(256)), byte(1 + p.r.intn(254))}), 50)
		for k, pages := 0, p.r.between(1, 4); k < pages; k++ {
			serve(v, t.Add(secs(float64(k)*p.r.uniform(5, 40))), 80, get([]string{"/", "/about", "/products", "/contact"}[p.r.intn(4)]), p.r.lognormal(8000, 0.8, 500, 200_000), 5*time.Millisecond)
		}
	}
	// An uptime monitor: four probes of one network, each polling the web
	// server and the mail server every minute.
	for i := range 4 {
		probe := outside(netip.AddrFrom4([4]byte{192, 0, 2, byte(201 + i)}), 55)
		for t := start.Add(secs(p.r.uniform(0, 60))); t.Before(end); t = t.Add(secs(p.r.jitter(60, 0.01))) {
			serve(probe, t, 80, get("/health"), 64, 2*time.Millisecond)
			mport, mail := uint16(32768+p.r.intn(28000)), n.mail
			tt := t.Add(500 * time.Millisecond)
			p.conns++
			p.add(tt, func(out *[]packet, r *rng) {
				c := newTCP(out, r, tt, probe, mail.node, mport, 993, wanRTT(r, 20*time.Millisecond), wanRate)
				c.handshake()
				c.send(1, []byte("* OK IMAP4rev1 ready\r\n"))
				c.close(0)
			})
		}
	}
	// Scanners sweep every inside address on a few ports; nothing answers
	// but a refusal.
	targets := append(append([]*host{}, n.servers()...), n.ws...)
	for s := range 3 {
		sc := outside(netip.AddrFrom4([4]byte{45, 140, 140, byte(70 + s)}), 240)
		t0 := start.Add(secs(p.r.uniform(0, float64(p.cfg.Duration/time.Second))))
		for i, tg := range targets {
			for j, port := range []uint16{22, 23, 3389, 445} {
				t := t0.Add(time.Duration(i*4+j) * 50 * time.Millisecond)
				if !t.Before(end) {
					continue
				}
				tg, port := tg, port
				sport := uint16(40000 + p.r.intn(20000))
				p.conns++
				p.add(t, func(out *[]packet, r *rng) {
					c := newTCP(out, r, t, sc, tg.node, sport, port, wanRTT(r, 30*time.Millisecond), wanRate)
					c.emit(t, 0, tcpSYN, nil)
					c.seq[0]++
					c.emit(t.Add(c.rtt), 1, tcpRST|tcpACK, nil)
				})
			}
		}
	}
	// The web shell: polled from outside every 200-350 s, answered.
	shell := outside(webShell, 49)
	from := start.Add(p.cfg.Duration / 6)
	for t := from; t.Before(end); t = t.Add(secs(p.r.uniform(200, 350))) {
		req := fmt.Sprintf("POST /uploads/thumb.php HTTP/1.1\r\nHost: www.corp.example\r\nUser-Agent: Mozilla/5.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 64\r\n\r\n%s", p.r.bytes(32))
		serve(shell, t, 80, req, noisy(p.r, 180, 0.1), 15*time.Millisecond)
	}
	l := p.labels
	l.C2Pairs = append(l.C2Pairs, Pair{Src: webShell.String(), Dst: web.addr.String(), Port: 80, Interval: 275,
		Note: "inbound: a web shell on the inside web server polled from outside every 200-350 s"})
	l.Compromised = append(l.Compromised, web.addr.String())
	for i := range 4 {
		l.HardNegative = append(l.HardNegative, Pair{Src: fmt.Sprintf("192.0.2.%d", 201+i), Dst: web.addr.String(), Port: 80, Interval: 60,
			Note: "uptime monitor, one of four probes polling two inside servers"})
	}
}
