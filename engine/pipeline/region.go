package pipeline

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"glimmer/engine"
	"glimmer/engine/nn"
)

// The U-Net's activations and the VAE decode's take turns in one region
// of device memory, made when an image size is first asked for and kept,
// so that an image allocates neither: each is planned into one arena
// (nn.Pool.Plan), and the arenas lie in the region (nn.Pool.Home). It is
// as large as the larger of the two, which is what the decode took at
// its peak before, so the peak stays where it was. On the H100 fresh
// allocations of --offload's weights had cost 20–50 ms an image
// (docs/perf-notes.md, p25). What the steps keep from the first to the
// last (time embeddings, the text's keys and values) lies in what the
// U-Net's arena leaves of the region, where it fits (UNet.HomeKept).
//
// With Options.Offload the text encoder's weights, the U-Net's largest
// and the VAE's weights take their turns there too:
//
//	text encoding   [text encoder's weights ..................]
//	denoising       [U-Net's largest weights ...| its arena ..]
//	decoding        [VAE's weights | the decode's arena ......]
//
// It is then as large as the largest of the three, and the U-Net's
// weights fill what its arena leaves, largest first, so the steps' peak
// is the U-Net's weights and activations as without Offload, the text
// encoder and the VAE costing only the little the U-Net's weights leave
// of the region unfilled. Each image copies the three back from host
// memory as their turns come, and allocates nothing for them.

// placeRegion makes the region for latents of shape z [1, C, h, w],
// unless it is made for them already, and sends every weight in it off
// the device (vacate), so each image starts with the region free: a
// Generate that failed halfway may have left weights in it. On a backend
// that cannot cut tensors out of others it does nothing.
func (p *Pipeline) placeRegion(z engine.Shape) error {
	if p.sub == nil {
		return nil
	}
	if p.region != nil && p.regionFor.Equal(z) {
		return p.vacate()
	}
	if err := p.dropRegion(); err != nil {
		return err
	}
	align := p.sub.SubAlign()
	decode := p.VAE.DecodeArena(z, align)
	// The U-Net's activations at the region's end, as a one-chunk prompt
	// with guidance takes them; a pass that needs more takes a buffer of
	// its own.
	steps := engine.AlignUp(p.UNet.ActivationArena(z, engine.Shape{2, p.Config.Text.MaxPositions, p.Config.UNet.CrossAttentionDim}, align), align)
	text, vae := 0, 0
	if p.offText != nil {
		text = nn.HomeSpan(p.sub, p.Text.Weights(), 0)
		vae = engine.AlignUp(nn.HomeSpan(p.sub, p.VAE.Weights(), 0), align)
	}
	size := engine.AlignUp(max(text, vae+decode, steps), align)
	weights := 0 // the U-Net's weights' part of the region
	if p.offText != nil {
		var err error
		if weights, err = p.chooseUNetWeights(size - steps); err != nil {
			return err
		}
	}
	p.region, p.regionFor = p.B.New(engine.F32, size), z // [size]
	if p.offText != nil {
		p.offText.Home(p.region, 0)
		p.offUNet.Home(p.region, 0)
		p.offVAE.Home(p.region, 0)
	}
	p.VAE.HomeActivations(p.region, vae, decode)
	p.UNet.HomeActivations(p.region, size-steps, steps)
	// What the steps keep (time embeddings, the text's keys and values)
	// in what the U-Net's weights and arena leave of the region.
	p.UNet.HomeKept(p.region, weights, size-steps-weights)
	return nil
}

// chooseUNetWeights makes p.offUNet of the U-Net's largest weights that
// fill room elements of the region, largest first, and sends them off the
// device: before the region is made, so that the two are never there at
// once. It returns the elements they take.
func (p *Pipeline) chooseUNetWeights(room int) (int, error) {
	if p.offUNet != nil { // left by a placeRegion that failed: its weights come back first
		p.offUNet.In()
		p.offUNet.Close()
		p.offUNet = nil
	}
	largest := slices.Clone(p.UNet.Weights())
	slices.SortStableFunc(largest, func(a, b *engine.Tensor) int { return cmp.Compare(b.Bytes(), a.Bytes()) })
	var fill []*engine.Tensor
	used := 0
	for _, t := range largest {
		if end := nn.HomeSpan(p.sub, []*engine.Tensor{t}, used); end <= room {
			fill, used = append(fill, t), end
		}
	}
	p.offUNet = nn.NewOffload(p.B, fill)
	return used, p.offUNet.Out(math.MaxInt64)
}

// vacate sends every weight in the region off the device (those out
// already stay so, at no cost).
func (p *Pipeline) vacate() error {
	for _, o := range []*nn.Offload{p.offText, p.offUNet, p.offVAE} {
		if o == nil {
			continue
		}
		if err := o.Out(math.MaxInt64); err != nil {
			return fmt.Errorf("offloading weights: %w", err)
		}
	}
	return nil
}

// dropRegion frees the region, for one of another size: the text
// encoder's and the VAE's weights stay off the device for the next
// region, and the U-Net's come back to storage of their own, to be
// chosen again.
func (p *Pipeline) dropRegion() error {
	if p.region == nil {
		return nil
	}
	if err := p.vacate(); err != nil {
		return err
	}
	p.VAE.HomeActivations(nil, 0, 0)
	p.UNet.HomeActivations(nil, 0, 0)
	p.UNet.HomeKept(nil, 0, 0)
	for _, o := range []*nn.Offload{p.offText, p.offUNet, p.offVAE} {
		if o != nil {
			o.Home(nil, 0)
		}
	}
	p.B.Free(p.region)
	p.region, p.regionFor = nil, nil
	if p.offUNet != nil {
		p.offUNet.In()
		p.offUNet.Close()
		p.offUNet = nil
	}
	return nil
}
