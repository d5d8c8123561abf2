package rng

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The C++ standard ([rand.predef]) fixes the 10000th output of a
// default-constructed std::mt19937 (seed 5489): 4123659995.
func TestMT19937StandardValue(t *testing.T) {
	g := New(5489)
	var v uint32
	for i := 0; i < 10000; i++ {
		v = g.Uint32()
	}
	if v != 4123659995 {
		t.Fatalf("10000th output = %d, want 4123659995", v)
	}
}

// torch seeds mt19937 with the low 32 bits of the seed only.
func TestSeedUsesLow32Bits(t *testing.T) {
	a, b := New(5), New(1<<32+5)
	for i := 0; i < 1000; i++ {
		if a.Uint32() != b.Uint32() {
			t.Fatal("seeds 5 and 2^32+5 gave different streams")
		}
	}
	if New(1<<32+5).Seed() != 1<<32+5 {
		t.Fatal("Seed() must return the full seed")
	}
}

func TestUint64IsHighThenLow(t *testing.T) {
	a, b := New(9), New(9)
	hi, lo := a.Uint32(), a.Uint32()
	if got := b.Uint64(); got != uint64(hi)<<32|uint64(lo) {
		t.Fatalf("Uint64 = %#x, want %#x", got, uint64(hi)<<32|uint64(lo))
	}
}

// torch.manual_seed(0); torch.randn(5) prints
// tensor([ 1.5410, -0.2934, -2.1788,  0.5684, -1.0845]); the same numbers to
// the bit are in testdata (TestRandnMatchesTorch). Tolerance: the printed
// 4 decimals.
func TestRandnSeed0Printed(t *testing.T) {
	want := []float64{1.5410, -0.2934, -2.1788, 0.5684, -1.0845}
	got := New(0).Randn(5)
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 0.5e-4 {
			t.Fatalf("randn(5)[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// Small draws come in Box-Muller pairs: the second value of a pair is
// cached and returned by the next small draw, even across calls.
func TestSmallDrawsShareThePairCache(t *testing.T) {
	a := New(11).Randn(2)
	g := New(11)
	b0 := g.Randn(1)
	b1 := g.Randn(1)
	if a[0] != b0[0] || a[1] != b1[0] {
		t.Fatalf("randn(2) = %v but randn(1), randn(1) = %v, %v", a, b0, b1)
	}
	// A large draw does not use or clear the cache.
	g = New(11)
	g.Randn(1)
	g.Randn(16)
	if c := g.Randn(1); c[0] != a[1] {
		t.Fatalf("cache lost across a large draw: %v, want %v", c[0], a[1])
	}
}

func TestCloneIsIndependent(t *testing.T) {
	g := New(3)
	g.Randn(7) // leaves a cached normal
	c := g.Clone()
	x, y := g.Randn(40), c.Randn(40)
	if sameBits(x, y) >= 0 {
		t.Fatal("clone diverged")
	}
	x, y = g.Randn(1), c.Randn(1)
	if x[0] != y[0] {
		t.Fatal("clone lost the cached normal")
	}
}

func TestRandnEmpty(t *testing.T) {
	g := New(1)
	if len(g.Randn(0)) != 0 || len(g.Randn(-3)) != 0 {
		t.Fatal("non-positive n must give an empty slice")
	}
	if g.Uint32() != New(1).Uint32() {
		t.Fatal("an empty draw must not advance the generator")
	}
}

// Sanity of the distribution over many draws (mean 0, variance 1). With
// 2^20 samples the standard error of the mean is 1e-3 and that of the
// variance about 1.4e-3; 6e-3 is over four standard errors.
func TestRandnMoments(t *testing.T) {
	const n = 1 << 20
	v := New(2024).Randn(n)
	var s, s2 float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatal("non-finite normal")
		}
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	mean := s / n
	variance := s2/n - mean*mean
	if math.Abs(mean) > 6e-3 || math.Abs(variance-1) > 6e-3 {
		t.Fatalf("mean %v variance %v", mean, variance)
	}
}

// fma32 must round a*b+c once. The exact value is computed with math/big
// and rounded to float32 (big.Float.Float32 rounds to nearest even).
func TestFMA32RoundsOnce(t *testing.T) {
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	r := rand.New(rand.NewPCG(1, 2))
	check := func(a, b, c float32) {
		if got, want := fma32(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
	for i := 0; i < 200000; i++ {
		a := float32(r.NormFloat64())
		b := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		c := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(60)-30)))
		check(a, b, c)
	}
	// Cases where the float64 sum lands exactly halfway between two
	// float32 values while a tiny remainder decides the rounding: a*b is
	// 1 + 2^-24 + 2^-47 (just above a float32 midpoint) and c is tiny.
	a := float32(1 + math.Exp2(-23))
	b := float32(1 + math.Exp2(-24)) // not representable: rounds to 1
	check(a, b, float32(math.Exp2(-60)))
	m := float32(1 + math.Exp2(-12))
	check(m, m, -float32(math.Exp2(-24)))                // exact square 1+2^-11+2^-24 minus 2^-24
	check(m, m, float32(math.Exp2(-80)))                 // just above the value
	check(m, -m, float32(math.Exp2(-24)+math.Exp2(-70))) // negative products
	check(float32(1+math.Exp2(-23)), float32(1+math.Exp2(-23)), float32(-math.Exp2(-90)))
}
