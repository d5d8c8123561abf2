// Elementwise a op b with broadcasting: the destination's index is split
// over up to 6 axes and each operand is addressed with its own strides (0
// along broadcast axes). In place allowed. Defines: OP (0 add, 1 mul,
// 2 sub), B_F16.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Abuf { float a[]; };
#if B_F16
layout(std430, binding = 2) readonly buffer Bbuf { uint b_h[]; };
float b_at(uint i) { return half_at(b_h[i >> 1], i); }
#else
layout(std430, binding = 2) readonly buffer Bbuf { float b_f[]; };
float b_at(uint i) { return b_f[i]; }
#endif

uniform uint u_n;
uniform int u_shape[6], u_sa[6], u_sb[6];

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint rest = i, ia = 0u, ib = 0u;
	for (int d = 5; d >= 0; d--) {
		uint ext = uint(u_shape[d]);
		uint c = rest % ext;
		rest /= ext;
		ia += c * uint(u_sa[d]);
		ib += c * uint(u_sb[d]);
	}
	float va = a[ia], vb = b_at(ib);
#if OP == 0
	y[i] = va + vb;
#elif OP == 1
	y[i] = va * vb;
#else
	y[i] = va - vb;
#endif
}
