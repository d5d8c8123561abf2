// One sampler step, one latent a thread: engine.StepParams.Apply with the
// same bits. Defines: RULE (0 Euler, 1 DDIM, 2 DPM-Solver++ first order,
// 3 second order), VPRED (1: the model predicts v), NOISE (1: Euler adds
// noise·u_up, the ancestral sampler), DIV_SKEW (tests: div_rn starts
// that many ulp off, as a driver's quotient may).
//
// Every intermediate is precise, so no product and sum fuse into an fma
// the host would round twice, and every quotient goes through div_rn,
// since GLSL lets a driver divide through a reciprocal within 2.5 ulp
// (and fma need not be fused, so a Newton correction in float cannot fix
// that).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Xbuf { float x[]; };              // [1, C, H, W]
layout(std430, binding = 1) readonly buffer Ebuf { float eps[]; };   // [1 or 2, C, H, W]
layout(std430, binding = 2) buffer Hbuf { float hist[]; };           // [1, C, H, W], the previous x̂₀
layout(std430, binding = 3) readonly buffer Nbuf { float noise[]; }; // [1, C, H, W]
layout(std430, binding = 4) buffer Obuf { float next[]; };           // [u_rows, C, H, W]
uniform uint u_n, u_rows;
uniform float u_guidance, u_next_div;
uniform float u_sigma, u_dt, u_up, u_vout, u_vdiv;      // Euler
uniform float u_sqrt_a, u_sqrt_b, u_sqrt_aprev, u_dir; // DDIM
uniform float u_alpha_s, u_sigma_s, u_cx, u_cd, u_inv, u_half; // DPM-Solver++

// a/b rounded to nearest, as the host divides. The driver's quotient may
// be a few ulp off; its remainder a − q·b is exact in double (q·b has at
// most 48 significant bits and lies within a few ulp of a), and q steps
// toward the true quotient while that shrinks the remainder, up to 8
// times: GLSL allows 2.5 ulp, and the tests' DIV_SKEW of 3 comes on top
// of the driver's own error (NVIDIA's quotient was 1 ulp off where the
// skew pushed the same way, past an earlier bound of 4). (A float
// quotient is never halfway between two floats, so there are no ties.)
float div_rn(float a, float b) {
	precise float q = a / b;
#if DIV_SKEW
	q = uintBitsToFloat(floatBitsToUint(q) + uint(DIV_SKEW));
#endif
	precise double r = double(a) - double(q) * double(b);
	for (int k = 0; k < 8; k++) {
		// a/b − q has the sign of r·b; step q's magnitude up or down.
		bool up = (r > 0.0) == (b > 0.0);
		uint bits = floatBitsToUint(q);
		precise float qn = uintBitsToFloat(up == (q > 0.0) ? bits + 1u : bits - 1u);
		precise double rn = double(a) - double(qn) * double(b);
		if (!(abs(rn) < abs(r))) {
			break;
		}
		q = qn;
		r = rn;
	}
	return q;
}

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	precise float xi = x[i];
	precise float m = eps[i];
	if (u_guidance > 0.0) {
		precise float c = eps[u_n + i];
		precise float diff = c - m;
		precise float scaled = u_guidance * diff;
		m = m + scaled;
	}
	precise float v;
#if RULE == 0
#if VPRED
	precise float a = m * u_vout;
	precise float x0 = a + div_rn(xi, u_vdiv);
#else
	precise float sm = u_sigma * m;
	precise float x0 = xi - sm;
#endif
	precise float d = div_rn(xi - x0, u_sigma);
	precise float dx = d * u_dt;
	v = xi + dx;
#if NOISE
	precise float z = noise[i] * u_up;
	v = v + z;
#endif
#elif RULE == 1
#if VPRED
	precise float ax = u_sqrt_a * xi, bm = u_sqrt_b * m;
	precise float x0 = ax - bm;
	precise float am = u_sqrt_a * m, bx = u_sqrt_b * xi;
	precise float e = am + bx;
#else
	precise float bm = u_sqrt_b * m;
	precise float x0 = div_rn(xi - bm, u_sqrt_a);
	precise float e = m;
#endif
	precise float px0 = u_sqrt_aprev * x0, de = u_dir * e;
	v = px0 + de;
#else
#if VPRED
	precise float ax = u_alpha_s * xi, sm = u_sigma_s * m;
	precise float x0 = ax - sm;
#else
	precise float sm = u_sigma_s * m;
	precise float x0 = div_rn(xi - sm, u_alpha_s);
#endif
	precise float cxx = u_cx * xi, cdx = u_cd * x0;
	v = cxx - cdx;
#if RULE == 3
	precise float d1 = u_inv * (x0 - hist[i]);
	precise float hd = u_half * d1;
	v = v - hd;
#endif
	hist[i] = x0;
#endif
	x[i] = v;
	for (uint j = 0u; j < u_rows; j++) {
		next[j * u_n + i] = div_rn(v, u_next_div);
	}
}
