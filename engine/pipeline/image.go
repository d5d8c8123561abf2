package pipeline

import (
	"image"
	"math"
)

// ToImage maps a decoded image [3, H, W] in the VAE's [-1, 1] convention to
// 8-bit RGB as diffusers does: x/2 + 0.5 clamped to [0, 1], then ×255
// rounded to nearest.
func ToImage(chw []float32, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	plane := w * h
	for y := range h {
		for x := range w {
			i := y*w + x
			o := img.PixOffset(x, y)
			for c := range 3 {
				img.Pix[o+c] = to8(chw[c*plane+i]*0.5 + 0.5)
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

// Unit01 maps [-1, 1] values to [0, 1] (x/2 + 0.5, clamped), the scale the
// fixtures' images are on.
func Unit01(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(math.Min(1, math.Max(0, float64(x*0.5+0.5))))
	}
	return out
}

func to8(v float32) uint8 {
	v = float32(math.Min(1, math.Max(0, float64(v))))
	return uint8(math.Round(float64(v * 255)))
}

// latentRGB projects SD 1.x/2.x latent channels to RGB: a fixed linear map
// fitted to the VAE, the fast preview every step can afford (the
// "approximate" preview of AUTOMATIC1111).
var latentRGB = [4][3]float32{
	{0.298, 0.207, 0.208},
	{0.187, 0.286, 0.173},
	{-0.158, 0.189, 0.264},
	{-0.184, -0.271, -0.473},
}

// LatentPreview turns latents [4, h, w], as the sampler holds them (in
// the VAE-scaled space), into an h×w RGB image.
func LatentPreview(lat []float32, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	plane := w * h
	for i := range plane {
		var rgb [3]float32
		for c := range 4 {
			v := lat[c*plane+i]
			for k := range 3 {
				rgb[k] += v * latentRGB[c][k]
			}
		}
		o := 4 * i
		for k := range 3 {
			img.Pix[o+k] = to8(rgb[k]*0.5 + 0.5)
		}
		img.Pix[o+3] = 255
	}
	return img
}
