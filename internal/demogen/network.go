package demogen

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"time"
)

// The sample's network: a small Windows domain (CORP, corp.example) in
// 10.20.0.0/16 with servers in 10.20.0.0/24 and workstations in
// 10.20.1.0/24, behind one router to the outside. Outside addresses come
// from the documentation and benchmarking ranges (RFC 5737, RFC 2544), so
// the sample names no real host.

const (
	nbDomain  = "CORP"
	dnsDomain = "corp.example"
	domainDN  = "DC=corp,DC=example"
	domainSID = "S-1-5-21-3623811015-3361044348-30300820"
)

// host is a machine of the sample.
type host struct {
	node
	name string // NetBIOS name, upper case
	user string // the person who works at a workstation
	role string
}

func (h *host) fqdn() string { return lower(h.name) + "." + dnsDomain }

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

var routerMAC = [6]byte{0x00, 0x1c, 0x7f, 0x3a, 0x10, 0x01}

func macOf(a netip.Addr) [6]byte {
	v := a.As4()
	return [6]byte{0x00, 0x15, 0x5d, v[1], v[2], v[3]}
}

func inside(a string, ttl uint8) node {
	addr := netip.MustParseAddr(a)
	return node{addr: addr, mac: macOf(addr), ttl: ttl}
}

// outside is an Internet address as seen inside: through the router,
// hops away.
func outside(a netip.Addr, ttl uint8) node { return node{addr: a, mac: routerMAC, ttl: ttl} }

type network struct {
	start                  time.Time // servers booted well before it
	dc, dns, fs, mail, mon *host
	ws                     []*host
	proxy, web             *host     // with Shapes.Proxy and Shapes.Inbound only
	users                  []ridName // domain accounts with their RIDs
}

var (
	firstNames = []string{"anna", "ben", "carla", "david", "emma", "felix", "greta", "hugo", "ines", "jonas",
		"katrin", "lukas", "maria", "nils", "olga", "paul", "rosa", "simon", "tina", "uwe"}
	lastNames = []string{"schmidt", "meyer", "weber", "fischer", "wagner", "becker", "hoffmann", "koch",
		"richter", "klein", "wolf", "neumann", "braun", "zimmer", "hartmann", "krause", "lange", "werner"}
)

func newNetwork(start time.Time, workstations int) *network {
	n := &network{
		start: start,
		dc:    &host{node: inside("10.20.0.10", 128), name: "DC01", role: "domain controller, DNS for the domain, NTP"},
		dns:   &host{node: inside("10.20.0.53", 64), name: "NS01", role: "DNS resolver"},
		fs:    &host{node: inside("10.20.0.20", 128), name: "FS01", role: "file server"},
		mail:  &host{node: inside("10.20.0.25", 64), name: "MAIL01", role: "mail server (IMAPS)"},
		mon:   &host{node: inside("10.20.0.30", 64), name: "MON01", role: "monitoring server"},
	}
	for i := 0; i < workstations; i++ {
		a := fmt.Sprintf("10.20.1.%d", 11+i)
		user := fmt.Sprintf("%c.%s", firstNames[i%len(firstNames)][0], lastNames[(i*7)%len(lastNames)])
		if i >= len(firstNames) {
			user = fmt.Sprintf("%s.%s", firstNames[i%len(firstNames)], lastNames[(i*5)%len(lastNames)])
		}
		n.ws = append(n.ws, &host{node: inside(a, 128), name: fmt.Sprintf("WS-%03d", 11+i), user: user, role: "workstation"})
	}
	n.users = []ridName{{500, "Administrator"}, {501, "Guest"}, {502, "krbtgt"}, {1103, "svc_backup"}, {1104, "svc_sql"}, {1105, "it.admin"}}
	for i, w := range n.ws {
		n.users = append(n.users, ridName{uint32(1110 + i), w.user})
	}
	return n
}

// servers returns the servers of the sample.
func (n *network) servers() []*host { return []*host{n.dc, n.dns, n.fs, n.mail, n.mon} }

// smbPeer is how a client sees a Windows server.
func (n *network) smbPeer(srv *host, r *rng) smbPeer {
	return smbPeer{
		ntlm: ntlmServer{nbDomain: nbDomain, nbComputer: srv.name, dnsDomain: dnsDomain, dnsComputer: srv.fqdn()},
		guid: guidOf(srv.name), boot: n.start.AddDate(0, 0, -12),
		name: srv.name, clientGUID: guidFrom(r),
	}
}

// guidOf is a stable GUID for a name.
func guidOf(name string) guid {
	h := fnv.New128a()
	h.Write([]byte(name))
	var g guid
	copy(g[:], h.Sum(nil))
	g[7] = g[7]&0x0f | 0x40 // version 4
	g[8] = g[8]&0x3f | 0x80
	return g
}

func guidFrom(r *rng) guid {
	var g guid
	r.fill(g[:])
	g[7] = g[7]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// site is a name on the outside and where it resolves.
type site struct {
	name string
	addr netip.Addr
}

// Popular sites sit in a few provider networks (a CDN's /24s), the long
// tail anywhere in 198.19.0.0/16.
var popularSites = []string{
	"www.office-suite.example", "login.office-suite.example", "outlook.office-suite.example",
	"cdn.office-suite.example", "www.search.example", "images.search.example", "www.news-daily.example",
	"static.news-daily.example", "www.wiki.example", "upload.wiki.example", "www.video-stream.example",
	"i.video-stream.example", "www.social.example", "static.social.example", "www.maps.example",
	"www.weather.example", "www.shop.example", "img.shop.example", "www.bank.example", "www.travel.example",
	"api.crm-cloud.example", "app.crm-cloud.example", "www.code-host.example", "raw.code-host.example",
	"www.translate.example", "docs.vendor.example", "support.vendor.example", "www.stock-news.example",
	"fonts.cdn-provider.example", "js.cdn-provider.example", "ajax.cdn-provider.example", "www.jobs.example",
	"www.tax-office.example", "www.rail.example", "www.parcel.example", "www.dictionary.example",
	"www.forum.example", "www.tech-news.example", "www.cloud-storage.example", "api.cloud-storage.example",
}

func hashName(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

func popularSite(i int) site {
	name := popularSites[i]
	v := hashName(name)
	return site{name, netip.AddrFrom4([4]byte{198, 18, byte(10 + v%6), byte(2 + (v>>8)%250)})}
}

func longTailSite(i int) site {
	name := fmt.Sprintf("site%04d.example.org", i)
	v := hashName(name)
	return site{name, netip.AddrFrom4([4]byte{198, 19, byte(v >> 8), byte(2 + v%250)})}
}
