package pcapfilter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/nwhealth/nwhealth/internal/childenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Filter expressions are compiled by tcpdump itself (tcpdump -ddd), that
// is by the libpcap it links, so an expression selects here exactly what
// it selects in tcpdump, on the corners users rely on (vlan,
// tcp[tcpflags], protochain...). Doing it in a child process keeps
// nwhealth a static binary: linking libpcap, or loading it, costs every
// command several milliseconds at start-up, a large share of a query.

var (
	tcpdumpOnce sync.Once
	tcpdumpPath string
	tcpdumpErr  error
)

func tcpdump() (string, error) {
	tcpdumpOnce.Do(func() {
		tcpdumpPath, tcpdumpErr = exec.LookPath("tcpdump")
		if tcpdumpErr != nil {
			tcpdumpErr = errors.New("filter expressions are compiled by tcpdump (libpcap), which is not installed: install tcpdump, or select with --host/--net/--port/--proto")
		}
	})
	return tcpdumpPath, tcpdumpErr
}

// CompileOffline compiles expr for packets of a pcap link type as
// `tcpdump -r FILE EXPR` does, for a file of that link type and snap
// length.
func CompileOffline(expr string, lt pkthdr.LinkType, snaplen int) ([]Instruction, error) {
	td, err := tcpdump()
	if err != nil {
		return nil, err
	}
	// An empty capture file of the link type on stdin: tcpdump reads its
	// header, compiles against it and prints the program.
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr, 0xa1b23c4d)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(snaplen))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(lt))
	cmd := exec.Command(td, "-ddd", "-r", "-", "--", expr)
	cmd.Stdin = bytes.NewReader(hdr)
	return runCompiler(cmd, expr)
}

// CompileLive compiles expr for a live interface as `tcpdump -i IFACE -s
// SNAPLEN` does (against the activated device, so that VLAN tests read the
// tag through the kernel's BPF extensions), for the given link type. It
// opens the interface, so it needs the capture's privileges and network
// namespace.
func CompileLive(expr, iface string, lt pkthdr.LinkType, snaplen int) ([]Instruction, error) {
	td, err := tcpdump()
	if err != nil {
		return nil, err
	}
	// Every link type capture can read from an interface
	// (capture.LinkTypeForARPHRD), by libpcap's name.
	var dlt string
	switch lt {
	case pkthdr.LinkEthernet, pkthdr.LinkRaw, pkthdr.LinkRadiotap, pkthdr.LinkPrism, pkthdr.LinkIEEE80211, pkthdr.LinkCHDLC:
		dlt = pkthdr.LinkName(lt)
	default:
		return nil, fmt.Errorf("no live filters for link type %s", pkthdr.LinkName(lt))
	}
	cmd := exec.Command(td, "-ddd", "-i", iface, "-s", strconv.Itoa(snaplen), "-y", dlt, "--", expr)
	return runCompiler(cmd, expr)
}

// maxOutput bounds what is read from the compiler: 65,536 instructions
// of at most 40 bytes a line.
const maxOutput = 3 << 20

func runCompiler(cmd *exec.Cmd, expr string) ([]Instruction, error) {
	cmd.Env = childenv.Environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{&out, maxOutput}, &limited{&errb, 64 << 10}
	if err := cmd.Run(); err != nil {
		msg := ""
		for _, l := range strings.Split(errb.String(), "\n") {
			if m, ok := strings.CutPrefix(l, "tcpdump: "); ok {
				msg = m
			}
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("filter %q: %s", expr, msg)
	}
	prog, err := parseDDD(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("filter %q: compiler output: %w", expr, err)
	}
	if err := Validate(prog); err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	return prog, nil
}

// parseDDD reads tcpdump -ddd output: the instruction count, then one
// instruction a line as decimal "code jt jf k".
func parseDDD(b []byte) ([]Instruction, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() {
		return nil, errors.New("empty")
	}
	n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || n <= 0 || n > maxInsns {
		return nil, fmt.Errorf("bad instruction count %q", sc.Text())
	}
	prog := make([]Instruction, 0, n)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("bad instruction %q", sc.Text())
		}
		var v [4]uint64
		for i, bits := range [4]int{16, 8, 8, 32} {
			if v[i], err = strconv.ParseUint(f[i], 10, bits); err != nil {
				return nil, fmt.Errorf("bad instruction %q", sc.Text())
			}
		}
		prog = append(prog, Instruction{Code: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) != n {
		return nil, fmt.Errorf("%d instructions, count says %d", len(prog), n)
	}
	return prog, nil
}

// limited keeps at most n bytes and drops the rest.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
