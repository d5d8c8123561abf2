// Helpers shared by the backward shaders (after common.glsl).

// gelu'(x) = Φ(x) + x φ(x), Φ from the same erfc fit as gelu() so the
// gradient matches the forward op.
float gelu_grad(float x) {
	float h = 0.5 * erfc_pos(abs(x) * 0.70710678118654752); // Φ(-|x|)
	float cdf = x >= 0.0 ? 1.0 - h : h;
	return cdf + x * 0.39894228040143268 * exp(-0.5 * x * x);
}
