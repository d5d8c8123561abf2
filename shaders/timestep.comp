// Sinusoidal timestep embedding as diffusers computes it: arg = t * freq
// in float32 (freq precomputed on the host as torch does), then sin and
// cos of that float32 value. The argument is reduced to [-π, π] in double
// precision first, since GPU sin/cos lose accuracy on arguments near 1000.
// Defines: FLIP (cos first).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Tbuf { float t[]; };
layout(std430, binding = 2) readonly buffer Fbuf { float freq[]; };
uniform uint u_n, u_dim, u_half;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint row = i / u_dim, j = i % u_dim;
	if (j >= 2u * u_half) { y[i] = 0.0; return; } // odd dim: zero pad
	bool second = j >= u_half;
	float arg = t[row] * freq[j % u_half];
	const double TWO_PI = 6.283185307179586476925286766559LF;
	double a = double(arg);
	float r = float(a - TWO_PI * floor(a / TWO_PI + 0.5LF));
#if FLIP
	y[i] = second ? sin(r) : cos(r);
#else
	y[i] = second ? cos(r) : sin(r);
#endif
}
