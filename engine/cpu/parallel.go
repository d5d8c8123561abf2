package cpu

import (
	"sync"
	"sync/atomic"
)

// minParallelWork is the work (roughly, float32 operations) below which an
// op stays on the calling goroutine, by default: starting goroutines costs about a
// microsecond, the time of a few thousand flops.
const minParallelWork = 1 << 15

// parallel calls fn(lo, hi) on disjoint ranges that cover [0, n), using up
// to be.workers goroutines. cost is the approximate work of one index: an
// op with less than be.minWork in all runs inline, and no more goroutines
// start than there are be.minWork units. The range is cut
// into up to four chunks per goroutine, handed out dynamically so that
// uneven items balance.
func (be *Backend) parallel(n, cost int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	total := n * max(cost, 1)
	workers := min(be.workers, n, max(total/max(be.minWork, 1), 1))
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunks := min(n, 4*workers)
	size := (n + chunks - 1) / chunks
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(size))) - size
				if lo >= n {
					return
				}
				fn(lo, min(lo+size, n))
			}
		}()
	}
	wg.Wait()
}

// each runs fn(i) for every i in [0, n) on up to be.workers goroutines;
// each i is one task of about cost flops.
func (be *Backend) each(n, cost int, fn func(i int)) {
	be.parallel(n, cost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(i)
		}
	})
}
