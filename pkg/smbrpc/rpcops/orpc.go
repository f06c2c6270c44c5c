package rpcops

import "github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"

// orpcThis reads the ORPCTHIS that begins every DCOM request (MS-DCOM
// 2.2.13.3): version, flags, causality id and optional extensions.
func orpcThis(r *ndr.Reader) {
	r.Construct(func() {
		r.AlignP()
		r.U16() // COMVERSION
		r.U16()
		r.U32() // flags
		r.U32() // reserved1
		r.UUID()
		if r.Ptr() {
			r.Defer(func() { orpcExtentArray(r) })
		}
	})
}

// orpcThat reads the ORPCTHAT that begins every DCOM response.
func orpcThat(r *ndr.Reader) {
	r.Construct(func() {
		r.AlignP()
		r.U32() // flags
		if r.Ptr() {
			r.Defer(func() { orpcExtentArray(r) })
		}
	})
}

// orpcExtentArray reads an ORPC_EXTENT_ARRAY referent.
func orpcExtentArray(r *ndr.Reader) {
	r.AlignP()
	r.U32() // size
	r.U32() // reserved
	if r.Ptr() {
		r.Defer(func() {
			n := r.Count(r.PtrSize())
			for i := 0; i < n; i++ {
				if r.Ptr() {
					r.Defer(func() {
						m := r.Count(1)
						r.UUID()
						r.U32()
						r.Skip(m)
					})
				}
			}
		})
	}
}
