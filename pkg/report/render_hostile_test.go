package report

import (
	"bytes"
	"encoding/json"
	"html"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/assets"
)

// TestHTMLEscapesIntelAssetsAndMeta: the fields TestHTMLEscapesHostileStrings
// does not reach (a feed's indicator names, ids and matched values, the
// asset inventory's names, owners and roles, the page's title and inputs)
// are escaped in every context too, and do reach the page.
func TestHTMLEscapesIntelAssetsAndMeta(t *testing.T) {
	for _, s := range []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `' onmouseover='alert(3)`,
		`javascript:alert(5)`, `</style><svg onload=alert(6)>`, `</script><script>alert(7)</script>`} {
		in := hostile(t, s)
		q, _ := json.Marshal(s + "|asset") // a YAML double-quoted string
		inv, err := assets.ParseInventory(strings.NewReader(`
- host: 10.0.0.5
  name: ` + string(q) + `
  criticality: high
  owner: ` + string(q) + `
  role: ` + string(q) + `
`))
		if err != nil {
			t.Fatal(err)
		}
		in.Inventory = inv
		intelIn, _ := intelInput(t)
		in.Intel = intelIn.Intel
		for i := range in.Intel {
			m := &in.Intel[i]
			ind := *m.Indicator
			ind.Name, ind.Pattern = s+"|indicator", s
			m.Indicator = &ind
			m.Values, m.Via = []string{s + "|value"}, []string{s}
		}
		meta := fixedMeta
		meta.Title, meta.Inputs = s+"|title", []string{s + "|input"}
		var b bytes.Buffer
		if err := WriteHTML(&b, Build(in), meta); err != nil {
			t.Fatal(err)
		}
		checkPage(t, b.Bytes())
		page := b.String()
		if strings.Contains(page, s) && strings.ContainsAny(s, `<>"'`) {
			t.Errorf("%q appears unescaped", s)
		}
		if strings.Contains(strings.ToLower(page), `href="javascript`) || strings.Contains(strings.ToLower(page), `src="javascript`) {
			t.Errorf("%q made a javascript: URL", s)
		}
		// The fields reached the page (escaped), so the check above
		// looked at them.
		for _, field := range []string{"asset", "indicator", "value", "title", "input"} {
			if !strings.Contains(html.UnescapeString(page), s+"|"+field) {
				t.Errorf("%q: the %s field is not in the page", s, field)
			}
		}
	}
}
