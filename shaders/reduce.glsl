// Work-group reductions for 256-thread groups (local_size_x = 256).
// Each reduction in a shader takes its own slot of scratch memory, so a
// later reduction never overwrites a total that a slow thread has yet to
// read (no write-after-read hazard to guard with extra barriers).
#define REDUCE_SLOTS 3
shared float red_buf[REDUCE_SLOTS][256];

float reduce_sum(float v, uint slot) {
	uint lid = gl_LocalInvocationID.x;
	red_buf[slot][lid] = v;
	memoryBarrierShared();
	barrier();
	for (uint w = 128u; w > 0u; w >>= 1) {
		if (lid < w) red_buf[slot][lid] += red_buf[slot][lid + w];
		memoryBarrierShared();
		barrier();
	}
	return red_buf[slot][0];
}

float reduce_max(float v, uint slot) {
	uint lid = gl_LocalInvocationID.x;
	red_buf[slot][lid] = v;
	memoryBarrierShared();
	barrier();
	for (uint w = 128u; w > 0u; w >>= 1) {
		if (lid < w) red_buf[slot][lid] = max(red_buf[slot][lid], red_buf[slot][lid + w]);
		memoryBarrierShared();
		barrier();
	}
	return red_buf[slot][0];
}
