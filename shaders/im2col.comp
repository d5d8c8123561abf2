// The columns of a convolution as a matrix, so that the implicit GEMM
// reads them as a 1x1 convolution's input with plain vec4 loads instead
// of gathering them: col [N, C*KH*KW, OH*OW], for k = (c, ky, kx) and
// p = (oy, ox), col[img, k, p] = x[img, c, oy*SH - PH + ky, ox*SW - PW + kx],
// zero outside the image (the value conv2d.comp's gather reads there).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Colbuf { float col[]; }; // [N, C*KH*KW, OH*OW]
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };      // [N, C, H, W]
uniform uint u_n; // col's elements
uniform int u_C, u_H, u_W, u_KH, u_KW, u_OH, u_OW;
uniform int u_SH, u_SW, u_PH, u_PW;

void main() {
	uint i = group_id() * 256u + gl_LocalInvocationID.x;
	if (i >= u_n) return;
	uint ohw = uint(u_OH * u_OW), khw = uint(u_KH * u_KW);
	uint row = i / ohw; // (img, k)
	int p = int(i - row * ohw);
	uint ck = uint(u_C) * khw;
	int img = int(row / ck);
	int k = int(row) - img * int(ck);
	int c = k / int(khw), r = k - c * int(khw);
	int ky = r / u_KW, kx = r - ky * u_KW;
	int oy = p / u_OW, ox = p - oy * u_OW;
	int iy = oy * u_SH - u_PH + ky, ix = ox * u_SW - u_PW + kx;
	float v = 0.0;
	if (iy >= 0 && iy < u_H && ix >= 0 && ix < u_W) v = x[((img * u_C + c) * u_H + iy) * u_W + ix];
	col[i] = v;
}
