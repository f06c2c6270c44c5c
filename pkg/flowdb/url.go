// Package flowdb keeps flow records in ClickHouse, the fleet index built
// from the stores' flow files (docs/format/clickhouse.md): it creates and
// checks the schema, inserts shards' records exactly once, drops old days,
// and runs the aggregations hunt pushes down. It knows nothing of stores
// or of the hunt model: callers hand it records and take rows back.
package flowdb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// PasswordEnv names the environment variable read when the URL has no
// password, so that it need not appear in a command line or a unit file.
const PasswordEnv = "CLICKHOUSE_PASSWORD"

// Config is a parsed clickhouse:// URL.
type Config struct {
	Host     string
	Port     int
	Database string
	User     string
	Password string
	Secure   bool
	CAFile   string // PEM bundle added to the system roots (--ca)
	Cluster  string // remote_servers cluster for a sharded deployment
}

// ErrURL marks a malformed URL (a usage error for the commands).
var ErrURL = errors.New("bad clickhouse URL")

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseURL reads clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DB[?secure=true&cluster=NAME].
// The password comes from the URL or, when absent there, from getenv(PasswordEnv).
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	var c Config
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included: say less.
		return c, fmt.Errorf("%w: cannot parse %s", ErrURL, Redact(raw))
	}
	if u.Scheme != "clickhouse" {
		return c, fmt.Errorf("%w: scheme must be clickhouse:// in %s", ErrURL, Redact(raw))
	}
	// A password holding '/', '?' or '#' unescaped ends the host part
	// early: the URL then parses as another host and port, or a
	// fragment, and the password's pieces would go to a server by name
	// and into messages.
	if u.Fragment != "" || u.User == nil && cutAuthority(raw) {
		return c, fmt.Errorf("%w: %s: a '/', '?' or '#' before the '@' (percent-encode them in a password: %%2F, %%3F, %%23)", ErrURL, Redact(raw))
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return c, fmt.Errorf("%w: no host in %s", ErrURL, Redact(raw))
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "secure", "cluster":
		default:
			return c, fmt.Errorf("%w: unknown parameter %q in %s", ErrURL, k, Redact(raw))
		}
	}
	if v := q.Get("secure"); v != "" {
		if c.Secure, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("%w: secure=%q is not true or false", ErrURL, v)
		}
	}
	c.Port = 9000
	if c.Secure {
		c.Port = 9440
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return c, fmt.Errorf("%w: port %q", ErrURL, p)
		}
		c.Port = n
	}
	c.Database = u.Path
	if len(c.Database) > 0 && c.Database[0] == '/' {
		c.Database = c.Database[1:]
	}
	if c.Database == "" {
		c.Database = "nwhealth"
	}
	if !identRE.MatchString(c.Database) {
		return c, fmt.Errorf("%w: database name %q (want letters, digits, _)", ErrURL, c.Database)
	}
	if c.Cluster = q.Get("cluster"); c.Cluster != "" && !identRE.MatchString(c.Cluster) {
		return c, fmt.Errorf("%w: cluster name %q (want letters, digits, _)", ErrURL, c.Cluster)
	}
	c.User = "default"
	if u.User != nil {
		if n := u.User.Username(); n != "" {
			c.User = n
		}
		c.Password, _ = u.User.Password()
	}
	if _, set := passwordIn(u); !set && getenv != nil {
		c.Password = getenv(PasswordEnv)
	}
	return c, nil
}

func passwordIn(u *url.URL) (string, bool) {
	if u.User == nil {
		return "", false
	}
	return u.User.Password()
}

// Addr is host:port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// String names the server and database without the password, for messages.
func (c Config) String() string {
	s := "clickhouse://" + c.User + "@" + c.Addr() + "/" + c.Database
	if c.Cluster != "" {
		s += "?cluster=" + c.Cluster
	}
	return s
}

// Redact replaces the password in a URL string with xxxxx: everything
// between "://USER:" and the last "@", from the string itself, so that a
// URL that does not parse, or parses otherwise because the password cut
// its host part short, is redacted all the same.
func Redact(raw string) string {
	return redactRE.ReplaceAllString(raw, "${1}xxxxx@")
}

// redactRE takes everything up to the last '@' of the URL as the
// password: a password may hold '@' (url.Parse splits at the last).
var redactRE = regexp.MustCompile(`(://[^:/@]*:).*@`)

// cutAuthority reports whether an '@' follows the "://" beyond where the
// URL's host part ends: user information cut short by a '/', '?' or '#'.
func cutAuthority(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	return end >= 0 && strings.Contains(rest[end:], "@") && strings.Contains(rest[:end], ":")
}

// tlsConfig builds the client TLS settings: the system roots plus CAFile.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.Secure {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
