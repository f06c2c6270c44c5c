package rpcops

import (
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// spoolss: Print System Remote Protocol (MS-RPRN, \pipe\spoolss), and
// IRemoteWinspool (MS-PAR, ncacn_ip_tcp), its asynchronous twin.
//
//   - RpcAddPrinterDriverEx (and RpcAddPrinterDriver, RpcAsyncAddPrinterDriver)
//     install a driver whose files the server loads as SYSTEM: with a driver
//     or config file on a remote share, or the flag that skips the driver
//     signature warning, it is PrintNightmare (CVE-2021-1675 /
//     CVE-2021-34527): T1210 remotely, T1068 by nature.
//   - RpcRemoteFindFirstPrinterChangeNotification(Ex) names a client
//     machine the spooler then connects to with the server's machine
//     account: the printer bug (SpoolSample), coercion T1187.
var (
	spoolssUUID = mustUUID("12345678-1234-abcd-ef00-0123456789ab")
	parUUID     = mustUUID("76f03f96-cdfd-44fc-a22c-64950a001209")
)

func init() { builders = append(builders, registerRprn) }

// spoolssNames are MS-RPRN's opnums 0 to 116. The ones the specification
// marks as not used on the wire keep their older names where Windows' IDL
// had one (RpcAddPort...), else "".
var spoolssNames = func() []string {
	n := make([]string, 117)
	copy(n, []string{
		"RpcEnumPrinters", "RpcOpenPrinter", "RpcSetJob", "RpcGetJob", "RpcEnumJobs", "RpcAddPrinter",
		"RpcDeletePrinter", "RpcSetPrinter", "RpcGetPrinter", "RpcAddPrinterDriver", "RpcEnumPrinterDrivers",
		"RpcGetPrinterDriver", "RpcGetPrinterDriverDirectory", "RpcDeletePrinterDriver", "RpcAddPrintProcessor",
		"RpcEnumPrintProcessors", "RpcGetPrintProcessorDirectory", "RpcStartDocPrinter", "RpcStartPagePrinter",
		"RpcWritePrinter", "RpcEndPagePrinter", "RpcAbortPrinter", "RpcReadPrinter", "RpcEndDocPrinter",
		"RpcAddJob", "RpcScheduleJob", "RpcGetPrinterData", "RpcSetPrinterData", "RpcWaitForPrinterChange",
		"RpcClosePrinter", "RpcAddForm", "RpcDeleteForm", "RpcGetForm", "RpcSetForm", "RpcEnumForms",
		"RpcEnumPorts", "RpcEnumMonitors", "RpcAddPort", "RpcConfigurePort", "RpcDeletePort", "RpcCreatePrinterIC",
		"RpcPlayGdiScriptOnPrinterIC", "RpcDeletePrinterIC", "RpcAddPrinterConnection", "RpcDeletePrinterConnection",
		"RpcPrinterMessageBox", "RpcAddMonitor", "RpcDeleteMonitor", "RpcDeletePrintProcessor", "RpcAddPrintProvidor",
		"RpcDeletePrintProvidor", "RpcEnumPrintProcessorDatatypes", "RpcResetPrinter", "RpcGetPrinterDriver2",
		"RpcClientFindFirstPrinterChangeNotification", "RpcFindNextPrinterChangeNotification",
		"RpcFindClosePrinterChangeNotification", "RpcRouterFindFirstPrinterChangeNotificationOld", "RpcReplyOpenPrinter",
		"RpcRouterReplyPrinter", "RpcReplyClosePrinter", "RpcAddPortEx",
		"RpcRemoteFindFirstPrinterChangeNotification", "RpcSpoolerInit", "RpcResetPrinterEx",
		"RpcRemoteFindFirstPrinterChangeNotificationEx",
		"RpcRouterReplyPrinterEx", "RpcRouterRefreshPrinterChangeNotification", "", "RpcOpenPrinterEx",
		"RpcAddPrinterEx", "RpcSetPort", "RpcEnumPrinterData", "RpcDeletePrinterData", "", "", "",
		"RpcSetPrinterDataEx", "RpcGetPrinterDataEx", "RpcEnumPrinterDataEx", "RpcEnumPrinterKey",
		"RpcDeletePrinterDataEx", "RpcDeletePrinterKey", "", "RpcDeletePrinterDriverEx",
		"RpcAddPerMachineConnection", "RpcDeletePerMachineConnection", "RpcEnumPerMachineConnections",
		"RpcXcvData", "RpcAddPrinterDriverEx", "", "", "", "", "", "", "RpcFlushPrinter", "RpcSendRecvBidiData",
		"", "", "", "", "RpcGetCorePrinterDrivers", "", "RpcGetPrinterDriverPackagePath", "", "", "", "", "",
		"RpcGetJobNamedPropertyValue", "RpcSetJobNamedProperty", "RpcDeleteJobNamedProperty",
		"RpcEnumJobNamedProperties", "", "", "RpcLogJobInfoForBranchOffice",
	})
	return n
}()

func registerRprn() {
	register(&iface{name: "spoolss", uuid: spoolssUUID, names: spoolssNames, pipes: []string{"spoolss"},
		ops: map[uint16]op{
			0:  {req: rprnEnumPrinters, technique: "T1120", phase: PhaseRecon},
			1:  {req: func(x *dc) { rprnOpen(x, false) }, opens: "printer"},
			9:  {req: func(x *dc) { rprnAddDriver(x, false) }, technique: "T1210", phase: PhaseExecution},
			10: {req: rprnEnumDrivers, technique: "T1082", phase: PhaseRecon},
			12: {req: rprnEnumDrivers, technique: "T1082", phase: PhaseRecon},
			29: {handle: true, closes: true, noise: true},
			56: {handle: true, noise: true},
			62: {handle: true, req: func(x *dc) { rprnNotify(x, false) }, technique: TechCoerce, phase: PhaseCredAccess},
			65: {handle: true, req: func(x *dc) { rprnNotify(x, true) }, technique: TechCoerce, phase: PhaseCredAccess},
			69: {req: func(x *dc) { rprnOpen(x, true) }, opens: "printer"},
			88: {handle: true, req: rprnXcv},
			89: {req: func(x *dc) { rprnAddDriver(x, true) }, technique: "T1210", phase: PhaseExecution},
		}})
	par := make([]string, 73)
	par[0], par[1], par[2] = "RpcAsyncOpenPrinter", "RpcAsyncAddPrinter", "RpcAsyncSetJob"
	par[20] = "RpcAsyncClosePrinter"
	par[38], par[39], par[40], par[41] = "RpcAsyncEnumPrinterDrivers", "RpcAsyncAddPrinterDriver",
		"RpcAsyncGetPrinterDriverDirectory", "RpcAsyncDeletePrinterDriver"
	register(&iface{name: "IRemoteWinspool", uuid: parUUID, names: par,
		ops: map[uint16]op{
			0:  {req: func(x *dc) { rprnOpen(x, true) }, opens: "printer"},
			20: {handle: true, closes: true, noise: true},
			38: {req: rprnEnumDrivers, technique: "T1082", phase: PhaseRecon},
			39: {req: func(x *dc) { rprnAddDriver(x, true) }, technique: "T1210", phase: PhaseExecution},
			40: {req: rprnEnumDrivers, technique: "T1082", phase: PhaseRecon},
		}})
}

// rprnEnumPrinters: Flags, then a unique Name.
func rprnEnumPrinters(x *dc) {
	x.r.U32()
	name := wstrPtr(x.r)
	x.add("name", name)
	x.d.Target = name
}

// rprnOpen: RpcOpenPrinter(Ex) and RpcAsyncOpenPrinter: a unique printer
// name, then a datatype, a DEVMODE_CONTAINER and the access wanted.
func rprnOpen(x *dc, ex bool) {
	r := x.r
	name := wstrPtr(r)
	dt := wstrPtr(r)
	r.Construct(func() { // DEVMODE_CONTAINER
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() { r.Bytes(r.Count(1)) })
		}
	})
	access := r.U32()
	x.d.Target = name
	x.reqName = name
	x.add("printer", name)
	x.add("datatype", dt)
	x.add("access", hex32(access))
	if ex {
		x.rprnClient()
	}
}

// rprnClient reads the SPLCLIENT_CONTAINER of RpcOpenPrinterEx: the
// client's machine and user names.
func (x *dc) rprnClient() {
	r := x.r
	var machine, user string
	r.Construct(func() {
		r.AlignP()
		level := r.U32()
		r.Switch()
		if !r.Ptr() {
			return
		}
		r.Defer(func() {
			r.Construct(func() {
				if level != 1 {
					return
				}
				// SPLCLIENT_INFO_1: dwSize, pMachineName, pUserName, dwBuildNum,
				// dwMajorVersion, dwMinorVersion, wProcessorArchitecture.
				r.AlignP()
				r.U32()
				if r.Ptr() {
					r.Defer(func() { machine = r.WString() })
				}
				if r.Ptr() {
					r.Defer(func() { user = r.WString() })
				}
				r.U32()
				r.U32()
				r.U32()
				r.U16()
			})
		})
	})
	x.add("client machine", machine)
	x.add("client user", user)
}

func rprnEnumDrivers(x *dc) {
	name := wstrPtr(x.r)
	env := wstrPtr(x.r)
	x.add("server", name)
	x.add("environment", env)
	x.add("level", fmt.Sprint(x.r.U32()))
	x.d.Target = name
}

// Driver copy flags of RpcAddPrinterDriverEx (MS-RPRN 3.1.4.4.8).
var apdFlags = []flagName{{0x1, "APD_STRICT_UPGRADE"}, {0x2, "APD_STRICT_DOWNGRADE"}, {0x4, "APD_COPY_ALL_FILES"},
	{0x8, "APD_COPY_NEW_FILES"}, {0x10, "APD_COPY_FROM_DIRECTORY"}, {0x1000, "APD_DONT_COPY_FILES_TO_CLUSTER"},
	{0x2000, "APD_COPY_TO_ALL_SPOOLERS"}, {0x8000, "APD_INSTALL_WARNED_DRIVER"}, {0x10000, "APD_RETURN_BLOCKING_STATUS_CODE"}}

// rprnAddDriver: a unique server name, a DRIVER_CONTAINER (the level, then
// a union of pointers to RPC_DRIVER_INFO_1..8), and with ex the copy flags.
func rprnAddDriver(x *dc, ex bool) {
	r := x.r
	server := wstrPtr(r)
	var info driverInfo
	r.Construct(func() {
		r.AlignP()
		level := r.U32()
		r.Switch()
		if r.Ptr() {
			r.Defer(func() { info = readDriverInfo(r, level) })
		}
	})
	x.add("server", server)
	x.add("driver", info.name)
	x.add("environment", info.env)
	x.add("driver path", info.driver)
	x.add("data file", info.data)
	x.add("config file", info.config)
	x.add("help file", info.help)
	if ex {
		flags := r.U32()
		x.add("copy flags", flagNames(flags, apdFlags))
		info.flags = flags
	}
	x.d.Target = info.name
	x.d.Command = firstNonEmpty(info.remote(), info.config, info.driver)
	if why := info.nightmare(); why != "" {
		x.add("printnightmare", why+" (CVE-2021-1675 / CVE-2021-34527 pattern)")
	}
}

type driverInfo struct {
	name, env, driver, data, config, help string
	flags                                 uint32
}

// remote is the first driver file on a remote share: the one the
// spooler fetches from the attacker.
func (d driverInfo) remote() string {
	for _, p := range []string{d.driver, d.config, d.data, d.help} {
		if CoercedHost(p) != "" {
			return p
		}
	}
	return ""
}

// nightmare says why a driver installation looks like PrintNightmare: a
// file loaded from a remote share, or the flag that installs a driver
// Windows warned about.
func (d driverInfo) nightmare() string {
	if d.remote() != "" {
		return "driver file on a remote share"
	}
	if d.flags&0x8000 != 0 {
		// Windows' own client strips it before the call (winspool):
		// only a hand-made request carries it.
		return "APD_INSTALL_WARNED_DRIVER set"
	}
	return ""
}

// readDriverInfo reads the RPC_DRIVER_INFO structure a DRIVER_CONTAINER
// points to; levels 2, 3, 4, 6 and 8 share the leading fields.
func readDriverInfo(r *ndr.Reader, level uint32) (d driverInfo) {
	r.Construct(func() {
		r.AlignP()
		if level == 1 {
			if r.Ptr() {
				r.Defer(func() { d.name = r.WString() })
			}
			return
		}
		r.U32() // cVersion
		for _, dst := range []*string{&d.name, &d.env, &d.driver, &d.data, &d.config} {
			if r.Ptr() {
				r.Defer(func() { *dst = r.WString() })
			}
		}
		if level < 3 {
			return
		}
		// Help file, monitor, default data type, then the dependent files
		// (a count and a unique buffer); later levels add more that the
		// indicators do not need.
		if r.Ptr() {
			r.Defer(func() { d.help = r.WString() })
		}
		if r.Ptr() {
			r.Defer(func() { r.WString() })
		}
		if r.Ptr() {
			r.Defer(func() { r.WString() })
		}
	})
	return d
}

// rprnNotify: the printer bug. RpcRemoteFindFirstPrinterChangeNotification(Ex)
// on a printer handle: flags, options, the unique client machine name the
// spooler will call back, the printer-local value, and the options.
func rprnNotify(x *dc, ex bool) {
	r := x.r
	flags := r.U32()
	r.U32() // fdwOptions
	local := wstrPtr(r)
	x.add("flags", hex32(flags))
	if x.hOK {
		x.add("printer", x.hInfo.name)
	}
	x.coerce("callback", local)
	if x.hOK && x.hInfo.name != "" {
		x.d.Target = x.hInfo.name + " -> " + local
	}
}

// rprnXcv: RpcXcvData's data name (AddPort, MonitorUI...) and the port or
// command it carries when that is text.
func rprnXcv(x *dc) {
	name := x.r.WString()
	x.add("data name", name)
	if x.hOK {
		x.add("printer", x.hInfo.name)
	}
	x.d.Target = name
	if strings.EqualFold(name, "AddPort") || strings.EqualFold(name, "DeletePort") {
		x.d.Technique, x.d.Phase = "T1547.010", PhasePersist
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
