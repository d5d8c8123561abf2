package pipeline

import (
	"glimmer/engine"
	"glimmer/engine/clip"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/tokenizer"
	"glimmer/engine/unet"
	"glimmer/engine/vae"
)

// Borrow makes a pipeline over networks loaded elsewhere on b — a trainer
// draws samples with the weights it is training. The networks stay the
// caller's: call Release, not Close, when done.
func Borrow(b engine.Backend, cfg model.Config, tok *tokenizer.Tokenizer, text *clip.TextEncoder, u *unet.UNet, v *vae.VAE) *Pipeline {
	return &Pipeline{B: b, Config: cfg, Tok: tok, Text: text, UNet: u, VAE: v, pool: nn.NewPool(b)}
}

// Release frees a borrowed pipeline's own buffers.
func (p *Pipeline) Release() { p.pool.Free() }
