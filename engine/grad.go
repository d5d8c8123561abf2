package engine

// GradOps is the backward op set that training needs beside Ops: for each
// forward op, the gradient of a loss with respect to its inputs given the
// gradient dy with respect to its output, plus the reductions and the
// optimiser step. MatMul, Scale and Transpose need no op of their own:
// their gradients are MatMuls, Scales and Transposes.
//
// Like Ops, every call is asynchronous and writes (overwrites, never
// accumulates) caller-allocated F32 destinations; gradient tensors are F32.
// Forward inputs passed back in (x, w, gamma, …) keep the dtypes Ops allows
// for them. A destination must not alias an input.
type GradOps interface {
	// SumTo reduces x into dst by summing over the axes that numpy
	// broadcasting would stretch from dst's shape to x's: dst's shape,
	// aligned on the right and padded with leading 1s, must equal x's on
	// every axis or be 1 there. It is the gradient of broadcasting (a
	// bias [C] from [N, HW, C], [1, C, 1, 1] from [N, C, H, W], a scalar
	// [1] from anything).
	SumTo(dst, x *Tensor)

	// Conv2DBackwardData: dx [N, C, H, W] = the gradient of Conv2D with
	// respect to x, given dy [N, OC, OH, OW] and w [OC, C, KH, KW] (F16
	// allowed). H and W are dx's, so strided convolutions whose input
	// size is ambiguous are resolved by the caller.
	Conv2DBackwardData(dx, dy, w *Tensor, p Conv2DParams)
	// Conv2DBackwardWeight: dw [OC, C, KH, KW] = Σ over batch and output
	// pixels of dy ⊗ input patches of x [N, C, H, W]; dy [N, OC, OH, OW].
	// Bias gradients are SumTo(dbias.Reshape(1, OC, 1, 1), dy).
	Conv2DBackwardWeight(dw, x, dy *Tensor, p Conv2DParams)

	// GroupNormBackward: the gradients of GroupNorm(x, gamma, beta, p)
	// with respect to x, gamma and beta given dy, with the group
	// statistics recomputed from x. With p.SiLU the activation is part of
	// the op (beta is needed to recompute its input). dx has x's shape;
	// dgamma, dbeta [C]. Any of dx, dgamma, dbeta may be nil: not wanted.
	GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta *Tensor, p GroupNormParams)
	// LayerNormBackward: as GroupNormBackward for LayerNorm over the last
	// axis. dgamma, dbeta [last]; any of dx, dgamma, dbeta may be nil.
	LayerNormBackward(dx, dgamma, dbeta, dy, x, gamma *Tensor, eps float32)
	// SoftmaxBackward: dx = y ⊙ (dy − Σ_last(dy ⊙ y)) from the forward
	// output y (softmax over the last axis).
	SoftmaxBackward(dx, dy, y *Tensor)
	// AttentionBackward: the gradients of Attention(q, k, v, p) with
	// respect to q, k and v given dy [B, Nq, H*D], recomputing the scores.
	// dq has q's shape, dk and dv k's and v's.
	AttentionBackward(dq, dk, dv, dy, q, k, v *Tensor, p AttentionParams)
	// UnaryBackward: dx = dy ⊙ f'(x) for the activation op, from the
	// forward input x.
	UnaryBackward(dx, dy, x *Tensor, op UnaryOp)
	// GEGLUBackward: dx [..., 2F] from dy [..., F] and the forward input
	// x [..., 2F] ([value | gate]).
	GEGLUBackward(dx, dy, x *Tensor)
	// Upsample2xBackward: dx [N, C, H, W] = the sum of each 2x2 block of
	// dy [N, C, 2H, 2W].
	Upsample2xBackward(dx, dy *Tensor)
	// Split is Concat's inverse (and gradient): x [N, Ca+Cb, ...] into
	// a [N, Ca, ...] and b [N, Cb, ...]; either may be nil.
	Split(a, b, x *Tensor)

	// AdamW updates an F32 parameter in place with decoupled weight decay
	// (Loshchilov & Hutter, as torch.optim.AdamW):
	//
	//	g = grad * p.GradScale
	//	m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
	//	param -= LR * (WeightDecay * param + (m/(1-β1^t)) / (sqrt(v/(1-β2^t)) + Eps))
	//
	// m and v are F32 state of param's shape, zero at step 1.
	AdamW(param, grad, m, v *Tensor, p AdamWParams)
}

// AdamWParams configure one AdamW step.
type AdamWParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Step                               int     // t, counting from 1, for the bias corrections
	GradScale                          float32 // gradient multiplier (clipping); 0 means 1
}

// TrainBackend is a backend that can also run the backward ops.
type TrainBackend interface {
	Backend
	GradOps
}
