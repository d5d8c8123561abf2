// Attention backward: dst = Σ_s part[s] over the dK/dV pass's u_splits
// query splits, added in order (deterministic; no float atomics).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Dbuf { float dst[]; };
layout(std430, binding = 1) readonly buffer Pbuf { float part[]; }; // [splits, n]

uniform uint u_n, u_splits;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	float s = 0.0;
	for (uint j = 0u; j < u_splits; j++) s += part[j * u_n + i];
	dst[i] = s;
}
