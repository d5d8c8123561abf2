package nn

import "glimmer/engine"

// ShapeOnly is a backend that allocates storage-less tensors and runs no
// op: a network run on it makes the same pool requests as on a real
// backend, in the same order, at the cost of the Go code alone. Pools
// rehearse passes on it (Pool.Plan) and the VAE counts a decode's memory
// with it. Read gives zeros; the values of everything are undefined.
type ShapeOnly struct{}

var _ engine.Backend = ShapeOnly{}

// sizeOnly is a pointer, so that every tensor has its own storage (a
// pool tells its buffers apart by storage).
type sizeOnly struct{ bytes int }

func (s *sizeOnly) Bytes() int { return s.bytes }

func (ShapeOnly) Name() string { return "shape-only" }
func (ShapeOnly) Sync() error  { return nil }
func (ShapeOnly) Close() error { return nil }

func (ShapeOnly) New(dt engine.DType, shape ...int) *engine.Tensor {
	return engine.NewTensor(shape, dt, &sizeOnly{engine.Shape(shape).Numel() * dt.Size()})
}
func (ShapeOnly) Write(*engine.Tensor, []float32) {}
func (ShapeOnly) WriteRaw(*engine.Tensor, []byte) {}
func (ShapeOnly) Read(t *engine.Tensor) ([]float32, error) {
	return make([]float32, t.Numel()), nil
}
func (ShapeOnly) Free(*engine.Tensor) {}

func (ShapeOnly) MatMul(_, _, _, _ *engine.Tensor, _ engine.MatMulParams)        {}
func (ShapeOnly) Conv2D(_, _, _, _ *engine.Tensor, _ engine.Conv2DParams)        {}
func (ShapeOnly) GroupNorm(_, _, _, _ *engine.Tensor, _ engine.GroupNormParams)  {}
func (ShapeOnly) LayerNorm(_, _, _, _ *engine.Tensor, _ float32)                 {}
func (ShapeOnly) Softmax(_, _ *engine.Tensor)                                    {}
func (ShapeOnly) Attention(_, _, _, _ *engine.Tensor, _ engine.AttentionParams)  {}
func (ShapeOnly) Unary(_, _ *engine.Tensor, _ engine.UnaryOp)                    {}
func (ShapeOnly) GEGLU(_, _ *engine.Tensor)                                      {}
func (ShapeOnly) Binary(_, _, _ *engine.Tensor, _ engine.BinaryOp)               {}
func (ShapeOnly) Scale(_, _ *engine.Tensor, _, _ float32)                        {}
func (ShapeOnly) Upsample2x(_, _ *engine.Tensor)                                 {}
func (ShapeOnly) Concat(_, _, _ *engine.Tensor)                                  {}
func (ShapeOnly) Transpose(_, _ *engine.Tensor)                                  {}
func (ShapeOnly) TimestepEmbedding(_, _ *engine.Tensor, _ engine.TimestepParams) {}
func (ShapeOnly) SampleStep(_, _, _, _, _ *engine.Tensor, _ engine.StepParams)   {}
