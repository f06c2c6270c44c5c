package rpcops

import (
	"fmt"
	"strings"
)

// MS-NSPI, the Exchange/AD address book (nspi), and MS-OXABREF, its
// referral service (RFR). Reading the address book is T1087.003 (Account
// Discovery: Email Account), reconnaissance: NspiQueryRows, NspiGetMatches,
// NspiSeekEntries, NspiGetSpecialTable (the address lists), NspiDNToMId
// and name resolution. Outlook reads the address book too, a screenful of
// rows at a time; a tool dumping the GAL asks for many rows per call, so
// a request or answer of bulkRows rows or more is flagged "bulk".
// Binding, statistics and the schema (NspiQueryColumns, NspiGetPropList,
// NspiGetTemplateInfo, ID mapping) are named only.
var (
	nspiUUID = mustUUID("f5cc5a18-4264-101a-8c59-08002b2f8426")
	rfrUUID  = mustUUID("1544f5e0-613c-11d1-93df-00c04fd7bd09")
)

// TechGAL is Account Discovery: Email Account.
const TechGAL = "T1087.003"

// bulkRows is where a row read stops looking like a person scrolling an
// address book (tens of rows a call) and starts looking like a dump.
const bulkRows = 100

func init() { builders = append(builders, registerNSPI) }

func registerNSPI() {
	gal := func(req, resp func(x *dc)) op {
		return op{handle: true, req: req, resp: resp, technique: TechGAL, phase: PhaseRecon}
	}
	register(&iface{name: "nspi", uuid: nspiUUID,
		names: []string{"NspiBind", "NspiUnbind", "NspiUpdateStat", "NspiQueryRows", "NspiSeekEntries",
			"NspiGetMatches", "NspiResortRestriction", "NspiDNToMId", "NspiGetPropList", "NspiGetProps",
			"NspiCompareMIds", "NspiModProps", "NspiGetSpecialTable", "NspiGetTemplateInfo",
			"NspiModLinkAtt", "NspiDeleteEntries", "NspiQueryColumns", "NspiGetNamesFromIDs",
			"NspiGetIDsFromNames", "NspiResolveNames", "NspiResolveNamesW"},
		ops: map[uint16]op{
			0:  {req: nspiBind, resp: nspiBindResp, noise: true},
			1:  {handle: true, closes: true, noise: true},
			3:  gal(nspiQueryRows, nspiRowsResp),
			4:  gal(func(x *dc) { x.r.U32(); nspiStat(x) }, nil),
			5:  gal(func(x *dc) { x.r.U32(); nspiStat(x) }, nil),
			7:  gal(nspiDNToMId, nil),
			9:  gal(func(x *dc) { x.r.U32(); nspiStat(x) }, nil),
			12: gal(nspiSpecialTable, nil),
			16: {handle: true, req: func(x *dc) { x.r.U32(); x.add("flags", hex32(x.r.U32())) }},
			19: gal(nil, nil),
			20: gal(nil, nil),
		}})
	register(&iface{name: "RFR", uuid: rfrUUID,
		names: []string{"RfrGetNewDSA", "RfrGetFQDNFromServerDN"},
		ops: map[uint16]op{
			0: {req: func(x *dc) { x.r.U32(); x.add("user DN", x.r.AString()) }},
			1: {req: func(x *dc) { x.r.U32(); x.r.U32(); x.add("server DN", x.r.AString()) }},
		}})
}

// nspiStat reads a STAT (MS-NSPI 2.2.8): SortType, ContainerID,
// CurrentRec, Delta, NumPos, TotalRecs, CodePage, TemplateLocale,
// SortLocale. Container 0 is the Global Address List.
func nspiStat(x *dc) {
	r := x.r
	r.Align(4)
	r.U32()
	container := r.U32()
	r.Skip(4 * 7)
	if r.Err() != nil {
		return
	}
	c := fmt.Sprintf("container %d", container)
	if container == 0 {
		c = "Global Address List"
	}
	x.add("container", c)
	if x.d.Target == "" {
		x.d.Target = c
	}
}

// nspiBind reads NspiBind's dwFlags and STAT; the handle it returns is
// the address-book session.
func nspiBind(x *dc) {
	x.add("flags", hex32(x.r.U32()))
	nspiStat(x)
}

// nspiBindResp reads pServerGuid (unique FlatUID_r) then the handle.
func nspiBindResp(x *dc) {
	if x.r.Ptr() {
		x.add("server guid", UUIDString(x.r.UUID()))
	}
	x.returns(readHandle(x.r), handleInfo{kind: "nspi", name: "address book"})
}

// nspiQueryRows reads dwFlags, pStat, dwETableCount, lpETable (unique
// array of MIds) and Count, the rows asked for.
func nspiQueryRows(x *dc) {
	r := x.r
	x.add("flags", hex32(r.U32()))
	nspiStat(x)
	explicit := r.U32()
	if r.Ptr() {
		r.Skip(4 * r.Count(4))
	}
	count := r.U32()
	if r.Err() != nil {
		return
	}
	if explicit != 0 {
		x.add("entries asked", fmt.Sprint(explicit))
	}
	x.add("rows asked", fmt.Sprint(count))
	if count >= bulkRows && count < 1<<31 {
		x.add("bulk", fmt.Sprintf("%d rows in one call", count))
	}
}

// nspiRowsResp reads the STAT and ppRows: a unique pointer to a
// PropertyRowSet_r, a conformant structure whose size precedes cRows.
func nspiRowsResp(x *dc) {
	r := x.r
	r.Skip(36)
	if !r.Ptr() {
		return
	}
	r.Construct(func() {
		r.U3264()
		n := r.U32()
		if r.Err() != nil {
			return
		}
		x.add("rows returned", fmt.Sprint(n))
		if n >= bulkRows && !hasField(x.d, "bulk") {
			x.add("bulk", fmt.Sprintf("%d rows in one answer", n))
		}
	})
}

func hasField(d *Decoded, name string) bool {
	for _, f := range d.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// maxDNs bounds the names NspiDNToMId lists.
const maxDNs = 32

// nspiDNToMId reads Reserved and pNames, a StringsArray_r: conformance,
// Count, Count unique pointers to 8-bit strings (legacy Exchange DNs).
func nspiDNToMId(x *dc) {
	r := x.r
	r.U32()
	var dns []string
	r.Construct(func() {
		n := r.Count(r.PtrSize())
		r.U32()
		for i := 0; i < n && r.Err() == nil; i++ {
			if r.Ptr() {
				keep := len(dns) < maxDNs
				r.Defer(func() {
					if s := r.AString(); keep {
						dns = append(dns, s)
					}
				})
			}
		}
	})
	x.add("names", strings.Join(dns, ", "))
	if len(dns) > 0 {
		x.d.Target = dns[0]
	}
}

// nspiSpecialTable reads dwFlags, pStat (unique) and lpVersion: the
// address-book hierarchy (its address lists) or the creation templates.
func nspiSpecialTable(x *dc) {
	r := x.r
	flags := r.U32()
	if r.Ptr() {
		nspiStat(x)
	}
	if r.Err() != nil {
		return
	}
	x.add("flags", flagNames(flags, []flagName{{0x2, "ADDRESS_CREATION_TEMPLATES"}, {0x4, "UNICODE_STRINGS"}}))
	if flags&0x2 != 0 {
		x.d.Target = "address creation templates"
	} else {
		x.d.Target = "address book hierarchy"
	}
}
