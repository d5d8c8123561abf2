package ui

import (
	"image"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"glimmer/app"
)

// galleryItem is one image of the session.
type galleryItem struct {
	img    image.Image
	params app.Params
	path   string // where it was saved; "" when saving failed
}

// gallery is the strip of the session's images, newest last; tapping one
// shows it large and makes it the image Save As and Copy parameters act
// on.
type gallery struct {
	items    []galleryItem
	thumbs   []*thumb
	selected int // -1: none
	box      *fyne.Container
	scroll   *container.Scroll
	onSelect func(galleryItem)
}

const thumbSize = 72

func newGallery(onSelect func(galleryItem)) *gallery {
	g := &gallery{selected: -1, box: container.NewHBox(), onSelect: onSelect}
	g.scroll = container.NewHScroll(g.box)
	g.scroll.SetMinSize(fyne.NewSize(thumbSize, thumbSize+theme.Padding()*2))
	return g
}

// add appends an image and selects it.
func (g *gallery) add(it galleryItem) {
	i := len(g.items)
	g.items = append(g.items, it)
	t := newThumb(it.img, func() { g.selectItem(i) })
	g.thumbs = append(g.thumbs, t)
	g.box.Add(t)
	g.selectItem(i)
	g.scroll.ScrollToOffset(fyne.NewPos(g.box.MinSize().Width, 0))
}

func (g *gallery) selectItem(i int) {
	if i < 0 || i >= len(g.items) {
		return
	}
	if g.selected >= 0 {
		g.thumbs[g.selected].setSelected(false)
	}
	g.selected = i
	g.thumbs[i].setSelected(true)
	g.onSelect(g.items[i])
}

// current is the selected image, if any.
func (g *gallery) current() (galleryItem, bool) {
	if g.selected < 0 {
		return galleryItem{}, false
	}
	return g.items[g.selected], true
}

// thumb is a tappable thumbnail with a frame that marks the selection.
type thumb struct {
	widget.BaseWidget
	img   *canvas.Image
	frame *canvas.Rectangle
	onTap func()
}

func newThumb(img image.Image, onTap func()) *thumb {
	t := &thumb{img: canvas.NewImageFromImage(img), frame: canvas.NewRectangle(color.Transparent), onTap: onTap}
	t.img.FillMode = canvas.ImageFillContain
	t.img.SetMinSize(fyne.NewSize(thumbSize, thumbSize))
	t.frame.StrokeWidth = 3
	t.ExtendBaseWidget(t)
	return t
}

func (t *thumb) Tapped(*fyne.PointEvent) { t.onTap() }

func (t *thumb) setSelected(on bool) {
	if on {
		t.frame.StrokeColor = theme.Color(theme.ColorNamePrimary)
	} else {
		t.frame.StrokeColor = color.Transparent
	}
	t.frame.Refresh()
}

func (t *thumb) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(container.NewStack(t.img, t.frame))
}
