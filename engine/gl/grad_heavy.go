package gl

import "glimmer/engine"

// Stubs until the backward shaders land; each is replaced by its real op.

func (b *Backend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.Conv2DParams) {
	panic("gl: Conv2DBackwardData not implemented")
}
func (b *Backend) Conv2DBackwardWeight(dw, x, dy *engine.Tensor, p engine.Conv2DParams) {
	panic("gl: Conv2DBackwardWeight not implemented")
}
func (b *Backend) AttentionBackward(dq, dk, dv, dy, q, k, v *engine.Tensor, p engine.AttentionParams) {
	panic("gl: AttentionBackward not implemented")
}
