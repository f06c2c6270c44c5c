//go:build linux && cgo

// Package libpcap calls libpcap in-process (loaded with dlopen): it
// compiles filter expressions and runs them with pcap_offline_filter. The
// nwhealth binary does not use it (it stays static, and tcpdump compiles
// its filters); the tests use it as the reference that pcapfilter's
// compilation and BPF interpreter must agree with.
package libpcap

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>

// The ABI of libpcap's public structures, stable since libpcap 0.4.
struct nw_insn { unsigned short code; unsigned char jt; unsigned char jf; unsigned int k; };
struct nw_prog { unsigned int len; struct nw_insn *insns; };
struct nw_hdr { struct timeval ts; unsigned int caplen; unsigned int len; };

static void *(*p_open_dead)(int, int);
static int (*p_compile)(void *, struct nw_prog *, const char *, int, unsigned int);
static char *(*p_geterr)(void *);
static void (*p_freecode)(struct nw_prog *);
static void (*p_close)(void *);
static int (*p_offline_filter)(const struct nw_prog *, const struct nw_hdr *, const unsigned char *);
static void *(*p_create)(const char *, char *);
static int (*p_set_snaplen)(void *, int);
static int (*p_set_buffer_size)(void *, int);
static int (*p_activate)(void *);
static int (*p_datalink)(void *);
static const char *(*p_statustostr)(int);
static int (*p_lookupnet)(const char *, unsigned int *, unsigned int *, char *);

static const char *nw_load(void) {
	static const char *names[] = {"libpcap.so.1", "libpcap.so.0.8", "libpcap.so", 0};
	void *h = 0;
	for (int i = 0; names[i] != 0 && h == 0; i++) {
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	}
	if (h == 0) {
		return dlerror();
	}
#define NW_SYM(v, name) if ((*(void **)&v = dlsym(h, name)) == 0) return dlerror();
	NW_SYM(p_open_dead, "pcap_open_dead")
	NW_SYM(p_compile, "pcap_compile")
	NW_SYM(p_geterr, "pcap_geterr")
	NW_SYM(p_freecode, "pcap_freecode")
	NW_SYM(p_close, "pcap_close")
	NW_SYM(p_offline_filter, "pcap_offline_filter")
	NW_SYM(p_create, "pcap_create")
	NW_SYM(p_set_snaplen, "pcap_set_snaplen")
	NW_SYM(p_set_buffer_size, "pcap_set_buffer_size")
	NW_SYM(p_activate, "pcap_activate")
	NW_SYM(p_datalink, "pcap_datalink")
	NW_SYM(p_statustostr, "pcap_statustostr")
	NW_SYM(p_lookupnet, "pcap_lookupnet")
#undef NW_SYM
	return 0;
}

static void *nw_open_dead(int lt, int snaplen) { return p_open_dead(lt, snaplen); }
static int nw_compile(void *p, struct nw_prog *prog, const char *expr, unsigned int mask) {
	return p_compile(p, prog, expr, 1, mask);
}
static const char *nw_geterr(void *p) { return p_geterr(p); }
static void nw_freecode(struct nw_prog *prog) { p_freecode(prog); }
static void nw_close(void *p) { p_close(p); }
static int nw_filter(const struct nw_prog *prog, long long sec, long usec, unsigned int caplen,
		unsigned int len, const unsigned char *data) {
	struct nw_hdr h;
	h.ts.tv_sec = sec;
	h.ts.tv_usec = usec;
	h.caplen = caplen;
	h.len = len;
	return p_offline_filter(prog, &h, data);
}
static void *nw_create(const char *dev, char *errbuf) { return p_create(dev, errbuf); }
static int nw_set_snaplen(void *p, int n) { return p_set_snaplen(p, n); }
static int nw_set_buffer_size(void *p, int n) { return p_set_buffer_size(p, n); }
static int nw_activate(void *p) { return p_activate(p); }
static int nw_datalink(void *p) { return p_datalink(p); }
static const char *nw_statustostr(int s) { return p_statustostr(s); }
static int nw_lookupnet(const char *dev, unsigned int *net, unsigned int *mask, char *errbuf) {
	return p_lookupnet(dev, net, mask, errbuf);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

const (
	errbufSize     = 256        // PCAP_ERRBUF_SIZE
	netmaskUnknown = 0xffffffff // PCAP_NETMASK_UNKNOWN
	maxProgram     = 1 << 16    // BPF_MAXINSNS is 4096; any sane program fits
)

var (
	loadOnce sync.Once
	loadErr  error
	// libpcap before 1.8 does not make pcap_compile thread-safe.
	compileMu sync.Mutex
)

// Load makes libpcap available; it is called by everything else here and
// only does work once.
func Load() error {
	loadOnce.Do(func() {
		if msg := C.nw_load(); msg != nil {
			loadErr = fmt.Errorf("libpcap is needed for filter expressions and could not be loaded (install libpcap, e.g. the libpcap0.8 package): %s", C.GoString(msg))
		}
	})
	return loadErr
}

// Instruction is one classic BPF instruction.
type Instruction struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Program is a compiled filter held in C memory, as pcap_offline_filter
// needs it.
type Program struct {
	prog *C.struct_nw_prog
}

// CompileOffline compiles expr for packets of the given DLT as tcpdump -r
// does for a file (pcap_open_dead, optimised, netmask unknown).
func CompileOffline(dlt, snaplen int, expr string) (*Program, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	h := C.nw_open_dead(C.int(dlt), C.int(snaplen))
	if h == nil {
		return nil, errors.New("pcap_open_dead failed")
	}
	defer C.nw_close(h)
	prog := (*C.struct_nw_prog)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_nw_prog{}))))
	compileMu.Lock()
	rc := C.nw_compile(h, prog, cexpr, netmaskUnknown)
	compileMu.Unlock()
	if rc < 0 {
		msg := C.GoString(C.nw_geterr(h))
		C.free(unsafe.Pointer(prog))
		return nil, errors.New(msg)
	}
	p := &Program{prog: prog}
	runtime.AddCleanup(p, func(prog *C.struct_nw_prog) {
		C.nw_freecode(prog)
		C.free(unsafe.Pointer(prog))
	}, prog)
	return p, nil
}

// Match runs the program on one packet: data is what was captured,
// wireLen the length on the wire.
func (p *Program) Match(sec, usec int64, data []byte, wireLen int) bool {
	// unsafe.SliceData rather than &data[0]: an empty record is legal.
	ok := C.nw_filter(p.prog, C.longlong(sec), C.long(usec), C.uint(len(data)), C.uint(wireLen),
		(*C.uchar)(unsafe.SliceData(data))) != 0
	runtime.KeepAlive(p)
	return ok
}

// CompileLive compiles expr for a live interface as tcpdump does: against
// an activated handle (so VLAN tests use the kernel's BPF extensions) with
// the interface's netmask. It returns the program and the interface's DLT.
func CompileLive(iface string, snaplen int, expr string) ([]Instruction, int, error) {
	if err := Load(); err != nil {
		return nil, 0, err
	}
	cdev := C.CString(iface)
	defer C.free(unsafe.Pointer(cdev))
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	errbuf := (*C.char)(C.calloc(errbufSize, 1))
	defer C.free(unsafe.Pointer(errbuf))

	h := C.nw_create(cdev, errbuf)
	if h == nil {
		return nil, 0, errors.New(C.GoString(errbuf))
	}
	defer C.nw_close(h)
	if C.nw_set_snaplen(h, C.int(snaplen)) != 0 {
		return nil, 0, fmt.Errorf("set snaplen: %s", C.GoString(C.nw_geterr(h)))
	}
	// The handle never reads a packet: keep its ring small.
	if C.nw_set_buffer_size(h, 1<<16) != 0 {
		return nil, 0, fmt.Errorf("set buffer size: %s", C.GoString(C.nw_geterr(h)))
	}
	if st := C.nw_activate(h); st < 0 {
		msg := C.GoString(C.nw_statustostr(st))
		if detail := C.GoString(C.nw_geterr(h)); detail != "" {
			msg += ": " + detail
		}
		return nil, 0, fmt.Errorf("open: %s", msg)
	}
	var netp, mask C.uint
	if C.nw_lookupnet(cdev, &netp, &mask, errbuf) < 0 {
		mask = netmaskUnknown // an interface without IPv4
	}
	var prog C.struct_nw_prog
	compileMu.Lock()
	rc := C.nw_compile(h, &prog, cexpr, mask)
	compileMu.Unlock()
	if rc < 0 {
		return nil, 0, errors.New(C.GoString(C.nw_geterr(h)))
	}
	defer C.nw_freecode(&prog)
	if prog.len > maxProgram {
		return nil, 0, fmt.Errorf("compiled program has %d instructions", prog.len)
	}
	insns := unsafe.Slice(prog.insns, int(prog.len))
	out := make([]Instruction, len(insns))
	for i, in := range insns {
		out[i] = Instruction{Code: uint16(in.code), Jt: uint8(in.jt), Jf: uint8(in.jf), K: uint32(in.k)}
	}
	return out, int(C.nw_datalink(h)), nil
}
