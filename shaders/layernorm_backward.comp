// LayerNormBackward over the last axis (u_cols), with x̂ = (x - mean) *
// rstd and g = dy * gamma:
//   dx = rstd * (g - mean(g) - x̂ * mean(g x̂)),
//   dgamma = Σ_rows dy x̂, dbeta = Σ_rows dy.
// Defines: PASS, G_F16 (gamma stored as F16), HAS_DX, HAS_A, HAS_B.
// PASS 1: one work group per row: the row's mean and rstd (two passes, as
// the forward) into stats [rows, 2], and dx when HAS_DX.
// PASS 2: one thread per column, u_chunk rows per slice, slice s of u_S:
// Σ dy x̂ into a[s, col] (HAS_A) and Σ dy into b[s, col] (HAS_B).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
uniform uint u_cols, u_rows, u_S, u_chunk;
uniform float u_eps;

#if PASS == 1
layout(std430, binding = 0) writeonly buffer Sbuf { float stats[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 2) readonly buffer DYbuf { float dy[]; };
#if G_F16
layout(std430, binding = 3) readonly buffer Gbuf { uint g_h[]; };
float gamma_at(uint i) { return half_at(g_h[i >> 1], i); }
#else
layout(std430, binding = 3) readonly buffer Gbuf { float g_f[]; };
float gamma_at(uint i) { return g_f[i]; }
#endif
#if HAS_DX
layout(std430, binding = 4) writeonly buffer DXbuf { float dx[]; };
#endif

void main() {
	uint row = group_id();
	if (row >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint base = row * u_cols;
	float s = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) s += x[base + i];
	float mean = reduce_sum(s, 0u) / float(u_cols);
	float v = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) {
		float d = x[base + i] - mean;
		v += d * d;
	}
	float rstd = inversesqrt(reduce_sum(v, 1u) / float(u_cols) + u_eps);
	if (lid == 0u) {
		stats[2u * row] = mean;
		stats[2u * row + 1u] = rstd;
	}
#if HAS_DX
	float sg = 0.0, sgx = 0.0;
	for (uint i = lid; i < u_cols; i += 256u) {
		float g = dy[base + i] * gamma_at(i);
		sg += g;
		sgx += g * (x[base + i] - mean) * rstd;
	}
	// Consecutive reductions take different slots (see reduce.glsl).
	float mg = reduce_sum(sg, 2u) / float(u_cols);
	float mgx = reduce_sum(sgx, 0u) / float(u_cols);
	for (uint i = lid; i < u_cols; i += 256u) {
		float xh = (x[base + i] - mean) * rstd;
		dx[base + i] = rstd * (dy[base + i] * gamma_at(i) - mg - xh * mgx);
	}
#endif
}

#else // PASS 2
#if HAS_A
layout(std430, binding = 0) writeonly buffer Abuf { float a[]; };
#endif
#if HAS_B
layout(std430, binding = 1) writeonly buffer Bbuf { float b[]; };
#endif
layout(std430, binding = 2) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 3) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 4) readonly buffer Sbuf { float stats[]; };

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint blocks = (u_cols + 255u) / 256u;
	uint col = (gid % blocks) * 256u + gl_LocalInvocationID.x, s = gid / blocks;
	if (col >= u_cols) return;
	uint r0 = s * u_chunk, r1 = min(r0 + u_chunk, u_rows);
	float sa = 0.0, sb = 0.0;
	for (uint r = r0; r < r1; r++) {
		float d = dy[r * u_cols + col];
		sa += d * (x[r * u_cols + col] - stats[2u * r]) * stats[2u * r + 1u];
		sb += d;
	}
#if HAS_A
	a[s * u_cols + col] = sa;
#endif
#if HAS_B
	b[s * u_cols + col] = sb;
#endif
}
#endif
