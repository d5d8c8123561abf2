module glimmer

go 1.24

require (
	github.com/go-gl/gl v0.0.0-20231021071112-07e5d0ea2e71 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
