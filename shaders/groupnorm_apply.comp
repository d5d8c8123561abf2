// GroupNorm for large groups, pass 2 of 2: work group row * u_wpr + w
// first combines the u_P chunk statistics of its row that
// groupnorm_stats.comp wrote (in chunk order, Chan et al.'s update of
// count, mean and M2), then normalises 4096 of the row's elements:
// y = (x - mean) * rstd * gamma[c] + beta[c], SiLU after when SILU,
// exactly as groupnorm.comp does.
// Defines: AFFINE_F16, SILU, SHIFT (x + shift[n, c], GroupNormParams.Shift).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#if AFFINE_F16
layout(std430, binding = 2) readonly buffer Gbuf { uint g_h[]; };
layout(std430, binding = 3) readonly buffer Bbuf { uint b_h[]; };
float gamma_at(uint i) { return half_at(g_h[i >> 1], i); }
float beta_at(uint i) { return half_at(b_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Gbuf { float g_f[]; };
layout(std430, binding = 3) readonly buffer Bbuf { float b_f[]; };
float gamma_at(uint i) { return g_f[i]; }
float beta_at(uint i) { return b_f[i]; }
#endif
layout(std430, binding = 4) readonly buffer Pbuf { vec2 part[]; }; // [rows, P] (mean, M2)
#if SHIFT
layout(std430, binding = 5) readonly buffer Shiftbuf { float shift[]; }; // [R, C]
uniform uint u_shift0; // the first row's offset: ShiftRow * C
#endif

uniform uint u_G, u_C, u_S;     // groups, channels, spatial size
uniform uint u_len, u_chunk, u_P; // elements per row, per chunk; chunks per row (<= 256)
uniform uint u_wpr;             // work groups per row
uniform float u_eps;

#define PER_GROUP 4096u // elements a work group normalises

shared vec2 s_part[256];
shared vec2 s_stats; // mean, rstd

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint row = gid / u_wpr, w = gid % u_wpr;
	if (lid < u_P) s_part[lid] = part[row * u_P + lid];
	memoryBarrierShared();
	barrier();
	if (lid == 0u) {
		float n = 0.0, mean = 0.0, m2 = 0.0;
		for (uint p = 0u; p < u_P; p++) {
			float nb = float(min(u_len, (p + 1u) * u_chunk) - p * u_chunk);
			vec2 b = s_part[p];
			float tot = n + nb;
			float d = b.x - mean;
			mean += d * (nb / tot);
			m2 += b.y + d * d * (n * nb / tot);
			n = tot;
		}
		s_stats = vec2(mean, inversesqrt(m2 / float(u_len) + u_eps));
	}
	memoryBarrierShared();
	barrier();
	float mean = s_stats.x, rstd = s_stats.y;

	uint cpg = u_C / u_G;
	uint g = row % u_G;
	uint base = row * u_len;
	uint end = min(u_len, (w + 1u) * PER_GROUP);
	for (uint i = w * PER_GROUP + lid; i < end; i += 256u) {
		uint c = g * cpg + i / u_S;
		float xi = x[base + i];
#if SHIFT
		xi += shift[u_shift0 + (row / u_G) * u_C + c];
#endif
		float o = (xi - mean) * rstd * gamma_at(c) + beta_at(c);
#if SILU
		o = silu(o);
#endif
		y[base + i] = o;
	}
}
