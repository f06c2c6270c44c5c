// Package assets reads the two files that tell hunt what it cannot see in
// traffic: an asset inventory (which addresses are what, how critical,
// whose) and an allow list of known-good addresses and domains.
package assets

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Criticality is an asset's business criticality.
type Criticality int

// Criticalities; Unknown sorts with Medium when actions are ordered.
const (
	Unknown Criticality = iota
	Low
	Medium
	High
	Critical
)

var critNames = [...]string{"unknown", "low", "medium", "high", "critical"}

func (c Criticality) String() string {
	if c < 0 || int(c) >= len(critNames) {
		return "unknown"
	}
	return critNames[c]
}

// Weight is the factor used to order actions: Unknown counts as Medium.
func (c Criticality) Weight() int {
	if c == Unknown {
		return int(Medium)
	}
	return int(c)
}

// ParseCriticality reads low, medium, high or critical.
func ParseCriticality(s string) (Criticality, error) {
	for i, n := range critNames[1:] {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Criticality(i + 1), nil
		}
	}
	return Unknown, fmt.Errorf("unknown criticality %q (want low, medium, high or critical)", s)
}

// Asset describes the addresses of one prefix.
type Asset struct {
	Prefix      netip.Prefix
	Name        string
	Criticality Criticality
	Owner       string
	Role        string
}

// Inventory finds the asset of an address, most specific prefix first.
type Inventory struct{ assets []Asset }

type yamlAsset struct {
	CIDR        string `yaml:"cidr"`
	Host        string `yaml:"host"`
	Match       string `yaml:"match"`
	Name        string `yaml:"name"`
	Criticality string `yaml:"criticality"`
	Owner       string `yaml:"owner"`
	Role        string `yaml:"role"`
}

// ParseInventory reads YAML: a list of assets, or a map with an `assets`
// list. Each asset names its addresses with `cidr`, `host` (an address)
// or `match` (either), and may give name, criticality, owner and role.
func ParseInventory(r io.Reader) (*Inventory, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, err
	}
	var list []yamlAsset
	var doc struct {
		Assets []yamlAsset `yaml:"assets"`
	}
	if err := yaml.Unmarshal(raw, &doc); err == nil && len(doc.Assets) > 0 {
		list = doc.Assets
	} else if err := yaml.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("assets: %w", err)
	}
	inv := &Inventory{}
	for i, y := range list {
		spec := strings.TrimSpace(y.CIDR + y.Host + y.Match)
		if spec == "" {
			return nil, fmt.Errorf("assets: entry %d has no cidr, host or match", i+1)
		}
		p, err := parsePrefix(spec)
		if err != nil {
			return nil, fmt.Errorf("assets: entry %d: %w", i+1, err)
		}
		a := Asset{Prefix: p, Name: y.Name, Owner: y.Owner, Role: y.Role}
		if y.Criticality != "" {
			if a.Criticality, err = ParseCriticality(y.Criticality); err != nil {
				return nil, fmt.Errorf("assets: entry %d: %w", i+1, err)
			}
		}
		inv.assets = append(inv.assets, a)
	}
	slices.SortStableFunc(inv.assets, func(a, b Asset) int { return b.Prefix.Bits() - a.Prefix.Bits() })
	return inv, nil
}

// LoadInventory reads an inventory file.
func LoadInventory(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inv, err := ParseInventory(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// Lookup returns the most specific asset holding a.
func (inv *Inventory) Lookup(a netip.Addr) (Asset, bool) {
	if inv == nil {
		return Asset{}, false
	}
	a = a.Unmap()
	for _, x := range inv.assets {
		if x.Prefix.Contains(a) {
			return x, true
		}
	}
	return Asset{}, false
}

// DomainControllers lists the single hosts whose role names them a domain
// controller ("domain controller", "dc", "pdc", "rodc").
func (inv *Inventory) DomainControllers() []netip.Addr {
	if inv == nil {
		return nil
	}
	var out []netip.Addr
	for _, x := range inv.assets {
		if x.Prefix.IsSingleIP() && IsDomainControllerRole(x.Role) {
			out = append(out, x.Prefix.Addr())
		}
	}
	return out
}

// IsDomainControllerRole reports whether an inventory role names a domain
// controller.
func IsDomainControllerRole(role string) bool {
	r := strings.ToLower(strings.Join(strings.FieldsFunc(role, func(c rune) bool { return c == '-' || c == '_' || c == ' ' }), " "))
	switch r {
	case "domain controller", "dc", "pdc", "rodc", "read only domain controller", "readonly domain controller":
		return true
	}
	return false
}

// Len is the number of assets.
func (inv *Inventory) Len() int { return len(inv.assets) }

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AllowList holds known-good addresses, networks and domains.
type AllowList struct {
	prefixes []netip.Prefix
	exact    map[string]bool // domain names
	suffixes []string        // "*.example.com" as ".example.com"
}

// ParseAllow reads one entry a line: an address, a CIDR, a domain, or
// `*.domain` (which also matches the domain itself). `#` starts a comment.
func ParseAllow(r io.Reader) (*AllowList, error) {
	l := &AllowList{exact: map[string]bool{}}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.ToLower(strings.TrimSpace(line))
		if line == "" {
			continue
		}
		if p, err := parsePrefix(line); err == nil {
			l.prefixes = append(l.prefixes, p)
			continue
		}
		name := strings.TrimSuffix(line, ".")
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			if !validDomain(rest) {
				return nil, fmt.Errorf("allow list line %d: bad entry %q", n, line)
			}
			l.suffixes = append(l.suffixes, "."+rest)
			l.exact[rest] = true
			continue
		}
		if !validDomain(name) {
			return nil, fmt.Errorf("allow list line %d: bad entry %q", n, line)
		}
		l.exact[name] = true
	}
	return l, sc.Err()
}

// LoadAllow reads an allow-list file.
func LoadAllow(path string) (*AllowList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := ParseAllow(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Allows reports whether the address or the name is on the list.
func (l *AllowList) Allows(a netip.Addr, name string) bool {
	if l == nil {
		return false
	}
	if a.IsValid() {
		a = a.Unmap()
		for _, p := range l.prefixes {
			if p.Contains(a) {
				return true
			}
		}
	}
	if name == "" {
		return false
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if l.exact[name] {
		return true
	}
	for _, s := range l.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}
