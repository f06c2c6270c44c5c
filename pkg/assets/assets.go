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

// inventoryKeys are the fields of an asset, in the order the errors list them.
var inventoryKeys = []string{"cidr", "host", "match", "name", "criticality", "owner", "role"}

// ParseInventory reads YAML: a list of assets, or a map with an `assets`
// list. Each asset names its addresses with one of `cidr`, `host` (an
// address) or `match` (either), and may give name, criticality, owner and
// role. Errors name the line and the offending value; an unknown field is
// an error, since a misspelt "criticality" would otherwise be dropped in
// silence.
func ParseInventory(r io.Reader) (*Inventory, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err // yaml's errors name the line
	}
	inv := &Inventory{}
	if len(doc.Content) == 0 {
		return inv, nil // an empty file
	}
	list := doc.Content[0]
	if list.Kind == yaml.MappingNode {
		var found *yaml.Node
		for i := 0; i+1 < len(list.Content); i += 2 {
			k := list.Content[i]
			if k.Value != "assets" {
				return nil, fmt.Errorf("line %d: unknown key %q (want assets: followed by a list)", k.Line, k.Value)
			}
			found = list.Content[i+1]
		}
		if found == nil {
			return nil, fmt.Errorf("line %d: no assets list", list.Line)
		}
		list = found
	}
	if err := noAlias(list); err != nil {
		return nil, err
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return inv, nil // "assets:" with nothing under it
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of assets, each a map of %s", list.Line, strings.Join(inventoryKeys, ", "))
	}
	for _, item := range list.Content {
		a, err := parseAsset(item)
		if err != nil {
			return nil, err
		}
		inv.assets = append(inv.assets, a)
	}
	slices.SortStableFunc(inv.assets, func(a, b Asset) int { return b.Prefix.Bits() - a.Prefix.Bits() })
	return inv, nil
}

// noAlias refuses a YAML alias (*name) by name: aliases are never expanded,
// as a few nested ones can stand for millions of entries, and without
// this check the error would speak of a wrong kind of value.
func noAlias(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("line %d: alias *%s: YAML aliases are not accepted in an inventory; write the value out", n.Line, n.Value)
	}
	return nil
}

// parseAsset reads one entry of the inventory list.
func parseAsset(item *yaml.Node) (Asset, error) {
	var a Asset
	if err := noAlias(item); err != nil {
		return a, err
	}
	if item.Kind != yaml.MappingNode {
		return a, fmt.Errorf("line %d: an asset is a map of %s, not %q", item.Line, strings.Join(inventoryKeys, ", "), item.Value)
	}
	var addr *yaml.Node
	var addrKey string
	for i := 0; i+1 < len(item.Content); i += 2 {
		k, v := item.Content[i], item.Content[i+1]
		if err := noAlias(k); err != nil {
			return a, err
		}
		if err := noAlias(v); err != nil {
			return a, err
		}
		if !slices.Contains(inventoryKeys, k.Value) {
			return a, fmt.Errorf("line %d: unknown field %q (want %s)", k.Line, k.Value, strings.Join(inventoryKeys, ", "))
		}
		if v.Kind != yaml.ScalarNode {
			return a, fmt.Errorf("line %d: %s: want a single value", v.Line, k.Value)
		}
		val := strings.TrimSpace(v.Value)
		switch k.Value {
		case "cidr", "host", "match":
			if addr != nil {
				return a, fmt.Errorf("line %d: %s %q: the asset already has %s %q; give one address", k.Line, k.Value, val, addrKey, addr.Value)
			}
			addr, addrKey = v, k.Value
			if k.Value == "host" && strings.Contains(val, "/") {
				return a, fmt.Errorf("line %d: host %q: want one address (cidr: for a network)", v.Line, val)
			}
			p, err := parsePrefix(val)
			if err != nil {
				return a, fmt.Errorf("line %d: %s %q: not an address or CIDR", v.Line, k.Value, val)
			}
			a.Prefix = p
		case "name":
			a.Name = v.Value
		case "owner":
			a.Owner = v.Value
		case "role":
			a.Role = v.Value
		case "criticality":
			if val == "" {
				break
			}
			c, err := ParseCriticality(val)
			if err != nil {
				return a, fmt.Errorf("line %d: criticality %q: want low, medium, high or critical", v.Line, val)
			}
			a.Criticality = c
		}
	}
	if addr == nil {
		return a, fmt.Errorf("line %d: the asset has no cidr, host or match", item.Line)
	}
	return a, nil
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
		orig := strings.TrimSpace(line)
		line = strings.ToLower(orig)
		if line == "" {
			continue
		}
		// The trailing dot goes first: "192.0.2.7." is the address, not
		// a name no query would give.
		name := strings.TrimSuffix(line, ".")
		if p, err := parsePrefix(name); err == nil {
			l.prefixes = append(l.prefixes, p)
			continue
		}
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			if !validDomain(rest) {
				return nil, fmt.Errorf("line %d: %q is not an address, CIDR, domain or *.domain", n, orig)
			}
			l.suffixes = append(l.suffixes, "."+rest)
			l.exact[rest] = true
			continue
		}
		if !validDomain(name) {
			return nil, fmt.Errorf("line %d: %q is not an address, CIDR, domain or *.domain", n, orig)
		}
		l.exact[name] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return l, nil
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

// validDomain accepts a lower-case name of labels of 1 to 63 letters,
// digits, '-' or '_' (RFC 1035 2.3.4; '_' for service names): an empty
// label ("..", "a..b") is a typo that would match no name.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for _, c := range s {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
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
