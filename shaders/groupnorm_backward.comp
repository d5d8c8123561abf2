// GroupNormBackward. x [N, C, S] (S the spatial size) in G groups of
// cpg = C/G channels; L = cpg*S elements per group. The forward was
//   x̂ = (x - mean) * rstd, a = gamma_c x̂ + beta_c, y = a (or silu(a)),
// so with ga = dy (times silu'(a) with SILU):
//   dbeta_c = Σ_{n,s} ga, dgamma_c = Σ_{n,s} ga x̂,
//   dx = rstd * (gamma_c ga - Σ_g(gamma ga)/L - x̂ Σ_g(gamma ga x̂)/L).
// Groups reach 10^5-10^6 elements, so every channel is cut into u_P
// pieces of u_piece spatial elements, one work group each, and the
// pieces' sums are combined by later passes in a fixed order.
// Four dispatches (each a barrier and ~10 us of driver time on the
// H200, so passes are merged where they can be): PASS 1, 3, 4 and 6
// below. Defines: PASS, SILU, G_F16, B_F16 (gamma, beta as F16), HAS_DX,
// HAS_DG, HAS_DB (pass 4).
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x = 256) in;
uniform uint u_N, u_C, u_G, u_S, u_P, u_piece;
uniform float u_eps;

#if PASS == 3 || (PASS == 4 && HAS_DX) || PASS == 6
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

#elif PASS == 3
// One work group per piece (n, c, p). First the group's statistics: the
// threads merge the pieces' (count, mean, M2) of the group (Chan et
// al.'s pairwise update), a strided share each, then in a tree, always
// in the same order; the first piece of the group's first channel
// stores them in stats [N*G, 2] = (mean, rstd) for pass 6. Then
// part [N*C*P, 2] = (Σ ga x̂, Σ ga) over the piece.
layout(std430, binding = 0) writeonly buffer Obuf { float part[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(std430, binding = 2) readonly buffer DYbuf { float dy[]; };
layout(std430, binding = 3) writeonly buffer Sbuf { float stats[]; };
layout(std430, binding = 4) readonly buffer P1buf { float part1[]; };

shared float st_n[256], st_m[256], st_q[256];

// merge folds (nb, mb, qb) into (na, ma, qa): counts, means, sums of
// squared deviations.
void merge(inout float na, inout float ma, inout float qa, float nb, float mb, float qb) {
	float n = na + nb;
	if (n == 0.0) return;
	float d = mb - ma;
	ma += d * (nb / n);
	qa += qb + d * d * (na * nb / n);
	na = n;
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return;
	uint lid = gl_LocalInvocationID.x;
	uint nc = gid / u_P, p = gid % u_P;
	uint n = nc / u_C, c = nc % u_C;
	uint cpg = u_C / u_G;
	uint ng = n * u_G + c / cpg;
	uint kbase = (n * u_C + (c / cpg) * cpg) * u_P, kn = cpg * u_P;
	float na = 0.0, ma = 0.0, qa = 0.0;
	for (uint j = lid; j < kn; j += 256u) {
		uint k = kbase + j, pj = j % u_P;
		merge(na, ma, qa, float(min(u_piece, u_S - pj * u_piece)), part1[2u * k], part1[2u * k + 1u]);
	}
	st_n[lid] = na;
	st_m[lid] = ma;
	st_q[lid] = qa;
	memoryBarrierShared();
	barrier();
	for (uint w = 128u; w > 0u; w >>= 1) {
		if (lid < w) {
			float a = st_n[lid], m = st_m[lid], q = st_q[lid];
			merge(a, m, q, st_n[lid + w], st_m[lid + w], st_q[lid + w]);
			st_n[lid] = a;
			st_m[lid] = m;
			st_q[lid] = q;
		}
		memoryBarrierShared();
		barrier();
	}
	float mean = st_m[0], rstd = inversesqrt(st_q[0] / st_n[0] + u_eps);
	if (lid == 0u && p == 0u && c % cpg == 0u) {
		stats[2u * ng] = mean;
		stats[2u * ng + 1u] = rstd;
	}
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
// One thread per group (n, g) (with HAS_DX), then one per channel:
// gsum [N*G, 2] = (Σ gamma ga x̂, Σ gamma ga) over the group, and
// dgamma_c = Σ_{n,p} (Σ ga x̂), dbeta_c = Σ_{n,p} (Σ ga), from pass 3's
// pieces.
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; };
#if HAS_DX
layout(std430, binding = 0) writeonly buffer Obuf { float gsum[]; };
#endif
#if HAS_DG
layout(std430, binding = 2) writeonly buffer DGbuf { float dgamma[]; };
#endif
#if HAS_DB
layout(std430, binding = 3) writeonly buffer DBbuf { float dbeta[]; };
#endif

void main() {
	uint t = group_id() * 256u + gl_LocalInvocationID.x;
#if HAS_DX
	if (t < u_N * u_G) {
		uint cpg = u_C / u_G;
		uint n = t / u_G, g = t % u_G;
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
		gsum[2u * t] = sa;
		gsum[2u * t + 1u] = sb;
		return;
	}
	t -= u_N * u_G;
#endif
#if HAS_DG || HAS_DB
	uint c = t;
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
