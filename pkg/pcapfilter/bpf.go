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
		case clsJMP | jmpJGT | srcK:
			pc += jump(a > k, in)
		case clsJMP | jmpJGE | srcK:
			pc += jump(a >= k, in)
		case clsJMP | jmpJEQ | srcK:
			pc += jump(a == k, in)
		case clsJMP | jmpJSET | srcK:
			pc += jump(a&k != 0, in)
		case clsJMP | jmpJGT | srcX:
			pc += jump(a > x, in)
		case clsJMP | jmpJGE | srcX:
			pc += jump(a >= x, in)
		case clsJMP | jmpJEQ | srcX:
			pc += jump(a == x, in)
		case clsJMP | jmpJSET | srcX:
			pc += jump(a&x != 0, in)

		case clsALU | opADD | srcX:
			a += x
		case clsALU | opSUB | srcX:
			a -= x
		case clsALU | opMUL | srcX:
			a *= x
		case clsALU | opDIV | srcX:
			if x == 0 {
				return 0
			}
			a /= x
		case clsALU | opMOD | srcX:
			if x == 0 {
				return 0
			}
			a %= x
		case clsALU | opAND | srcX:
			a &= x
		case clsALU | opOR | srcX:
			a |= x
		case clsALU | opXOR | srcX:
			a ^= x
		case clsALU | opLSH | srcX:
			a = shl(a, x)
		case clsALU | opRSH | srcX:
			a = shr(a, x)
		case clsALU | opADD | srcK:
			a += k
		case clsALU | opSUB | srcK:
			a -= k
		case clsALU | opMUL | srcK:
			a *= k
		case clsALU | opDIV | srcK:
			if k == 0 {
				return 0
			}
			a /= k
		case clsALU | opMOD | srcK:
			if k == 0 {
				return 0
			}
			a %= k
		case clsALU | opAND | srcK:
			a &= k
		case clsALU | opOR | srcK:
			a |= k
		case clsALU | opXOR | srcK:
			a ^= k
		case clsALU | opLSH | srcK:
			a = shl(a, k)
		case clsALU | opRSH | srcK:
			a = shr(a, k)
		case clsALU | opNEG:
			a = -a

		case clsMISC | miscTAX:
			x = a
		case clsMISC | miscTXA:
			a = x
		default:
			// Kernel extensions and unknown codes: libpcap aborts on what
			// bpf_validate lets through; rejecting is the safe answer.
			return 0
		}
	}
	return 0 // fell off the end: Validate refuses such programs
}

func jump(cond bool, in *Instruction) int {
	if cond {
		return int(in.Jt)
	}
	return int(in.Jf)
}

func shl(a, n uint32) uint32 {
	if n >= 32 {
		return 0
	}
	return a << n
}

func shr(a, n uint32) uint32 {
	if n >= 32 {
		return 0
	}
	return a >> n
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
