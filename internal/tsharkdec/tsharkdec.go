// Package tsharkdec reads the DCE/RPC stubs tshark decrypts given an NT
// password: the independent oracle for nwhealth's own unsealing
// (pkg/smbrpc/ntlmseal) in tests and fixture tools.
//
// tshark exposes the plaintext as the "Decrypted stub data" tab of its hex
// dump (-x) for every sealed PDU it opened, dissected or not (the field
// dcerpc.decrypted_stub_data is only set for stubs it does not dissect);
// the tab holds the auth padding, which dcerpc.auth_pad_len gives.
package tsharkdec

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// SealedRequests is the display filter of sealed requests.
const SealedRequests = "dcerpc.pkt_type == 0 && dcerpc.auth_level == 6"

var (
	summary = regexp.MustCompile(`^\s*(\d+)\s`)
	stubTab = regexp.MustCompile(`^Decrypted stub data \(\d+ bytes\):$`)
	hexLine = regexp.MustCompile(`^[0-9a-f]{4,}  ((?:[0-9a-f]{2} ){0,15}[0-9a-f]{2})`)
)

// Stubs runs tshark on file with password and filter and returns, per
// frame, the first stub it decrypted, without the auth padding, and the
// frames in order.
func Stubs(tshark, file, password, filter string) (map[int][]byte, []int, error) {
	opt := "ntlmssp.nt_password:" + password
	out, err := exec.Command(tshark, "-n", "-r", file, "-o", opt, "-Y", filter, "-P", "-x").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("tshark -x %s: %w", file, err)
	}
	stubs := map[int][]byte{}
	var frames []int
	frame, in := 0, false
	var cur []byte
	flush := func() {
		if in && stubs[frame] == nil {
			stubs[frame] = cur
			frames = append(frames, frame)
		}
		in, cur = false, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		m := hexLine.FindStringSubmatch(l)
		switch {
		case in && m != nil:
			b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
			if err != nil {
				return nil, nil, fmt.Errorf("tshark hex line %q: %w", l, err)
			}
			cur = append(cur, b...)
		case stubTab.MatchString(l):
			flush()
			in = true
		case in:
			flush()
		case m == nil && summary.MatchString(l):
			frame, _ = strconv.Atoi(summary.FindStringSubmatch(l)[1])
		}
	}
	flush()
	// The padding of each frame's first PDU.
	out, err = exec.Command(tshark, "-n", "-r", file, "-o", opt, "-Y", filter, "-T", "fields",
		"-E", "occurrence=f", "-e", "frame.number", "-e", "dcerpc.auth_pad_len").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("tshark fields %s: %w", file, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		cols := strings.Split(l, "\t")
		if len(cols) != 2 {
			continue
		}
		f, _ := strconv.Atoi(cols[0])
		pad, _ := strconv.Atoi(cols[1])
		if s, ok := stubs[f]; ok && pad <= len(s) {
			stubs[f] = s[:len(s)-pad]
		}
	}
	return stubs, frames, nil
}
