package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// fillWith is a cache fill writing b.
func fillWith(b string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, b); return err }
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entriesUnder lists every name under dir, to see that nothing was
// written outside the cache.
func entriesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

// A cache directory others can write to (a shared --cache) must not
// make a root reader write, read or delete anything outside it: planted
// links to directories and files, hard links and FIFOs under cache names
// are not followed nor used; the object is fetched anew.
func TestCacheHostile(t *testing.T) {
	const name = "sensors/s1/2026-03-02/w0-1.idx-0123456789abcdef"
	sub := "0011223344556677/fleet"
	tests := []struct {
		name  string
		plant func(t *testing.T, cacheDir, outside string) // cacheDir: base/sub
		// outsideWant: what outside holds afterwards (planted bait only).
		outsideWant []string
	}{
		{"link to a directory in the key's path", func(t *testing.T, cd, out string) {
			mkdirs(t, cd)
			symlink(t, out, filepath.Join(cd, "sensors"))
		}, nil},
		{"link to a directory at the cache's own path", func(t *testing.T, cd, out string) {
			mkdirs(t, filepath.Dir(cd))
			symlink(t, out, cd)
		}, nil},
		{"link to a file of the cached size", func(t *testing.T, cd, out string) {
			writeFileT(t, filepath.Join(out, "bait"), "BAIT!")
			mkdirs(t, filepath.Dir(filepath.Join(cd, name)))
			symlink(t, filepath.Join(out, "bait"), filepath.Join(cd, name))
		}, []string{"/bait"}},
		{"hard link to a file of the cached size", func(t *testing.T, cd, out string) {
			writeFileT(t, filepath.Join(out, "bait"), "BAIT!")
			mkdirs(t, filepath.Dir(filepath.Join(cd, name)))
			if err := os.Link(filepath.Join(out, "bait"), filepath.Join(cd, name)); err != nil {
				t.Fatal(err)
			}
		}, []string{"/bait"}},
		{"FIFO", func(t *testing.T, cd, out string) {
			mkdirs(t, filepath.Dir(filepath.Join(cd, name)))
			if err := syscall.Mkfifo(filepath.Join(cd, name), 0o666); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, outside := t.TempDir(), t.TempDir()
			tc.plant(t, filepath.Join(base, filepath.FromSlash(sub)), outside)
			c, err := openCache(base, sub, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.open(name, 5, "", fillWith("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); got != "hello" {
				t.Errorf("cached copy %q, want the object's %q", got, "hello")
			}
			if got := entriesUnder(t, outside); strings.Join(got, " ") != strings.Join(tc.outsideWant, " ") {
				t.Errorf("outside the cache: %q, want %q", got, tc.outsideWant)
			}
			if b, err := os.ReadFile(filepath.Join(outside, "bait")); err == nil && string(b) != "BAIT!" {
				t.Errorf("bait changed: %q", b)
			}
			// The second open takes the copy made, from inside the cache.
			f, err = c.open(name, 5, "", func(io.Writer) error { return errors.New("fetched again") })
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); got != "hello" {
				t.Errorf("second open %q", got)
			}
			fi, err := os.Lstat(filepath.Join(base, filepath.FromSlash(sub), filepath.FromSlash(name)))
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Errorf("cached file: %v %v, want a regular file of mode 0600", fi, err)
			}
		})
	}
}

// Eviction removes files of the cache only: a link planted in it to a
// directory outside is not descended.
func TestCacheEvictionStaysInside(t *testing.T) {
	base, outside := t.TempDir(), t.TempDir()
	writeFileT(t, filepath.Join(outside, "keep"), strings.Repeat("k", 4096))
	c, err := openCache(base, "h/p", 100)
	if err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(c.dir, "sensors"))
	for i := range 10 {
		f, err := c.open("x/obj"+string(rune('a'+i)), 30, "", fillWith(strings.Repeat("o", 30)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("a file outside the cache went: %v", err)
	}
	var total int64
	for _, e := range c.walk() {
		total += e.size
	}
	if total > 100 || total == 0 {
		t.Errorf("cache holds %d bytes after eviction, limit 100", total)
	}
}

// A directory of the cache owned by another user is refused, by name.
func TestCacheForeignOwner(t *testing.T) {
	testenv.Root(t)
	base := t.TempDir()
	mkdirs(t, filepath.Join(base, "h", "p"))
	if err := os.Chown(filepath.Join(base, "h"), 12345, 12345); err != nil {
		t.Fatal(err)
	}
	_, err := openCache(base, "h/p", 0)
	var ce *CacheError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "uid 12345") {
		t.Fatalf("err %v, want a CacheError naming uid 12345", err)
	}
}

// A scratch file leaves nothing behind.
func TestCacheScratch(t *testing.T) {
	base := t.TempDir()
	c, err := openCache(base, "h/p", 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.scratch()
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if got := entriesUnder(t, c.dir); len(got) != 0 {
		t.Errorf("scratch left %q", got)
	}
}

func mkdirs(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}

func writeFileT(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without HOME (a systemd service without User=), the default cache and
// spool are not in a directory every user of the host could have made
// first.
func TestDefaultDirNotShared(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	d := DefaultDir()
	if d == filepath.Join(os.TempDir(), "nwhealth") || filepath.Dir(DefaultCacheDir()) != d {
		t.Fatalf("default dir %s, cache %s", d, DefaultCacheDir())
	}
	if os.Geteuid() == 0 && d != "/var/cache/nwhealth" {
		t.Errorf("root's default dir %s, want /var/cache/nwhealth", d)
	}
}

func TestCheckOwnDir(t *testing.T) {
	base := t.TempDir()
	own := filepath.Join(base, "own")
	mkdirs(t, own)
	shared := filepath.Join(base, "shared")
	mkdirs(t, shared)
	os.Chmod(shared, 0o777|os.ModeSticky)
	link := filepath.Join(base, "link")
	symlink(t, own, link)
	cases := map[string]string{own: "", shared: "writable by others", link: "symbolic link"}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(base, "foreign")
		mkdirs(t, foreign)
		if err := os.Chown(foreign, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases[foreign] = "uid 12345"
	}
	for d, want := range cases {
		err := checkOwnDir(d)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", filepath.Base(d), err, want)
		}
	}
}

// --cache /tmp/x where another user planted x as a link first: refused,
// nothing made where it points.
func TestCacheBaseSharedLink(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "etc")
	mkdirs(t, victim)
	link := testenv.ForeignLink(t, dir, "nwcache", victim)
	if _, err := openCache(link, "h/p", 0); err == nil {
		t.Fatal("a cache through another user's link in a shared directory was opened")
	}
	if got := entriesUnder(t, victim); len(got) != 0 {
		t.Errorf("made where the link points: %q", got)
	}
}

// TestCacheForeignCopy: root reading through a cache another user owns
// (a shared --cache) takes that user's copy of an object only if it has
// the manifest's SHA-256; a forged copy of the right size (an index
// hiding packets), or a copy with no digest to check (a manifest, a
// shard head), is fetched anew. Root's own copies are used as they are.
func TestCacheForeignCopy(t *testing.T) {
	testenv.Root(t)
	const truth = "the real index bytes"
	sum := sha256.Sum256([]byte(truth))
	digest := hex.EncodeToString(sum[:])
	forged := strings.Repeat("F", len(truth))
	for _, c := range []struct {
		name     string
		planted  string
		uid      int
		sum      string
		refetch  bool
		fillWith string
	}{
		{"forged, with a digest", forged, 12345, digest, true, truth},
		{"true, with a digest", truth, 12345, digest, false, ""},
		{"true, no digest", truth, 12345, "", true, truth},
		{"own copy, no digest", truth, 0, "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			if err := os.Chown(base, 12345, 12345); err != nil {
				t.Fatal(err)
			}
			cache, err := openCache(base, "h/p", 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			const name = "sensors/s1/2026-03-02/w0-1.idx-0123456789abcdef"
			p := filepath.Join(cache.dir, filepath.FromSlash(name))
			mkdirs(t, filepath.Dir(p))
			writeFileT(t, p, c.planted)
			if err := os.Chown(p, c.uid, c.uid); err != nil {
				t.Fatal(err)
			}
			fetched := false
			f, err := cache.open(name, int64(len(truth)), c.sum, func(w io.Writer) error {
				fetched = true
				_, err := io.WriteString(w, truth)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); got != truth {
				t.Errorf("read %q, want the object's %q", got, truth)
			}
			if fetched != c.refetch {
				t.Errorf("fetched %v, want %v", fetched, c.refetch)
			}
		})
	}
}
