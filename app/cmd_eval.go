package app

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/signal"
	"time"

	"glimmer/assets"
	"glimmer/engine/dataset"
	"glimmer/engine/pipeline"
)

func init() {
	register("eval", "score how well a model trained on the shapes dataset follows prompts", runEval)
}

// runEval asks a model for every (shape colour, background) pair of the
// shapes dataset, trained and held-out pairs apart (dataset.Probes), and
// prints the share of pictures that show both asked-for colours
// (dataset.Detect): the starter model's yardstick.
func runEval(env *Env, args []string) error {
	fs := newFlags(env, "eval")
	model := fs.String("model", "", "model trained on the shapes dataset (diffusers folder or file); default: the built-in starter model")
	seeds := fs.Int("seeds", 4, "pictures per colour pair (other shapes and seeds)")
	steps := fs.Int("steps", 15, "denoising steps")
	cfg := fs.Float64("cfg", 5, "guidance scale")
	sampler := fs.String("sampler", "euler", "sampler: ddim, euler, euler_a or dpmpp_2m")
	size := fs.Int("size", assets.StarterSize, "picture size in pixels (square)")
	backend := fs.String("backend", "auto", "compute backend: auto, gl or cpu")
	sheet := fs.String("sheet", "", "also write every picture into this new PNG, one row per split")
	verbose := fs.Bool("v", false, "list every miss")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("eval: unexpected argument %q", pos[0])
	}
	switch {
	case *seeds < 1 || *seeds > 100:
		return usagef("eval: --seeds must be in 1..100")
	case *steps < 1 || *steps > 1000:
		return usagef("eval: --steps must be in 1..1000")
	case *size < 8 || *size > 2048 || *size%8 != 0:
		return usagef("eval: --size must be a multiple of 8 in 8..2048")
	}
	// --cfg, --sampler and --backend as generate checks them; the prompts
	// are the dataset's.
	g := genFlags{backend: *backend, p: Params{Prompt: "-", Steps: *steps, CFG: *cfg, Sampler: *sampler, Schedule: "default",
		Width: *size, Height: *size, ClipSkip: 1}}
	if err := g.validate("eval"); err != nil {
		return err
	}
	if *sheet != "" {
		if _, err := os.Stat(*sheet); err == nil {
			return fmt.Errorf("%s already exists; not overwriting it", *sheet)
		}
		if err := CheckWritable(*sheet); err != nil {
			return err
		}
	}
	if *model == "" {
		if *model, err = assets.StarterDir(); err != nil {
			return err
		}
	}
	b, err := openBackend(env, *backend)
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := pipeline.Load(*model, b, pipeline.Options{}, nil)
	if err != nil {
		return err
	}
	defer p.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	var pictures [][]image.Image // per split, for the sheet
	for _, split := range []dataset.Split{dataset.Train, dataset.HeldOutSplit} {
		var row []image.Image
		probes := dataset.Probes(split, *seeds)
		score, err := dataset.Evaluate(probes, func(pr dataset.Probe) (image.Image, error) {
			res, err := p.Generate(ctx, pipeline.Request{Prompt: pr.Prompt, Steps: *steps, CFG: float32(*cfg),
				Seed: pr.Seed, Sampler: *sampler, Schedule: "default", Width: *size, Height: *size}, nil)
			if err != nil {
				return nil, err
			}
			row = append(row, res.Image)
			fmt.Fprintf(env.Stderr, "\r%s pairs: %d/%d pictures", split, len(row), len(probes))
			return res.Image, nil
		})
		fmt.Fprint(env.Stderr, "\r\033[K")
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		pictures = append(pictures, row)
		fmt.Fprintf(env.Stdout, "%-8s pairs: %s of pictures show both asked-for colours\n", split, score)
		if *verbose {
			for _, m := range score.Misses {
				fmt.Fprintf(env.Stdout, "  %q (seed %d): %s on %s\n", m.Prompt, m.Seed, m.Colour, m.Background)
			}
		}
	}
	fmt.Fprintf(env.Stdout, "%d steps of %s at CFG %g, %dx%d, %d seeds a pair, in %.1f s on %s\n",
		*steps, *sampler, *cfg, *size, *size, *seeds, time.Since(start).Seconds(), b.Name())
	if *sheet != "" {
		if err := writeSheet(*sheet, pictures, 8**seeds); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "pictures: %s\n", *sheet)
	}
	return nil
}

// writeSheet lays the pictures out in rows of at most cols, each split
// starting a new row, 2 pixels apart, and writes the PNG to a new file.
func writeSheet(path string, splits [][]image.Image, cols int) error {
	if len(splits) == 0 || len(splits[0]) == 0 {
		return nil
	}
	w, h := splits[0][0].Bounds().Dx(), splits[0][0].Bounds().Dy()
	rows := 0
	for _, s := range splits {
		rows += (len(s) + cols - 1) / cols
	}
	sheet := image.NewNRGBA(image.Rect(0, 0, cols*(w+2), rows*(h+2)))
	y := 0
	for _, s := range splits {
		for i, img := range s {
			at := image.Pt((i%cols)*(w+2), (y+i/cols)*(h+2))
			draw.Draw(sheet, image.Rectangle{at, at.Add(image.Pt(w, h))}, img, img.Bounds().Min, draw.Src)
		}
		y += (len(s) + cols - 1) / cols
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sheet); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteNew(path, buf.Bytes())
}
