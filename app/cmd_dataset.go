package app

import (
	"fmt"
	"os"

	"glimmer/engine/dataset"
)

func init() {
	register("dataset", "render the procedural shapes dataset (png + txt caption pairs) for training", runDataset)
}

func runDataset(env *Env, args []string) error {
	fs := newFlags(env, "dataset")
	out := fs.String("out", "", "new folder to write the pairs into")
	count := fs.Int("count", 1000, "number of images")
	size := fs.Int("size", 64, "image size in pixels (square)")
	seed := fs.Int64("seed", 1, "random seed")
	split := fs.String("split", "train", "colour pairs: train (held-out pairs left out), heldout (only those), all")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dataset: unexpected argument %q", pos[0])
	}
	sp, ok := map[string]dataset.Split{"train": dataset.Train, "heldout": dataset.HeldOutSplit, "all": dataset.All}[*split]
	switch {
	case *out == "":
		return usagef("dataset: --out is required")
	case !ok:
		return usagef("dataset: --split %q: want train, heldout or all", *split)
	case *count < 1 || *count > 100000 || *size < dataset.MinSize || *size > 4096 || *seed < 0:
		return usagef("dataset: --count in 1..100000, --size in %d..4096 and --seed ≥ 0, please", dataset.MinSize)
	}
	// A new folder, or an empty one: pairs mixed into a folder of the
	// user's would be hard to tell apart, and a name taken halfway would
	// leave it half-written.
	if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
		return fmt.Errorf("dataset: %s already exists and is not empty; give a new folder", *out)
	}
	if err := dataset.WriteFolder(*out, *count, *size, uint64(*seed), sp); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %d images with captions to %s\n", *count, *out)
	return nil
}
