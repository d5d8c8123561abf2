package engine

// Backend runs the engine's ops on one device. It is the union of two small
// interfaces: Memory (tensors in and out) and Ops (the forward op set).
// Training will add a GradOps interface beside Ops rather than change this
// one.
//
// Ops are asynchronous: a call may return before the work is done, and an
// error the device reports is kept and returned by the next Sync or Read.
// Shape mismatches are programmer errors and panic (see Check* in ops.go).
// Every op writes into a destination tensor the caller allocated, so
// buffers can be reused across steps; a destination must not alias an input
// unless the op's doc allows it.
type Backend interface {
	Memory
	Ops
	// Name names the backend and its device, e.g. "gl (NVIDIA H200)".
	Name() string
	// Sync waits for all queued work and returns the first error since the
	// last Sync.
	Sync() error
	// Close frees the device. The backend must not be used afterwards.
	Close() error
}

// Memory moves tensors between the host and a backend.
type Memory interface {
	// New allocates a tensor with undefined contents.
	New(dtype DType, shape ...int) *Tensor
	// Write copies host values into t, rounding to t's dtype.
	// len(src) must equal t.Numel().
	Write(t *Tensor, src []float32)
	// WriteRaw copies little-endian bytes already in t's dtype
	// (len = Numel*DType.Size()), e.g. straight from a checkpoint.
	WriteRaw(t *Tensor, src []byte)
	// Read returns t's values as float32, waiting for queued work.
	Read(t *Tensor) ([]float32, error)
	// Free releases t's storage; t and its reshaped views must not be used
	// afterwards.
	Free(t *Tensor)
}

// HostStore is offered by backends that can keep a tensor's bytes in host
// memory the device itself copies to and from (the GL backend: a buffer
// object in system memory), so that weights kept off the device
// (nn.Offload) come back by a device copy instead of a host copy and an
// upload.
type HostStore interface {
	// Park copies t's bytes into new host memory, in queue order; ok is
	// false, with nothing done, where the backend cannot.
	Park(t *Tensor) (p Parked, ok bool)
	// Unpark copies p's bytes into t (p's size), in queue order.
	Unpark(t *Tensor, p Parked)
	// Drop frees p.
	Drop(p Parked)
}

// Suballocator is offered by backends whose tensors can alias part of
// another tensor's storage, so that one buffer holds many tensors at
// offsets planned ahead instead of a buffer each: nn.Pool's arena a
// pass's activations, and --offload's region (nn.Offload.Home) weights
// and activations in turn.
type Suballocator interface {
	// Sub returns a tensor of the dtype and shape over t's storage from
	// element off of t (a multiple of SubAlign; t an F32 tensor from New,
	// not itself a Sub, holding off + SubSpan(dtype, the shape's elements)
	// elements). The sub lives as long as t: Free does nothing to it,
	// and freeing t ends it.
	Sub(t *Tensor, off int, dtype DType, shape ...int) *Tensor
	// SubAlign is the element alignment Sub's offsets need.
	SubAlign() int
	// SubSpan is how many of the root's F32 elements a sub of n elements
	// of dtype covers.
	SubSpan(dtype DType, n int) int
}

// AlignUp rounds n up to a multiple of align (a Sub's offset).
func AlignUp(n, align int) int { return (n + align - 1) / align * align }

// SubPlace is where a sub of n elements of dtype goes at or after element
// off of s's tensor: start, the first offset s allows there, and end, the
// element after the sub.
func SubPlace(s Suballocator, off int, dtype DType, n int) (start, end int) {
	start = AlignUp(off, s.SubAlign())
	return start, start + s.SubSpan(dtype, n)
}

// Fencer is offered by backends whose ops run behind the host (the GL
// backend queues them for the GPU): Fence marks the work queued so far and
// returns a function that waits until that work is done. A loop that
// waits for step i−1's fence after queueing step i keeps the device busy
// yet at most a step ahead of the host, so progress reports are true and
// cancelling takes effect within a step.
type Fencer interface {
	Fence() (wait func() error)
}

// Parked is a tensor's bytes held by a HostStore.
type Parked interface{ Bytes() int }

// Ops is the forward op set. Every op does float32 arithmetic; any tensor
// marked "F16 allowed" may be stored as F16. Unless noted, inputs and the
// destination are F32.
type Ops interface {
	// MatMul: dst[b] = alpha * op(a[b]) x op(b[b]) + bias, batched.
	// a [B, M, K] (or [B, K, M] with TransA); b [Bb, K, N] (or [Bb, N, K]
	// with TransB) where Bb is B or 1 (shared, e.g. a weight); bias [N] or
	// nil; dst [B, M, N]. b and bias: F16 allowed. Rank-2 operands are
	// batch 1. p.Residual, when set, is added last (see MatMulParams).
	MatMul(dst, a, b, bias *Tensor, p MatMulParams)
	// Conv2D: cross-correlation as in torch. x [N, C, H, W]; w [OC, C, KH,
	// KW] (F16 allowed); bias [OC] or nil (F16 allowed); dst [N, OC, OH, OW].
	// p.Residual, when set, is added last (see Conv2DParams).
	Conv2D(dst, x, w, bias *Tensor, p Conv2DParams)
	// GroupNorm normalises x [N, C, ...] over groups of C/Groups channels
	// and all trailing axes, then applies gamma, beta [C] (F16 allowed) and
	// optionally SiLU. dst has x's shape and may be x itself.
	GroupNorm(dst, x, gamma, beta *Tensor, p GroupNormParams)
	// LayerNorm normalises over the last axis and applies gamma, beta
	// [last] (F16 allowed). dst has x's shape.
	LayerNorm(dst, x, gamma, beta *Tensor, eps float32)
	// Softmax over the last axis. dst has x's shape; dst may be x.
	Softmax(dst, x *Tensor)
	// Attention: multi-head softmax(q kᵀ * scale) v, never materialising
	// the score matrix. q [B, Nq, H*D]; k, v [B, Nk, H*D]; dst [B, Nq, H*D].
	Attention(dst, q, k, v *Tensor, p AttentionParams)
	// Unary applies an activation elementwise. dst has x's shape; dst may
	// be x.
	Unary(dst, x *Tensor, op UnaryOp)
	// GEGLU: x [..., 2F] is split into value and gate halves along the last
	// axis; dst [..., F] = value * gelu(gate).
	GEGLU(dst, x *Tensor)
	// Binary: dst = a op b with numpy broadcasting (shapes aligned on the
	// right, extents 1 stretched). dst may be a or b when it has their
	// shape. b: F16 allowed.
	Binary(dst, a, b *Tensor, op BinaryOp)
	// Scale: dst = x * s + c elementwise. dst may be x.
	Scale(dst, x *Tensor, s, c float32)
	// Upsample2x: nearest neighbour, x [N, C, H, W], dst [N, C, 2H, 2W].
	Upsample2x(dst, x *Tensor)
	// Concat along axis 1: a [N, Ca, ...], b [N, Cb, ...] with equal
	// trailing axes; dst [N, Ca+Cb, ...].
	Concat(dst, a, b *Tensor)
	// Transpose swaps the last two axes: x [B, R, C], dst [B, C, R].
	Transpose(dst, x *Tensor)
	// TimestepEmbedding: sinusoidal embedding of t [B] (as diffusers'
	// get_timestep_embedding). dst [B, Dim].
	TimestepEmbedding(dst, t *Tensor, p TimestepParams)
	// SampleStep runs one sampler step (StepParams.Apply) on the latents
	// x [1, C, H, W] in place, given the U-Net's output eps [1 or 2, C, H,
	// W] (two rows with p.Guidance), hist [1, C, H, W] (the DPM rules'
	// previous x̂₀, rewritten) and noise [1, C, H, W] (NeedsNoise); hist
	// and noise may be nil when the rule does not use them. When next
	// [B, C, H, W] is not nil, every row of it gets x/p.NextDiv: the next
	// step's U-Net input. Same bits as Apply on every backend.
	SampleStep(x, eps, hist, noise, next *Tensor, p StepParams)
}

// MatMulParams configure MatMul. The zero value means alpha 1, no
// transposes.
type MatMulParams struct {
	TransA, TransB bool
	Alpha          float32 // 0 means 1
	// Residual, when not nil, is added to the result as the last rounding
	// step: dst = (alpha·op(a)·op(b) + bias) + Residual, the additions a
	// Binary Add after the product makes, in the same order (the
	// conformance suite holds backends to the same bits). It has dst's
	// shape and may be dst itself (an in-place residual connection).
	Residual *Tensor
	// GEGLU, when set, applies GEGLU to the result by pairs of columns: the
	// product's N columns are (value, gate) pairs 2j, 2j+1, each with its
	// bias, and dst [..., N/2] = value · gelu(gate), rounded as MatMul then
	// GEGLU would round. For a Linear whose GEGLU halves were interleaved
	// at load (nn.NewGEGLULinear). Residual must be nil.
	GEGLU bool
}

// Conv2DParams configure Conv2D. Zero strides mean 1.
type Conv2DParams struct {
	StrideH, StrideW int
	PadH, PadW       int
	// Residual, when not nil, is added to the result as the last rounding
	// step: dst = (conv(x, w) + bias) + Residual, as MatMulParams.Residual.
	Residual *Tensor
	// Fast lets a backend trade a few times the usual rounding error for
	// speed, for convolutions whose result is bound for 8-bit pixels (the
	// U-Net and the VAE decoder at inference). The GL backend then takes
	// Winograd F(4x4, 3x3) where it pays; the CPU backend ignores it.
	Fast bool
}

// GroupNormParams configure GroupNorm.
type GroupNormParams struct {
	Groups int
	Eps    float32
	SiLU   bool // apply x*sigmoid(x) after the affine transform
	// Shift, when not nil, [N, C] F32, is added to x per image and
	// channel before normalising, rounded as a Binary Add of it broadcast
	// over the trailing axes would be: a ResNet's h + time embedding
	// normalised without being stored. Inference only (no gradient).
	Shift *Tensor
	// ShiftRow is Shift's first row used: Shift may be [R, C] with R ≥
	// ShiftRow + N, image n taking row ShiftRow + n (a time embedding
	// projected for every step of a generation at once).
	ShiftRow int
}

// AttentionParams configure Attention.
type AttentionParams struct {
	Heads  int
	Scale  float32 // 0 means 1/sqrt(headDim)
	Causal bool    // query i sees keys 0..i only (CLIP's text encoder)
	// Packed: self-attention whose q, k and v come from one product, q
	// [B, N, 3·H·D] holding each token's q, k and v side by side; k and v
	// are nil. Inference only (no gradient).
	Packed bool
}

// TimestepParams configure TimestepEmbedding, with diffusers' names.
type TimestepParams struct {
	Dim                int
	FlipSinToCos       bool    // [cos, sin] instead of [sin, cos]
	DownscaleFreqShift float32 // SD: 0 in the U-Net (freq_shift)
	MaxPeriod          float32 // 0 means 10000
}

// UnaryOp selects an activation.
type UnaryOp uint8

const (
	SiLU      UnaryOp = iota // x * sigmoid(x)
	GELU                     // x * Φ(x), with erf (not the tanh approximation)
	QuickGELU                // x * sigmoid(1.702 x), CLIP ViT-L's activation
	ReLU                     // max(x, 0), TAESD's activation
	Tanh                     // tanh(x), TAESD's latent clamp tanh(z/3)*3
	Exp                      // exp(x), the VAE posterior's σ = exp(logvar/2) in training
)

func (op UnaryOp) String() string {
	return [...]string{"silu", "gelu", "quick_gelu", "relu", "tanh", "exp"}[op]
}

// BinaryOp selects an elementwise binary op.
type BinaryOp uint8

const (
	Add BinaryOp = iota
	Mul
	Sub
)

func (op BinaryOp) String() string { return [...]string{"add", "mul", "sub"}[op] }
