package rpcops

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestOperationsDoc keeps the generated table of OPERATIONS.md equal to
// the registry: every interface, its pipes, the operations with argument
// decoders and how many more are only named (-update rewrites it).
func TestOperationsDoc(t *testing.T) {
	const begin, end = "<!-- BEGIN GENERATED: go test -run TestOperationsDoc -update -->\n", "<!-- END GENERATED -->\n"
	var b strings.Builder
	b.WriteString("| Interface | UUID | Pipes | Operations with decoded arguments | Named only |\n")
	b.WriteString("|---|---|---|---|---|\n")
	var ifs []*iface
	for _, i := range registry {
		ifs = append(ifs, i)
	}
	sort.Slice(ifs, func(a, b int) bool { return strings.ToLower(ifs[a].name) < strings.ToLower(ifs[b].name) })
	for _, i := range ifs {
		var decoded []string
		named := 0
		for opnum, n := range i.names {
			if n == "" || n == "QueryInterface" || n == "AddRef" || n == "Release" {
				continue
			}
			o := i.ops[uint16(opnum)]
			if o.req != nil || o.resp != nil {
				decoded = append(decoded, fmt.Sprintf("%s (%d)", n, opnum))
			} else {
				named++
			}
		}
		pipes := strings.Join(i.pipes, ", ")
		if pipes == "" {
			pipes = "TCP"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |\n", i.name, UUIDString(i.uuid), pipes, strings.Join(decoded, ", "), named)
	}
	doc, err := os.ReadFile("OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("OPERATIONS.md lacks the generated block markers")
	}
	got := s[i+len(begin) : j]
	if got == b.String() {
		return
	}
	if *update {
		if err := os.WriteFile("OPERATIONS.md", []byte(s[:i+len(begin)]+b.String()+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("OPERATIONS.md table is stale (go test -run TestOperationsDoc -update):\n%s", lineDiff(got, b.String()))
}
