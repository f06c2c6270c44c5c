package rpcops

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// Certificate requests to Active Directory Certificate Services, the path
// of AD CS abuse (ESC1, ESC6, ESC8...): T1649.
//
//   - MS-ICPR ICertPassage (\pipe\cert, or TCP): CertServerRequest.
//   - MS-WCCE ICertRequestD and ICertRequestD2 (DCOM): Request, Request2,
//     GetCACert, GetCAProperty.
//
// The request's attributes (name:value lines: CertificateTemplate, SAN) and
// the PKCS #10 or CMC request itself are in the clear when the call is not
// sealed: the template, the subject and the subject alternative names (the
// UPN asked for) are reported. A SAN naming another account than the one
// that authenticated is how ESC1 and ESC6 impersonate.
var (
	icprUUID     = mustUUID("91ae6020-9e3c-11cf-8d7c-00aa00c091be")
	certReqUUID  = mustUUID("d99e6e70-fc88-11d0-b498-00a0c90312f3")
	certReq2UUID = mustUUID("5422fd3a-d4b8-4cef-a12e-e87d4ca22e90")
)

func init() { builders = append(builders, registerCertsrv) }

// TechCert is T1649, steal or forge authentication certificates.
const TechCert = "T1649"

func registerCertsrv() {
	certOp := func(k certCall) op {
		return op{req: func(x *dc) { certRequest(x, k) }, resp: certResponse, technique: TechCert, phase: PhaseCredAccess}
	}
	req := certOp(certICPR)
	reqD := certOp(certWCCE)
	req2 := certOp(certWCCE2)
	prop := op{req: certProperty, technique: "T1649", phase: PhaseRecon}
	register(&iface{name: "ICertPassage", uuid: icprUUID, pipes: []string{"cert"},
		names: []string{"CertServerRequest"}, ops: map[uint16]op{0: req}})
	register(&iface{name: "ICertRequestD", uuid: certReqUUID, orpc: true,
		names: dcomNames("Request", "GetCACert", "Ping"),
		ops:   map[uint16]op{3: reqD, 4: {technique: "T1649", phase: PhaseRecon}, 5: {noise: true}}})
	register(&iface{name: "ICertRequestD2", uuid: certReq2UUID, orpc: true,
		names: dcomNames("Request", "GetCACert", "Ping", "Request2", "GetCAProperty", "GetCAPropertyInfo", "Ping2"),
		ops: map[uint16]op{3: reqD, 4: {technique: "T1649", phase: PhaseRecon}, 5: {noise: true},
			6: req2, 7: prop, 8: {technique: "T1649", phase: PhaseRecon}, 9: {noise: true}}})
}

// certCall tells the three request methods apart: their arguments are the
// same but neither in the same order nor of the same types.
type certCall int

const (
	certICPR  certCall = iota // ICertPassage::CertServerRequest
	certWCCE                  // ICertRequestD::Request
	certWCCE2                 // ICertRequestD2::Request2
)

// certBlob reads a CERTTRANSBLOB (cb, then a unique pointer to cb bytes),
// its bytes deferred.
func certBlob(r *ndr.Reader, dst *[]byte) {
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() { *dst = r.Bytes(r.Count(1)) })
		}
	})
}

// certRequest reads the request's arguments:
//
//	CertServerRequest (MS-ICPR 3.2.4.1.1): dwFlags, pwszAuthority,
//	  pdwRequestId, pctbAttribs (a CERTTRANSBLOB of UTF-16), pctbRequest
//	Request (MS-WCCE 3.2.1.4.2.1): dwFlags, pwszAuthority, pdwRequestId,
//	  pwszAttributes (a unique string), pctbRequest
//	Request2 (MS-WCCE 3.2.1.4.3.1): pwszAuthority, dwFlags,
//	  pwszSerialNumber, pdwRequestId, pwszAttributes, pctbRequest
func certRequest(x *dc, k certCall) {
	r := x.r
	var flags uint32
	var ca, serial, attrText string
	var attrs, request []byte
	if k == certWCCE2 {
		ca = wstrPtr(r)
		flags = r.U32()
		serial = wstrPtr(r)
	} else {
		flags = r.U32()
		ca = wstrPtr(r)
	}
	r.U32() // pdwRequestId
	if k == certICPR {
		certBlob(r, &attrs)
		attrText = utf16Text(attrs)
	} else {
		attrText = wstrPtr(r)
	}
	certBlob(r, &request)
	x.add("ca", ca)
	x.add("flags", hex32(flags))
	x.add("serial", serial)
	x.d.Target = ca
	a := parseCertAttrs(attrText)
	csr := ParseCertRequest(request)
	x.add("template", firstNonEmpty(a.template, csr.Template))
	x.add("subject", csr.Subject)
	var sans []string
	for _, s := range append(a.sans, csr.SANs...) {
		if !slices.Contains(sans, s) {
			sans = append(sans, s)
		}
	}
	if len(sans) > 0 {
		x.add("subject alternative name", strings.Join(sans, ", "))
	}
	if len(a.other) > 0 {
		x.add("attributes", strings.Join(a.other, "; "))
	}
	if tmpl := firstNonEmpty(a.template, csr.Template); tmpl != "" {
		x.d.Target = strings.TrimPrefix(ca+": ", ": ") + tmpl
	}
	if len(sans) > 0 {
		x.d.Command = "SAN " + strings.Join(sans, ", ")
	}
}

// certResponse: the request id, the disposition, then the blobs.
func certResponse(x *dc) {
	r := x.r
	id := r.U32()
	disp := r.U32()
	x.add("request id", fmt.Sprint(id))
	x.add("disposition", enumName(disp, certDispositions.get()))
}

var certDispositions = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "incomplete", 1: "error", 2: "denied", 3: "issued", 4: "issued out of band",
		5: "under submission", 6: "revoked"}
}}

func certProperty(x *dc) {
	ca := wstrPtr(x.r)
	id := x.r.U32()
	x.add("ca", ca)
	x.add("property", fmt.Sprint(id))
	x.d.Target = ca
}

type certAttrs struct {
	template string
	sans     []string
	other    []string
}

// utf16Text decodes ICPR's attribute blob (UTF-16LE, NUL-terminated),
// at most 4096 code units.
func utf16Text(b []byte) string {
	if len(b) < 2 {
		return ""
	}
	u := make([]uint16, 0, min(len(b)/2, 4096))
	for i := 0; i+1 < len(b) && len(u) < cap(u); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

// parseCertAttrs reads the request attributes: "name:value" pairs
// separated by new lines (MS-WCCE 2.2.2.7.10). SAN:upn=...&dns=... asks
// for subject alternative names (honoured when the CA has
// EDITF_ATTRIBUTESUBJECTALTNAME2: ESC6).
func parseCertAttrs(s string) (a certAttrs) {
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "certificatetemplate":
			a.template = strings.TrimSpace(val)
		case "san":
			for _, kv := range strings.Split(val, "&") {
				if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
					a.sans = append(a.sans, strings.ToLower(strings.TrimSpace(k))+":"+strings.TrimSpace(v))
				}
			}
		default:
			if len(a.other) < 16 {
				a.other = append(a.other, truncate(line, 256))
			}
		}
	}
	return a
}
