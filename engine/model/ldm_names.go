package model

// LDMUNetName maps a U-Net key in the single-file (LDM) naming, relative
// to "model.diffusion_model." ("input_blocks.1.1.proj_in.weight"), to its
// canonical name in the unet component ("down_blocks.0.attentions.0.
// proj_in.weight") by the rules Open applies to single files, for a U-Net
// of layout u. Only u.LayersPerBlock, u.UpAttention and u.MidAttention are
// read. It is for other files that use LDM paths (kohya LoRAs).
func LDMUNetName(u UNetConfig, key string) (string, bool) {
	per := u.LayersPerBlock + 1
	outAttn := map[int]bool{} // output_blocks.N.1 is a transformer
	for i, a := range u.UpAttention {
		for l := range per {
			if a {
				outAttn[i*per+l] = true
			}
		}
	}
	return unetName(key, u.LayersPerBlock, per, u.MidAttention, outAttn)
}
