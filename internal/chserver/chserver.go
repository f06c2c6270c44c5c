// Package chserver starts private ClickHouse servers for tests: a copy of
// the installed server's config.xml with its own ports on 127.0.0.1, its
// own data and log directories under the test's temp dir, and users of the
// test's choosing. Servers are stopped by t.Cleanup. Without
// clickhouse-server the test is skipped, or fails in CI (testenv.Missing).
package chserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// systemConfig is where Debian's package puts the server configuration.
const systemConfig = "/etc/clickhouse-server"

// User is an account added to the server's users.xml.
type User struct {
	Name, Password string
	Readonly       bool // the readonly profile (an analyst)
}

// Options shape a server.
type Options struct {
	Users []User
	TLS   bool // also listen with TLS (tcp_port_secure); CA() names the CA
	// Cluster, when set, is written to remote_servers under this name with
	// the given servers' native ports (see StartCluster).
	Cluster      string
	ClusterPorts []int
	// DataDir replaces the data directory (a small filesystem for a
	// full-disk test); empty means one under the temp dir.
	DataDir string
}

// Server is a running private clickhouse-server.
type Server struct {
	t                   testing.TB
	dir                 string
	Port, TLSPort, HTTP int
	inter               int
	cfgPath             string
	caPath              string
	cmd                 *exec.Cmd
	done                chan struct{}
}

// Binary returns the server program, skipping (or failing in CI) without it.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("clickhouse-server")
	if err != nil {
		testenv.Missing(t, "clickhouse-server not installed (run .ci/deps): %v", err)
	}
	if _, err := os.Stat(filepath.Join(systemConfig, "config.xml")); err != nil {
		testenv.Missing(t, "clickhouse-server config missing: %v", err)
	}
	return p
}

// FreePorts returns n free TCP ports on 127.0.0.1.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	var ports []int
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start configures and starts a server with port (0: a free one) and
// waits until it answers. It is stopped when the test ends.
func Start(t testing.TB, port int, o Options) *Server {
	t.Helper()
	Binary(t)
	s, err := Launch(t.TempDir(), port, o)
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(func() { s.Stop() })
	return s
}

// Launch configures a server in dir and starts it, outside any test (the
// benchmarks use it). The caller stops it.
func Launch(dir string, port int, o Options) (*Server, error) {
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		return nil, err
	}
	// Free ports other than the ones this server or its cluster already
	// own (those are free too until their servers start).
	taken := map[int]bool{port: true}
	for _, p := range o.ClusterPorts {
		taken[p] = true
	}
	var ports []int
	for len(ports) < 4 {
		ps, err := freePorts(4)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if !taken[p] && len(ports) < 4 {
				taken[p] = true
				ports = append(ports, p)
			}
		}
	}
	if port == 0 {
		port = ports[0]
	}
	s := &Server{dir: dir, Port: port, HTTP: ports[1], inter: ports[2]}
	if o.TLS {
		s.TLSPort = ports[3]
	}
	if err := s.configure(o); err != nil {
		return nil, err
	}
	if err := s.start(bin); err != nil {
		return nil, err
	}
	return s, nil
}

// StartCluster starts n servers that all know the cluster name, each
// one a shard, and returns them.
func StartCluster(t testing.TB, name string, n int, o Options) []*Server {
	t.Helper()
	Binary(t)
	ports := FreePorts(t, n)
	o.Cluster, o.ClusterPorts = name, ports
	var out []*Server
	for _, p := range ports {
		out = append(out, Start(t, p, o))
	}
	return out
}

// URL is a clickhouse:// URL for the server, user and database.
func (s *Server) URL(user, password, db string) string {
	auth := ""
	if user != "" {
		auth = user
		if password != "" {
			auth += ":" + password
		}
		auth += "@"
	}
	return fmt.Sprintf("clickhouse://%s127.0.0.1:%d/%s", auth, s.Port, db)
}

// CA is the PEM file of the CA that signed the TLS certificate.
func (s *Server) CA() string { return s.caPath }

// Dir is the server's directory (config, data, logs).
func (s *Server) Dir() string { return s.dir }

func (s *Server) configure(o Options) error {
	raw, err := os.ReadFile(filepath.Join(systemConfig, "config.xml"))
	if err != nil {
		return err
	}
	cfg := string(raw)
	data := filepath.Join(s.dir, "data") + "/"
	if o.DataDir != "" {
		data = strings.TrimSuffix(o.DataDir, "/") + "/"
	}
	cfg = strings.ReplaceAll(cfg, "/var/lib/clickhouse/", data)
	cfg = strings.ReplaceAll(cfg, "/var/log/clickhouse-server/", filepath.Join(s.dir, "log")+"/")
	set := func(tag, val string) {
		re := regexp.MustCompile(`<` + tag + `>[^<]*</` + tag + `>`)
		cfg = re.ReplaceAllString(cfg, "<"+tag+">"+val+"</"+tag+">")
	}
	set("http_port", strconv.Itoa(s.HTTP))
	set("tcp_port", strconv.Itoa(s.Port))
	// Only loopback, whatever the stock file listens on.
	cfg = strings.Replace(cfg, "</tcp_port>", "</tcp_port>\n    <listen_host>127.0.0.1</listen_host>", 1)
	set("interserver_http_port", strconv.Itoa(s.inter))
	set("users_config", filepath.Join(s.dir, "users.xml"))
	// The stock remote_servers points at port 9000; ours names our servers.
	rs := regexp.MustCompile(`(?s)<remote_servers[^>]*>.*?</remote_servers>`)
	cfg = rs.ReplaceAllString(cfg, remoteServers(o.Cluster, o.ClusterPorts))
	if o.TLS {
		if err := s.makeCert(); err != nil {
			return err
		}
		set("certificateFile", filepath.Join(s.dir, "server.crt"))
		set("privateKeyFile", filepath.Join(s.dir, "server.key"))
		cfg = regexp.MustCompile(`<dhParamsFile>[^<]*</dhParamsFile>`).ReplaceAllString(cfg, "")
		cfg = strings.Replace(cfg, "<openSSL>", fmt.Sprintf("<tcp_port_secure>%d</tcp_port_secure>\n    <openSSL>", s.TLSPort), 1)
	}
	for _, d := range []string{data, filepath.Join(s.dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	s.cfgPath = filepath.Join(s.dir, "config.xml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	users, err := os.ReadFile(filepath.Join(systemConfig, "users.xml"))
	if err != nil {
		return err
	}
	var add strings.Builder
	for _, u := range o.Users {
		profile := "default"
		if u.Readonly {
			profile = "readonly"
		}
		fmt.Fprintf(&add, "<%s><password>%s</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>%s</profile><quota>default</quota></%s>\n",
			u.Name, u.Password, profile, u.Name)
	}
	ux := strings.Replace(string(users), "</users>", add.String()+"</users>", 1)
	return os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(ux), 0o644)
}

func remoteServers(name string, ports []int) string {
	if name == "" {
		return "<remote_servers></remote_servers>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<remote_servers>\n<%s>\n", name)
	for _, p := range ports {
		fmt.Fprintf(&b, "<shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>\n", p)
	}
	fmt.Fprintf(&b, "</%s>\n</remote_servers>", name)
	return b.String()
}

// makeCert writes a CA and a server certificate for 127.0.0.1.
func (s *Server) makeCert() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nwhealth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.caPath = filepath.Join(s.dir, "ca.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{s.caPath, "CERTIFICATE", caDER}, {filepath.Join(s.dir, "server.crt"), "CERTIFICATE", der}, {filepath.Join(s.dir, "server.key"), "EC PRIVATE KEY", kb}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, "--config-file="+s.cfgPath)
	cmd.Dir = s.dir
	out, err := os.Create(filepath.Join(s.dir, "stdout.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("clickhouse-server exited at start:\n%s", s.Logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("clickhouse-server did not listen on %d within 60 s:\n%s", s.Port, s.Logs())
}

// Stop stops the server (SIGTERM, then SIGKILL after 20 s) and waits.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill stops the server at once, as a crash or a pulled cable would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the stopped server again with the same data (in a test).
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(Binary(s.t)); err != nil {
		s.t.Fatal(err)
	}
}

// Logs returns the tail of the server's logs, for failure messages.
func (s *Server) Logs() string {
	var b strings.Builder
	for _, f := range []string{"stdout.log", "log/clickhouse-server.err.log"} {
		data, _ := os.ReadFile(filepath.Join(s.dir, f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		b.Write(data)
	}
	return b.String()
}

// Client runs clickhouse-client against the server with a query and
// returns its output (the test fails on error).
func (s *Server) Client(ctx context.Context, query string, args ...string) string {
	s.t.Helper()
	testenv.Tool(s.t, "clickhouse-client")
	out, err := s.ClientCmd(ctx, query, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("clickhouse-client %q: %v\n%s", query, err, out)
	}
	return string(out)
}

// ClientCmd is a clickhouse-client command for the server.
func (s *Server) ClientCmd(ctx context.Context, query string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "clickhouse-client", append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--query", query}, args...)...)
}
