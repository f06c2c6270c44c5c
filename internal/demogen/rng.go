package demogen

import "math"

// rng is a small deterministic generator (SplitMix64). The sample must be
// the same bytes for the same seed on every run and every Go release, so
// the generator is ours rather than math/rand's, whose derived methods may
// change between releases.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) u64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) u32() uint32 { return uint32(r.u64() >> 32) }
func (r *rng) u16() uint16 { return uint16(r.u64() >> 48) }

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

// intn returns a number in [0, n); n > 0.
func (r *rng) intn(n int) int { return int(r.u64() % uint64(n)) }

// between returns a number in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// norm returns a standard normal deviate (Box-Muller).
func (r *rng) norm() float64 {
	u := 1 - r.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.float())
}

// exp returns an exponential deviate of mean 1.
func (r *rng) exp() float64 { return -math.Log(1 - r.float()) }

// fill writes pseudo-random bytes: the look of encrypted payload.
func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		v := r.u64()
		b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		b[4], b[5], b[6], b[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		b = b[8:]
	}
	v := r.u64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// bytes returns n pseudo-random bytes.
func (r *rng) bytes(n int) []byte {
	b := make([]byte, n)
	r.fill(b)
	return b
}

// lognormal returns median*exp(sigma*N(0,1)), clipped to [lo, hi].
func (r *rng) lognormal(median, sigma float64, lo, hi int) int {
	v := int(median * math.Exp(sigma*r.norm()))
	return min(max(v, lo), hi)
}

// The helpers below round every product explicitly (float64(...)): the
// Go spec lets a compiler fuse x*y+z into one instruction on some
// architectures, which would change the last bit of a time and so the
// bytes of the sample from one platform to another.

// uniform returns a number in [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 { return lo + float64((hi-lo)*r.float()) }

// jitter returns base varied uniformly by ±frac of itself.
func (r *rng) jitter(base, frac float64) float64 {
	u := float64(frac * float64(2*r.float()))
	return base * float64(1+(u-frac))
}

// normJitter returns base varied normally with a standard deviation of
// frac/2 of itself.
func (r *rng) normJitter(base, frac float64) float64 {
	return base * float64(1+float64(frac*r.norm()/2))
}
