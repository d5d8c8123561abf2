// Winograd F(2x2, 3x3)'s output transform (see winograd_gemm.comp): for
// each 2x2 output tile of the chunk (tiles t0 .. t0+TC-1, output
// channels oc0 .. oc0+OCC-1), Y = Aᵀ m A from its 16 products m[ξ]
// (M [16, OCC, TP], or SPLITK partial sums of it,
// added here in order), then the bias and the residual, written where
// the tile lies inside the output (an odd extent leaves a last half
// tile). Aᵀ = [1 1 1 0; 0 1 -1 -1].
// Defines: SPLITK, HAS_BIAS, BIAS_F16, HAS_RES and RES_BINDING (as
// conv2d.comp).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Mbuf { float mi[]; };
#if HAS_BIAS
#if BIAS_F16
layout(std430, binding = 2) readonly buffer Biasbuf { uint bias_h[]; };
float bias_at(uint i) { return half_at(bias_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Biasbuf { float bias_f[]; };
float bias_at(uint i) { return bias_f[i]; }
#endif
#endif
#if HAS_RES
layout(std430, binding = RES_BINDING) readonly buffer Resbuf { float res[]; };
#endif

uniform uint u_OC;          // output channels
uniform uint u_oc0, u_OCC;  // the chunk's first output channel and its count
uniform uint u_TW, u_TT;    // tiles per row, tiles per image
uniform uint u_H, u_W;      // output extent
uniform uint u_t0, u_TC, u_TP;
uniform uint u_n;           // TC x OCC: the invocations that work

void main() {
	uint idx = group_id() * 256u + gl_LocalInvocationID.x;
	if (idx >= u_n) return;
	uint tl = idx % u_TC, o = idx / u_TC, oc = u_oc0 + o;
	uint t = u_t0 + tl, img = t / u_TT, tt = t - img * u_TT;
	uint ty = tt / u_TW, tx = tt - ty * u_TW;

	uint total = 16u * u_OCC * u_TP;
	vec4 m[4]; // m[i][j] = M[4i + j]
	for (uint i = 0u; i < 4u; i++)
		for (uint j = 0u; j < 4u; j++) {
			uint at = ((4u * i + j) * u_OCC + o) * u_TP + tl;
			float v = 0.0;
			for (uint s = 0u; s < uint(SPLITK); s++) v += mi[s * total + at];
			m[i][j] = v;
		}
	vec4 p0 = m[0] + m[1] + m[2]; // Aᵀ's rows down the columns
	vec4 p1 = m[1] - m[2] - m[3];
	vec2 r0 = vec2(p0.x + p0.y + p0.z, p0.y - p0.z - p0.w);
	vec2 r1 = vec2(p1.x + p1.y + p1.z, p1.y - p1.z - p1.w);
	vec2 out2[2] = vec2[](r0, r1);
	for (uint dy = 0u; dy < 2u; dy++) {
		uint oy = 2u * ty + dy;
		if (oy >= u_H) break;
		for (uint dx = 0u; dx < 2u; dx++) {
			uint ox = 2u * tx + dx;
			if (ox >= u_W) break;
			uint o = ((img * u_OC + oc) * u_H + oy) * u_W + ox;
			float v = out2[dy][dx];
#if HAS_BIAS
			v += bias_at(oc);
#endif
#if HAS_RES
			v += res[o];
#endif
			y[o] = v; // Y [N, OC, H, W]
		}
	}
}
