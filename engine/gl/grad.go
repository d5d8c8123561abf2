package gl

import "glimmer/engine"

var _ engine.TrainBackend = (*Backend)(nil)

// Stubs until the backward shaders land; each is replaced by its real op.

func (b *Backend) SumTo(dst, x *engine.Tensor) { panic("gl: SumTo not implemented") }
func (b *Backend) GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	panic("gl: GroupNormBackward not implemented")
}
func (b *Backend) LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma *engine.Tensor, eps float32) {
	panic("gl: LayerNormBackward not implemented")
}
func (b *Backend) SoftmaxBackward(dx, dy, y *engine.Tensor) {
	panic("gl: SoftmaxBackward not implemented")
}
func (b *Backend) UnaryBackward(dx, dy, x *engine.Tensor, op engine.UnaryOp) {
	panic("gl: UnaryBackward not implemented")
}
func (b *Backend) GEGLUBackward(dx, dy, x *engine.Tensor) { panic("gl: GEGLUBackward not implemented") }
func (b *Backend) Upsample2xBackward(dx, dy *engine.Tensor) {
	panic("gl: Upsample2xBackward not implemented")
}
func (b *Backend) Split(a, c, x *engine.Tensor) { panic("gl: Split not implemented") }
func (b *Backend) AdamW(param, grad, m, v *engine.Tensor, p engine.AdamWParams) {
	panic("gl: AdamW not implemented")
}
