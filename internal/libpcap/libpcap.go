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
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

const netmaskUnknown = 0xffffffff // PCAP_NETMASK_UNKNOWN

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
			loadErr = fmt.Errorf("load libpcap: %s", C.GoString(msg))
		}
	})
	return loadErr
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
