package pcapfilter

import "errors"

// Instruction is one classic BPF instruction (struct bpf_insn).
type Instruction struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcode fields (bpf.h).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsRET, clsMISC = 0, 1, 2, 3, 4, 5, 6, 7

	szW, szH, szB = 0x00, 0x08, 0x10

	mdIMM, mdABS, mdIND, mdMEM, mdLEN, mdMSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0

	opADD, opSUB, opMUL, opDIV, opOR, opAND, opLSH, opRSH, opNEG, opMOD, opXOR = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0

	jmpJA, jmpJEQ, jmpJGT, jmpJGE, jmpJSET = 0x00, 0x10, 0x20, 0x30, 0x40

	srcK, srcX = 0x00, 0x08

	retK, retX, retA = 0x00, 0x08, 0x10

	miscTAX, miscTXA = 0x00, 0x80

	memWords = 16 // BPF_MEMWORDS
	maxInsns = 1 << 16
	maxSteps = 1 << 20
)

// Validate checks a program as libpcap's bpf_validate does: jumps land
// inside it, scratch memory indexes and constant divisors are valid, it
// ends with a return. Run never misbehaves on an invalid program, but a
// program from outside should be refused with a reason.
func Validate(prog []Instruction) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return errors.New("BPF program empty or too long")
	}
	for i, in := range prog {
		switch in.Code & 7 {
		case clsLD, clsLDX:
			switch in.Code & 0xe0 {
			case mdIMM, mdABS, mdIND, mdLEN, mdMSH:
			case mdMEM:
				if in.K >= memWords {
					return errors.New("BPF program reads scratch memory out of range")
				}
			default:
				return errors.New("BPF program has an invalid load")
			}
		case clsST, clsSTX:
			if in.K >= memWords {
				return errors.New("BPF program writes scratch memory out of range")
			}
		case clsALU:
			switch in.Code & 0xf0 {
			case opDIV, opMOD:
				if in.Code&srcX == srcK && in.K == 0 {
					return errors.New("BPF program divides by a constant zero")
				}
			case opLSH, opRSH:
				if in.Code&srcX == srcK && in.K >= 32 {
					return errors.New("BPF program shifts by 32 or more")
				}
			case opADD, opSUB, opMUL, opOR, opAND, opNEG, opXOR:
			default:
				return errors.New("BPF program has an invalid arithmetic operation")
			}
		case clsJMP:
			next := i + 1
			if in.Code&0xf0 == jmpJA {
				// Signed: libpcap compiles protochain into a loop.
				if to := next + int(int32(in.K)); to < 0 || to >= len(prog) {
					return errors.New("BPF program jumps out of range")
				}
			} else if next+int(in.Jt) >= len(prog) || next+int(in.Jf) >= len(prog) {
				return errors.New("BPF program jumps out of range")
			}
		}
	}
	if prog[len(prog)-1].Code&7 != clsRET {
		return errors.New("BPF program does not end with a return")
	}
	return nil
}

// Run executes prog on a packet as libpcap's pcap_offline_filter does
// (bpf_filter): data is what was captured, wireLen the length on the wire
// (what a length load reads), a load past the captured bytes or a
// division by zero rejects the packet. It returns the program's return
// value: zero rejects, otherwise the number of bytes to keep.
func Run(prog []Instruction, data []byte, wireLen int) uint32 {
	var a, x uint32
	var mem [memWords]uint32
	buflen := uint32(len(data))
	wire := uint32(wireLen)
	steps := 0
	for pc := 0; pc >= 0 && pc < len(prog); pc++ {
		// Backward jumps make loops (protochain walks the header chain);
		// a program that has not finished after this many steps never will.
		if steps++; steps > maxSteps {
			return 0
		}
		in := &prog[pc]
		k := in.K
		switch in.Code {
		case clsRET | retK:
			return k
		case clsRET | retA:
			return a
		case clsRET | retX:
			return x

		case clsLD | szW | mdABS:
			if k > buflen || 4 > buflen-k {
				return 0
			}
			a = be32(data[k:])
		case clsLD | szH | mdABS:
			if k > buflen || 2 > buflen-k {
				return 0
			}
			a = uint32(data[k])<<8 | uint32(data[k+1])
		case clsLD | szB | mdABS:
			if k >= buflen {
				return 0
			}
			a = uint32(data[k])
		case clsLD | szW | mdLEN:
			a = wire
		case clsLDX | szW | mdLEN:
			x = wire
		case clsLD | szW | mdIND:
			if k > buflen || x > buflen-k || 4 > buflen-k-x {
				return 0
			}
			a = be32(data[x+k:])
		case clsLD | szH | mdIND:
			if k > buflen || x > buflen-k || 2 > buflen-k-x {
				return 0
			}
			a = uint32(data[x+k])<<8 | uint32(data[x+k+1])
		case clsLD | szB | mdIND:
			if k >= buflen || x >= buflen-k {
				return 0
			}
			a = uint32(data[x+k])
		case clsLDX | szB | mdMSH:
			if k >= buflen {
				return 0
			}
			x = uint32(data[k]&0xf) << 2
		case clsLD | mdIMM:
			a = k
		case clsLDX | mdIMM:
			x = k
		case clsLD | mdMEM:
			a = mem[k%memWords]
		case clsLDX | mdMEM:
			x = mem[k%memWords]
		case clsST:
			mem[k%memWords] = a
		case clsSTX:
			mem[k%memWords] = x

		case clsJMP | jmpJA:
			pc += int(int32(k)) // signed, as libpcap's bpf_filter
		case clsMISC | miscTAX:
			x = a
		case clsMISC | miscTXA:
			a = x
		default:
			// Conditional jumps and arithmetic take K or X as operand.
			v := k
			if in.Code&srcX != 0 {
				v = x
			}
			switch in.Code & 7 {
			case clsJMP:
				cond, ok := compare(in.Code&0xf0, a, v)
				if !ok || in.Code&^(0xf0|srcX) != clsJMP {
					return 0
				}
				if cond {
					pc += int(in.Jt)
				} else {
					pc += int(in.Jf)
				}
			case clsALU:
				var ok bool
				if a, ok = alu(in.Code, a, v); !ok {
					return 0
				}
			default:
				// Kernel extensions and unknown codes: libpcap aborts on
				// what bpf_validate lets through; rejecting is safe.
				return 0
			}
		}
	}
	return 0 // fell off the end: Validate refuses such programs
}

// compare evaluates a conditional jump's test; ok is false for an unknown
// operation.
func compare(op uint16, a, v uint32) (cond, ok bool) {
	switch op {
	case jmpJGT:
		return a > v, true
	case jmpJGE:
		return a >= v, true
	case jmpJEQ:
		return a == v, true
	case jmpJSET:
		return a&v != 0, true
	}
	return false, false
}

// alu applies an arithmetic instruction to A with operand v (K or X); ok
// is false for a division by zero, which rejects the packet as in
// libpcap, or an unknown operation.
func alu(code uint16, a, v uint32) (uint32, bool) {
	if code&^(0xf0|srcX) != clsALU {
		return 0, false
	}
	switch code & 0xf0 {
	case opADD:
		return a + v, true
	case opSUB:
		return a - v, true
	case opMUL:
		return a * v, true
	case opDIV:
		if v == 0 {
			return 0, false
		}
		return a / v, true
	case opMOD:
		if v == 0 {
			return 0, false
		}
		return a % v, true
	case opAND:
		return a & v, true
	case opOR:
		return a | v, true
	case opXOR:
		return a ^ v, true
	case opLSH:
		if v >= 32 {
			return 0, true
		}
		return a << v, true
	case opRSH:
		if v >= 32 {
			return 0, true
		}
		return a >> v, true
	case opNEG:
		if code != clsALU|opNEG {
			return 0, false
		}
		return -a, true
	}
	return 0, false
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
