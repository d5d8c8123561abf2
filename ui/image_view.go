package ui

import (
	"image"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// imageView is the large picture: the live preview while a job runs, then
// the result (or the image picked in the gallery).
type imageView struct {
	img     *canvas.Image
	caption *widget.Label
	content fyne.CanvasObject
	shown   image.Image
}

func newImageView() *imageView {
	v := &imageView{img: canvas.NewImageFromImage(nil), caption: widget.NewLabel("")}
	v.img.FillMode = canvas.ImageFillContain
	v.img.SetMinSize(fyne.NewSize(320, 320))
	v.caption.Truncation = fyne.TextTruncateEllipsis
	v.caption.SetText("No image yet: write a prompt and press Generate (Ctrl+Enter).")
	v.content = container.NewBorder(nil, v.caption, nil, nil, v.img)
	return v
}

// show draws img; preview images (a few pixels per latent) are scaled
// without smoothing so they read as the coarse previews they are.
func (v *imageView) show(img image.Image, caption string, preview bool) {
	v.shown = img
	v.img.Image = img
	if preview {
		v.img.ScaleMode = canvas.ImageScalePixels
	} else {
		v.img.ScaleMode = canvas.ImageScaleSmooth
	}
	v.img.Refresh()
	v.caption.SetText(caption)
}
