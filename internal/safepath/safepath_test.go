package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

func TestCheckLinks(t *testing.T) {
	testenv.Root(t) // links of another user need chown
	base := t.TempDir()
	shared := filepath.Join(base, "tmp")
	own := filepath.Join(base, "own")
	for _, d := range []string{shared, own} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(shared, 0o777|os.ModeSticky)
	victim := filepath.Join(own, "victim")
	os.WriteFile(victim, []byte("x"), 0o600)
	link := func(target, at string, uid int) string {
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(at, uid, uid); err != nil {
			t.Fatal(err)
		}
		return at
	}
	other := link(victim, filepath.Join(shared, "report.html"), 12345)
	mine := link(victim, filepath.Join(shared, "mine.html"), os.Geteuid())
	dirLink := link(own, filepath.Join(shared, "out"), 12345)
	inOwn := link(victim, filepath.Join(own, "l.html"), 12345) // not a shared directory
	chain := link(other, filepath.Join(own, "chain.html"), os.Geteuid())
	// The shared directory's owner may link in it.
	os.Chown(shared, 23456, 23456)
	byOwner := link(victim, filepath.Join(shared, "owner.html"), 23456)
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{other, false},
		{filepath.Join(dirLink, "report.html"), false},
		{chain, false},
		{mine, true},
		{inOwn, true},
		{byOwner, true},
		{filepath.Join(shared, "new.html"), true},
		{filepath.Join(own, "missing", "x.html"), true},
	} {
		err := CheckLinks(tc.path)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrSharedLink) {
			t.Errorf("%s: %v, want ok %v", tc.path, err, tc.ok)
		}
	}
	// A loop ends.
	a, b := filepath.Join(own, "a"), filepath.Join(own, "b")
	os.Symlink(b, a)
	os.Symlink(a, b)
	if err := CheckLinks(a); err == nil {
		t.Error("a link loop accepted")
	}
}
