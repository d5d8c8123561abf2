package gl

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// profile accumulates the GPU time of each shader variant when
// GLIMMER_GL_PROFILE=1: every dispatch is bracketed by glFinish, which
// serialises the GPU, so totals run higher than in normal use; the shares
// show where the time goes. GL thread only.
type profile struct {
	calls map[string]int
	time  map[string]time.Duration
}

func (p *profile) add(key string, d time.Duration) {
	p.calls[key]++
	p.time[key] += d
}

// Profile reports the per-shader totals since the last call and resets
// them; empty unless profiling is on.
func (b *Backend) Profile() string {
	var out string
	b.call(func() {
		if b.profile == nil {
			return
		}
		keys := make([]string, 0, len(b.profile.time))
		var total time.Duration
		for k, d := range b.profile.time {
			keys = append(keys, k)
			total += d
		}
		sort.Slice(keys, func(i, j int) bool { return b.profile.time[keys[i]] > b.profile.time[keys[j]] })
		var sb strings.Builder
		fmt.Fprintf(&sb, "%-70s %7s %10s %6s\n", "shader variant", "calls", "ms", "share")
		for _, k := range keys {
			d := b.profile.time[k]
			fmt.Fprintf(&sb, "%-70s %7d %10.2f %5.1f%%\n", k, b.profile.calls[k], float64(d.Microseconds())/1000, 100*d.Seconds()/total.Seconds())
		}
		fmt.Fprintf(&sb, "%-70s %7s %10.2f\n", "total", "", float64(total.Microseconds())/1000)
		out = sb.String()
		b.profile = &profile{calls: map[string]int{}, time: map[string]time.Duration{}}
	})
	return out
}
