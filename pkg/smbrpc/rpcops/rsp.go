package rpcops

import (
	"fmt"
	"strings"
)

// MS-RSP, remote shutdown: InitShutdown (\pipe\InitShutdown, the same
// three calls winreg also carries) and WindowsShutdown (Windows 7 and
// later, what shutdown.exe /m sends first). Every initiate is T1529
// (System Shutdown/Reboot, tactic Impact); an abort names the operation
// only: it is what a defender, or a changed mind, sends.
var (
	initShutdownUUID    = mustUUID("894de0c0-0d55-11d3-a322-00c04fa321a1")
	windowsShutdownUUID = mustUUID("d95afe70-a6d5-4259-822e-2c84da1ddb0d")
)

// TechShutdown is System Shutdown/Reboot.
const TechShutdown = "T1529"

func init() { builders = append(builders, registerRSP) }

func registerRSP() {
	register(&iface{name: "InitShutdown", uuid: initShutdownUUID, pipes: []string{"initshutdown"},
		names: []string{"BaseInitiateSystemShutdown", "BaseAbortSystemShutdown", "BaseInitiateSystemShutdownEx"},
		ops: map[uint16]op{
			0: {req: func(x *dc) { rspInitiate(x, false) }, technique: TechShutdown, phase: PhaseImpact},
			1: {req: rspServer},
			2: {req: func(x *dc) { rspInitiate(x, true) }, technique: TechShutdown, phase: PhaseImpact},
		}})
	register(&iface{name: "WindowsShutdown", uuid: windowsShutdownUUID, pipes: []string{"initshutdown"},
		names: []string{"WsdrInitiateShutdown", "WsdrAbortShutdown"},
		ops: map[uint16]op{
			0: {req: wsdrInitiate, technique: TechShutdown, phase: PhaseImpact},
			1: {req: func(x *dc) { x.add("client hint", ustrPtr(x.r)) }},
		}})
}

// rspServer reads PREGISTRY_SERVER_NAME: a unique pointer to one WCHAR
// (MS-RSP 2.2.1), not a string.
func rspServer(x *dc) {
	if x.r.Ptr() {
		if c := x.r.U16(); c != 0 && c != '\\' {
			x.add("server", string(rune(c)))
		}
	}
}

// rspInitiate reads BaseInitiateSystemShutdown(Ex): ServerName, lpMessage,
// dwTimeout, bForceAppsClosed, bRebootAfterShutdown (and dwReason).
func rspInitiate(x *dc, ex bool) {
	r := x.r
	rspServer(x)
	msg := ustrPtr(r)
	timeout := r.U32()
	force := r.U8()
	reboot := r.U8()
	var reason uint32
	if ex {
		reason = r.U32()
	}
	if r.Err() != nil {
		return
	}
	x.add("message", msg)
	x.add("timeout", fmt.Sprintf("%ds", timeout))
	x.add("force apps closed", fmt.Sprint(force != 0))
	x.add("reboot", fmt.Sprint(reboot != 0))
	if ex {
		x.add("reason", shutdownReason(reason))
	}
	x.d.Target = map[bool]string{false: "shutdown", true: "reboot"}[reboot != 0]
}

// wsdrInitiate reads WsdrInitiateShutdown: lpMessage, dwGracePeriod,
// dwShutdownFlags, dwReason, lpClientHint (MS-RSP 3.2.4.4).
func wsdrInitiate(x *dc) {
	r := x.r
	msg := ustrPtr(r)
	grace := r.U32()
	flags := r.U32()
	reason := r.U32()
	hint := ustrPtr(r)
	if r.Err() != nil {
		return
	}
	x.add("message", msg)
	x.add("grace period", fmt.Sprintf("%ds", grace))
	x.add("flags", flagNames(flags, wsdrFlags))
	x.add("reason", shutdownReason(reason))
	x.add("client hint", hint)
	switch {
	case flags&0x4 != 0:
		x.d.Target = "reboot"
	case flags&0x8 != 0:
		x.d.Target = "power off"
	default:
		x.d.Target = "shutdown"
	}
}

// wsdrFlags are dwShutdownFlags (MS-RSP 3.2.4.4).
var wsdrFlags = []flagName{
	{0x1, "FORCE_OTHERS"}, {0x2, "FORCE_SELF"}, {0x4, "RESTART"}, {0x8, "POWEROFF"},
	{0x10, "NOREBOOT"}, {0x20, "GRACE_OVERRIDE"}, {0x40, "INSTALL_UPDATES"},
	{0x80, "RESTARTAPPS"}, {0x200, "HYBRID"},
}

// shutdownReason renders an SHTDN_REASON code (MS-RSP 2.2.2): the major
// reason named, the minor in decimal, planned or not.
func shutdownReason(v uint32) string {
	majors := map[uint32]string{0: "other", 1: "hardware", 2: "operating system", 3: "software",
		4: "application", 5: "system", 6: "power", 7: "legacy API"}
	var parts []string
	maj := v >> 16 & 0xff
	parts = append(parts, enumName(maj, majors)+fmt.Sprintf(" minor %d", v&0xffff))
	if v&0x80000000 != 0 {
		parts = append(parts, "planned")
	}
	if v&0x40000000 != 0 {
		parts = append(parts, "user defined")
	}
	return fmt.Sprintf("%s (0x%08x)", strings.Join(parts, ", "), v)
}
