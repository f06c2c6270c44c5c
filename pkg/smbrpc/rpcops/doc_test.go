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
	for _, i := range reg() {
		ifs = append(ifs, i)
	}
	sort.Slice(ifs, func(a, b int) bool {
		if x, y := strings.ToLower(ifs[a].name), strings.ToLower(ifs[b].name); x != y {
			return x < y
		}
		return UUIDString(ifs[a].uuid) < UUIDString(ifs[b].uuid) // one name, two UUIDs (efsrpc)
	})
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

// TestReplayDocSection keeps the rpcops section of docs/replay.md a copy
// of OPERATIONS.md, its headings moved under that document's "DCE/RPC"
// heading (-update rewrites it).
func TestReplayDocSection(t *testing.T) {
	const path = "../../../docs/replay.md"
	const begin = "<!-- BEGIN rpcops: a copy of pkg/smbrpc/rpcops/OPERATIONS.md; go test ./pkg/smbrpc/rpcops -run TestReplayDocSection -update -->\n"
	const end = "<!-- END rpcops -->\n"
	ops, err := os.ReadFile("OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(string(ops), "\n") {
		if strings.HasPrefix(line, "#") {
			line = "##" + line
		}
		want.WriteString(line)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the rpcops section markers", path)
	}
	if got := s[i+len(begin) : j]; got == want.String() {
		return
	} else if !*update {
		t.Fatalf("the rpcops section of %s differs from OPERATIONS.md (go test -run TestReplayDocSection -update):\n%s", path, lineDiff(got, want.String()))
	}
	if err := os.WriteFile(path, []byte(s[:i+len(begin)]+want.String()+s[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
