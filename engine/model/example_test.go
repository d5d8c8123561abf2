package model_test

import (
	"fmt"
	"log"

	"glimmer/engine/model"
)

// Networks are built from Config and bind their weights by canonical name.
func Example() {
	m, err := model.Open("v1-5-pruned-emaonly.safetensors", model.Options{})
	if err != nil {
		log.Fatal(err) // e.g. "v1-5-pruned-emaonly.safetensors: no such file or folder"
	}
	defer m.Close()
	cfg := m.Config.UNet
	unet := m.Component(model.UNet)
	convIn, err := unet.Raw("conv_in.weight") // F16 or F32 bytes, shape [320, 4, 3, 3]
	if err != nil {
		log.Fatal(err)
	}
	mid := unet.Sub("mid_block.attentions.0")
	q, err := mid.Float32("transformer_blocks.0.attn1.to_q.weight") // [1280, 1280]
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.BlockOutChannels, convIn.DType, convIn.Shape, len(q))
}
