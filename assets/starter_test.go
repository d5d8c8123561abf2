package assets_test

import (
	"context"
	"image"
	"testing"

	"glimmer/assets"
	"glimmer/engine/cpu"
	"glimmer/engine/dataset"
	"glimmer/engine/pipeline"
)

// The starter model is asked for every (shape colour, background) pair of
// the shapes dataset — the 48 it was trained on and the 8 held out of its
// training data — in the dataset's own caption words ("a red circle on a
// blue background"), three times each with other shapes and seeds
// (dataset.Probes), and dataset.Detect checks each picture: the asked-for
// shape colour must be the most common colour other than the background,
// and the background the colour of the picture's outermost pixel ring.
// Chance is about 1/56 (one of 8 shape colours and one of the other 7
// backgrounds).
//
// Issue 8 asks for 80% of pictures on the trained pairs; the held-out
// pairs' score is reported beside it (they measure generalisation to colour
// combinations never seen together, which the issue does not bound). The
// starter shipped now (README: how it was trained) measures 100% (144/144)
// on the trained pairs and 70.8% (17/24) held out with this test on the
// CPU backend. The test holds the trained pairs to the 80% and the
// held-out pairs to 50% (28 times chance), a guard against regressions in
// the text path, sampler, VAE or a weaker model.
func TestStarterFollowsPrompts(t *testing.T) {
	dir, err := assets.StarterDir()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(dir, cpu.New(), pipeline.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	generate := func(pr dataset.Probe) (image.Image, error) {
		res, err := p.Generate(context.Background(), pipeline.Request{
			Prompt: pr.Prompt, Steps: 15, CFG: 5, Seed: pr.Seed,
			Sampler: "euler", Schedule: "default", Width: assets.StarterSize, Height: assets.StarterSize,
		}, nil)
		if err != nil {
			return nil, err
		}
		return res.Image, nil
	}
	trained, err := dataset.Evaluate(dataset.Probes(dataset.Train, 3), generate)
	if err != nil {
		t.Fatal(err)
	}
	held, err := dataset.Evaluate(dataset.Probes(dataset.HeldOutSplit, 3), generate)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(trained.Misses, held.Misses...) {
		t.Logf("%q (seed %d): got %s on %s", m.Prompt, m.Seed, m.Colour, m.Background)
	}
	t.Logf("trained pairs: %v of pictures match; held-out pairs: %v", trained, held)
	if trained.Percent() < 80 {
		t.Errorf("trained pairs: %v of pictures show the asked-for colours, want ≥ 80%% (the shipped starter measured 100%%)", trained)
	}
	if held.Percent() < 50 {
		t.Errorf("held-out pairs: %v of pictures show the asked-for colours, want ≥ 50%% (the shipped starter measured 70.8%%)", held)
	}
}
