// LayerNorm over the last axis: 8 rows a work group of 256 threads, 32
// threads a row. Each thread sums its share of the row (elements lane,
// lane+32, ... or, with V4, vec4s), the row's 32 partial sums are added
// (mean), then the squared deviations likewise (variance: two passes),
// and the row is normalised: y = (x - mean) * rstd * gamma + beta.
// A row of SD's transformers (320 to 1280 values) keeps every thread busy
// where a work group of 256 threads a row left most idle between the
// barriers of its reductions.
// Defines: AFFINE_F16, V4 (the row length a multiple of 4: vec4 loads and
// stores), SUB (the row's 32 threads reduce by subgroupClusteredAdd: the
// subgroup size is a multiple of 32; else through shared memory).
#if SUB
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_clustered : require
#endif
#include "common.glsl"

#define RT 32u // threads a row
#define RPG 8u // rows a work group

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Ybuf { float y[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#if V4
layout(std430, binding = 0) writeonly buffer Ybuf4 { vec4 y4[]; };
layout(std430, binding = 1) readonly buffer Xbuf4 { vec4 x4[]; };
#endif
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

uniform uint u_rows, u_cols;
uniform float u_eps;

#if !SUB
shared float red[2][256];
#endif

// The sum of v over the row's 32 threads (every thread of the group
// calls it: the shared-memory version has barriers). slot: a reduction's
// own scratch, so a later one never overwrites a total a slow thread has
// yet to read.
float rowSum(float v, uint slot) {
#if SUB
	return subgroupClusteredAdd(v, RT);
#else
	uint lid = gl_LocalInvocationID.x, lane = lid % RT;
	red[slot][lid] = v;
	memoryBarrierShared();
	barrier();
	for (uint w = RT / 2u; w > 0u; w >>= 1) {
		if (lane < w) red[slot][lid] += red[slot][lid + w];
		memoryBarrierShared();
		barrier();
	}
	return red[slot][lid - lane];
#endif
}

void main() {
	uint gid = group_id();
	if (gid >= u_groups) return; // the whole group: barriers stay uniform
	uint lid = gl_LocalInvocationID.x, lane = lid % RT;
	uint row = gid * RPG + lid / RT;
	bool live = row < u_rows; // threads past the last row only join the reductions
	uint base = row * u_cols;
	float s = 0.0;
#if V4
	uint n4 = live ? u_cols / 4u : 0u;
	for (uint j = lane; j < n4; j += RT) {
		vec4 v = x4[(base >> 2) + j];
		s += v.x;
		s += v.y;
		s += v.z;
		s += v.w;
	}
#else
	uint n = live ? u_cols : 0u;
	for (uint i = lane; i < n; i += RT) s += x[base + i];
#endif
	float mean = rowSum(s, 0u) / float(u_cols);
	float q = 0.0;
#if V4
	for (uint j = lane; j < n4; j += RT) {
		vec4 d = x4[(base >> 2) + j] - mean;
		q += d.x * d.x;
		q += d.y * d.y;
		q += d.z * d.z;
		q += d.w * d.w;
	}
#else
	for (uint i = lane; i < n; i += RT) {
		float d = x[base + i] - mean;
		q += d * d;
	}
#endif
	float rstd = inversesqrt(rowSum(q, 1u) / float(u_cols) + u_eps);
#if V4
	for (uint j = lane; j < n4; j += RT) {
		vec4 v = x4[(base >> 2) + j];
		uint c = 4u * j;
		vec4 o;
		for (uint k = 0u; k < 4u; k++) o[k] = (v[k] - mean) * rstd * gamma_at(c + k) + beta_at(c + k);
		y4[(base >> 2) + j] = o;
	}
#else
	for (uint i = lane; i < n; i += RT) y[base + i] = (x[base + i] - mean) * rstd * gamma_at(i) + beta_at(i);
#endif
}
