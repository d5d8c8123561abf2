package cpu

import "glimmer/engine"

var _ engine.TrainBackend = (*Backend)(nil)

// Stubs until the backward ops land; each is replaced by its real op.

func (be *Backend) SumTo(dst, x *engine.Tensor) { panic("cpu: SumTo not implemented") }
func (be *Backend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.Conv2DParams) {
	panic("cpu: Conv2DBackwardData not implemented")
}
func (be *Backend) Conv2DBackwardWeight(dw, x, dy *engine.Tensor, p engine.Conv2DParams) {
	panic("cpu: Conv2DBackwardWeight not implemented")
}
func (be *Backend) GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta *engine.Tensor, p engine.GroupNormParams) {
	panic("cpu: GroupNormBackward not implemented")
}
func (be *Backend) LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma *engine.Tensor, eps float32) {
	panic("cpu: LayerNormBackward not implemented")
}
func (be *Backend) SoftmaxBackward(dx, dy, y *engine.Tensor) {
	panic("cpu: SoftmaxBackward not implemented")
}
func (be *Backend) AttentionBackward(dq, dk, dv, dy, q, k, v *engine.Tensor, p engine.AttentionParams) {
	panic("cpu: AttentionBackward not implemented")
}
func (be *Backend) UnaryBackward(dx, dy, x *engine.Tensor, op engine.UnaryOp) {
	panic("cpu: UnaryBackward not implemented")
}
func (be *Backend) GEGLUBackward(dx, dy, x *engine.Tensor) {
	panic("cpu: GEGLUBackward not implemented")
}
func (be *Backend) Upsample2xBackward(dx, dy *engine.Tensor) {
	panic("cpu: Upsample2xBackward not implemented")
}
func (be *Backend) Split(a, c, x *engine.Tensor) { panic("cpu: Split not implemented") }
func (be *Backend) AdamW(param, grad, m, v *engine.Tensor, p engine.AdamWParams) {
	panic("cpu: AdamW not implemented")
}
