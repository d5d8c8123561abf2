// Package engine is Glimmer's compute runtime: tensors, a small set of ops
// behind one Backend interface, and (in sub-packages) the backends that run
// them.
//
// # Memory layout
//
// Every tensor is dense, contiguous and row-major: the last axis varies
// fastest. Images and feature maps are NCHW ([batch, channels, height,
// width]); token sequences are [batch, tokens, features]; linear weights are
// stored as in the checkpoints, [out, in]; convolution kernels as
// [out, in, kh, kw]. Multi-head activations keep heads interleaved in the
// feature axis, [batch, tokens, heads*headDim], so the attention op reads
// projections straight from the linear layers with no permute.
//
// # Precision
//
// Tensors are F32 or F16. F16 is a storage format only (weights stay packed
// on the GPU); every op does its arithmetic in float32.
//
// # Backends
//
// engine/cpu is pure Go and runs everywhere; engine/gl runs the same ops as
// OpenGL 4.3 compute shaders. engine/conformance holds the suite that holds
// every backend to a float64 reference. engine/device opens a backend by
// name ("auto", "gl", "cpu").
package engine
