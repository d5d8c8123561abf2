package rng

// mt19937 is the 32-bit Mersenne Twister of Matsumoto and Nishimura (1998),
// as specified in C++'s std::mt19937, seeded the way PyTorch's
// CPUGeneratorImpl seeds it: the 64-bit seed is truncated to its low 32 bits
// and expanded with the standard init_genrand recurrence
// state[i] = 1812433253 * (state[i-1] ^ (state[i-1] >> 30)) + i.
type mt19937 struct {
	state [mtN]uint32
	next  int // index of the next word to temper; mtN means "regenerate first"
}

const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

func (m *mt19937) seed(seed uint64) {
	m.state[0] = uint32(seed) // only the low 32 bits reach the state
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.next = mtN
}

// regenerate computes the next block of mtN untempered words in place.
func (m *mt19937) regenerate() {
	s := &m.state
	for i := 0; i < mtN; i++ {
		y := s[i]&mtUpperMask | s[(i+1)%mtN]&mtLowerMask
		v := s[(i+mtM)%mtN] ^ y>>1
		if y&1 != 0 {
			v ^= mtMatrixA
		}
		s[i] = v
	}
	m.next = 0
}

// uint32 returns the next tempered 32-bit output.
func (m *mt19937) uint32() uint32 {
	if m.next >= mtN {
		m.regenerate()
	}
	y := m.state[m.next]
	m.next++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}
