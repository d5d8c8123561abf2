// Package train runs Stable Diffusion's training objective on a backend:
// images from a captioned folder are encoded to latents by the VAE, noised
// to a random timestep (x_t = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε), and the U-Net,
// conditioned on the CLIP embedding of the caption, learns to predict ε
// (loss ‖ε − ε_θ(x_t, t, y)‖²).
//
// Besides the training loop it holds the pieces around it: a captioned
// image folder streamed in batches (Folder, Dataset.Batches) and the loss
// curve drawn as a PNG (Chart, WriteChart).
//
// Images travel as float32 NCHW tensors, RGB order, values in [-1, 1]
// (what the VAE encoder takes).
package train
