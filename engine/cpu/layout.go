package cpu

import "glimmer/engine"

// Upsample2x repeats every pixel into a 2x2 block: x [N, C, H, W] →
// dst [N, C, 2H, 2W].
func (be *Backend) Upsample2x(dst, x *engine.Tensor) {
	engine.CheckUpsample2x(dst, x)
	h, w := x.Dim(2), x.Dim(3)
	xs, ys := buf(x), buf(dst)
	be.each(x.Dim(0)*x.Dim(1)*h, 8*w, func(r int) {
		// r is input row (n, c, ih); it feeds output rows 2r and 2r+1.
		in := xs[r*w : (r+1)*w]
		out := ys[2*r*2*w : (2*r+1)*2*w] // [2W]
		for i, v := range in {
			out[2*i], out[2*i+1] = v, v
		}
		copy(ys[(2*r+1)*2*w:(2*r+2)*2*w], out)
	})
}

// Concat joins a [N, Ca, ...] and b [N, Cb, ...] along axis 1 into
// dst [N, Ca+Cb, ...].
func (be *Backend) Concat(dst, a, b *engine.Tensor) {
	n, na, nb := engine.CheckConcat(dst, a, b)
	as, bs, ys := buf(a), buf(b), buf(dst)
	be.each(n, 2*(na+nb), func(i int) {
		out := ys[i*(na+nb) : (i+1)*(na+nb)] // [Ca+Cb, ...]
		copy(out[:na], as[i*na:(i+1)*na])
		copy(out[na:], bs[i*nb:(i+1)*nb])
	})
}

// transposeTile is the side of the square blocks Transpose copies, so that
// both the rows read and the rows written stay in cache.
const transposeTile = 32

// Transpose swaps the last two axes: x [B, R, C] → dst [B, C, R].
func (be *Backend) Transpose(dst, x *engine.Tensor) {
	nb, rows, cols := engine.CheckTranspose(dst, x)
	xs, ys := buf(x), buf(dst)
	rt := (rows + transposeTile - 1) / transposeTile
	be.each(nb*rt, 2*transposeTile*cols, func(t int) {
		b, r0 := t/rt, (t%rt)*transposeTile
		r1 := min(r0+transposeTile, rows)
		in := xs[b*rows*cols : (b+1)*rows*cols]  // [R, C]
		out := ys[b*rows*cols : (b+1)*rows*cols] // [C, R]
		for c0 := 0; c0 < cols; c0 += transposeTile {
			c1 := min(c0+transposeTile, cols)
			for r := r0; r < r1; r++ {
				for c := c0; c < c1; c++ {
					out[c*rows+r] = in[r*cols+c]
				}
			}
		}
	})
}
