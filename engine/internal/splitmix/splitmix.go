// Package splitmix is the splitmix64 generator (Steele, Lea and Flood,
// 2014): tiny, fast and fixed forever, for seeded data that must repeat on
// every machine and Go release (the shapes dataset, epoch shuffles).
package splitmix

// Source is a splitmix64 stream; its zero value is the stream of seed 0.
type Source struct{ State uint64 }

// Next returns the stream's next value.
func (r *Source) Next() uint64 {
	r.State += 0x9e3779b97f4a7c15
	z := r.State
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
