// Shared helpers for every op. The GL backend prepends #version and the
// variant's #define lines; every macro a shader tests with #if is defined.

// The backend splits a dispatch of u_groups work groups over up to three
// grid dimensions (drivers cap each, llvmpipe at 65,535); group_id()
// rebuilds the linear work-group index.
uniform uint u_groups;

uint group_id() {
	return gl_WorkGroupID.x + gl_NumWorkGroups.x * (gl_WorkGroupID.y + gl_NumWorkGroups.y * gl_WorkGroupID.z);
}

// F16 tensors are packed two halves to a 32-bit word, low half first.
float half_at(uint word, uint i) {
	return unpackHalf2x16(word)[i & 1u];
}

float sigmoid(float x) {
	return 1.0 / (1.0 + exp(-x));
}

// erfc for x >= 0 with relative error below 1.2e-7 (Chebyshev fit from
// Numerical Recipes, "erfcc"). GLSL has no erf.
float erfc_pos(float x) {
	float t = 1.0 / (1.0 + 0.5 * x);
	float p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
		t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
		t * (-0.82215223 + t * 0.17087277))))))));
	return t * exp(-x * x + p);
}

// gelu(x) = x * Φ(x) = x/2 * (1 + erf(x/√2)), written with erfc of a
// non-negative argument so both tails keep their relative accuracy.
float gelu(float x) {
	float z = abs(x) * 0.70710678118654752;
	float h = 0.5 * erfc_pos(z); // Φ(-|x|)
	return x >= 0.0 ? x * (1.0 - h) : x * h;
}

float silu(float x) {
	return x * sigmoid(x);
}

float quick_gelu(float x) {
	return x * sigmoid(1.702 * x);
}

// tanh from one exp of a non-positive argument, so it never overflows to
// inf/inf = NaN (a driver's tanh may be (e^2x-1)/(e^2x+1)).
float tanh_safe(float x) {
	float t = exp(-2.0 * abs(x));
	return sign(x) * (1.0 - t) / (1.0 + t);
}
