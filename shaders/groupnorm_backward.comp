// GroupNormBackward. x [N, C, S] (S the spatial size) in G groups of
// cpg = C/G channels; L = cpg*S elements per group. The forward was
//   x̂ = (x - mean) * rstd, a = gamma_c x̂ + beta_c, y = a (or silu(a)),
// so with ga = dy (times silu'(a) with SILU):
//   dbeta_c = Σ_{n,s} ga, dgamma_c = Σ_{n,s} ga x̂,
//   dx = rstd * (gamma_c ga - Σ_g(gamma ga)/L - x̂ Σ_g(gamma ga x̂)/L).
// Groups reach 10^5-10^6 elements, so every channel is cut into u_P
// pieces of u_piece spatial elements, one work group each, and the
// pieces' sums are combined by later passes in a fixed order.
// Defines: PASS (1-6, below), SILU, G_F16, B_F16 (gamma, beta as F16),
// HAS_DG, HAS_DB (pass 5).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
uniform uint u_N, u_C, u_G, u_S, u_P, u_piece;
uniform float u_eps;

#if PASS == 3 || PASS == 4 || PASS == 6
#if G_F16
layout(std430, binding = 5) readonly buffer Gbuf { uint g_h[]; };
float gamma_at(uint i) { return half_at(g_h[i >> 1], i); }
#else
layout(std430, binding = 5) readonly buffer Gbuf { float g_f[]; };
float gamma_at(uint i) { return g_f[i]; }
#endif
#endif
#if (PASS == 3 || PASS == 6) && SILU
#if B_F16
layout(std430, binding = 6) readonly buffer Bbuf { uint b_h[]; };
float beta_at(uint i) { return half_at(b_h[i >> 1], i); }
#else
layout(std430, binding = 6) readonly buffer Bbuf { float b_f[]; };
float beta_at(uint i) { return b_f[i]; }
#endif
#endif

#if PASS == 3 || PASS == 6
// ga is dy times the activation's derivative at a = gamma x̂ + beta.
float grad_a(float d, float xh, uint c) {
#if SILU
	float a = gamma_at(c) * xh + beta_at(c);
	float s = sigmoid(a);
	return d * s * (1.0 + a * (1.0 - s));
#else
	return d;
#endif
}
#endif

#if PASS == 1
// One work group per piece (n, c, p): the piece's mean and its sum of
// squared deviations, part [N*C*P, 2].
layout(std430, binding = 0) writeonly buffer Obuf { float part[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint nc = gid / u_P, p = gid % u_P;
	uint base = nc * u_S + p * u_piece, len = min(u_piece, u_S - p * u_piece);
	float s = 0.0;
	for (uint i = lid; i < len; i += 256u) s += x[base + i];
	float mean = reduce_sum(s, 0u) / float(len);
	float v = 0.0;
	for (uint i = lid; i < len; i += 256u) {
		float d = x[base + i] - mean;
		v += d * d;
	}
	v = reduce_sum(v, 1u);
	if (lid == 0u) {
		part[2u * gid] = mean;
		part[2u * gid + 1u] = v;
	}
}

#elif PASS == 2
// One thread per group (n, g): the pieces' statistics combined in order
// (Chan et al.'s pairwise update) into stats [N*G, 2] = (mean, rstd).
layout(std430, binding = 0) writeonly buffer Obuf { float stats[]; };
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; };

void main() {
	uint ng = group_id() * 256u + gl_LocalInvocationID.x;
	if (ng >= u_N * u_G) return;
	uint cpg = u_C / u_G;
	uint n = ng / u_G, g = ng % u_G;
	float cnt = 0.0, mean = 0.0, m2 = 0.0;
	for (uint c = g * cpg; c < (g + 1u) * cpg; c++) {
		for (uint p = 0u; p < u_P; p++) {
			uint k = (n * u_C + c) * u_P + p;
			float nb = float(min(u_piece, u_S - p * u_piece));
			float tot = cnt + nb;
			float delta = part[2u * k] - mean;
			mean += delta * (nb / tot);
			m2 += part[2u * k + 1u] + delta * delta * (cnt * nb / tot);
			cnt = tot;
		}
	}
	stats[2u * ng] = mean;
	stats[2u * ng + 1u] = inversesqrt(m2 / cnt + u_eps);
}

#elif PASS == 3
// One work group per piece (n, c, p): part [N*C*P, 2] = (Σ ga x̂, Σ ga).
layout(std430, binding = 0) writeonly buffer Obuf { float part[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 2) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 3) readonly buffer Sbuf { float stats[]; };

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint nc = gid / u_P, p = gid % u_P;
	uint n = nc / u_C, c = nc % u_C;
	uint ng = n * u_G + c / (u_C / u_G);
	float mean = stats[2u * ng], rstd = stats[2u * ng + 1u];
	uint base = nc * u_S + p * u_piece, len = min(u_piece, u_S - p * u_piece);
	float sa = 0.0, sb = 0.0;
	for (uint i = lid; i < len; i += 256u) {
		float xh = (x[base + i] - mean) * rstd;
		float ga = grad_a(dy[base + i], xh, c);
		sa += ga * xh;
		sb += ga;
	}
	sa = reduce_sum(sa, 0u);
	sb = reduce_sum(sb, 1u);
	if (lid == 0u) {
		part[2u * gid] = sa;
		part[2u * gid + 1u] = sb;
	}
}

#elif PASS == 4
// One thread per group (n, g): gsum [N*G, 2] = (Σ gamma ga x̂, Σ gamma ga)
// over the group, from pass 3's pieces.
layout(std430, binding = 0) writeonly buffer Obuf { float gsum[]; };
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; };

void main() {
	uint ng = group_id() * 256u + gl_LocalInvocationID.x;
	if (ng >= u_N * u_G) return;
	uint cpg = u_C / u_G;
	uint n = ng / u_G, g = ng % u_G;
	float sa = 0.0, sb = 0.0;
	for (uint c = g * cpg; c < (g + 1u) * cpg; c++) {
		float ca = 0.0, cb = 0.0;
		for (uint p = 0u; p < u_P; p++) {
			uint k = (n * u_C + c) * u_P + p;
			ca += part[2u * k];
			cb += part[2u * k + 1u];
		}
		float gm = gamma_at(c);
		sa += gm * ca;
		sb += gm * cb;
	}
	gsum[2u * ng] = sa;
	gsum[2u * ng + 1u] = sb;
}

#elif PASS == 5
// One thread per channel: dgamma_c = Σ_{n,p} (Σ ga x̂), dbeta_c = Σ_{n,p} (Σ ga).
#if HAS_DG
layout(std430, binding = 0) writeonly buffer DGbuf { float dgamma[]; };
#endif
#if HAS_DB
layout(std430, binding = 1) writeonly buffer DBbuf { float dbeta[]; };
#endif
layout(std430, binding = 2) readonly buffer Pbuf { float part[]; };

void main() {
	uint c = group_id() * 256u + gl_LocalInvocationID.x;
	if (c >= u_C) return;
	float sa = 0.0, sb = 0.0;
	for (uint n = 0u; n < u_N; n++) {
		for (uint p = 0u; p < u_P; p++) {
			uint k = (n * u_C + c) * u_P + p;
			sa += part[2u * k];
			sb += part[2u * k + 1u];
		}
	}
#if HAS_DG
	dgamma[c] = sa;
#endif
#if HAS_DB
	dbeta[c] = sb;
#endif
}

#else // PASS 6
// One thread per element of dx.
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 2) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 3) readonly buffer Sbuf { float stats[]; };
layout(std430, binding = 4) readonly buffer GSbuf { float gsum[]; };

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_N * u_C * u_S) return;
	uint nc = i / u_S;
	uint n = nc / u_C, c = nc % u_C;
	uint ng = n * u_G + c / (u_C / u_G);
	float mean = stats[2u * ng], rstd = stats[2u * ng + 1u];
	float invL = 1.0 / float((u_C / u_G) * u_S);
	float xh = (x[i] - mean) * rstd;
	float ga = grad_a(dy[i], xh, c);
	dx[i] = rstd * (gamma_at(c) * ga - gsum[2u * ng + 1u] * invL - xh * gsum[2u * ng] * invL);
}
#endif
