//go:build windows

package gl

/*
#cgo LDFLAGS: -lopengl32 -lgdi32 -luser32
#define WIN32_LEAN_AND_MEAN 1
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

#define WGL_CONTEXT_MAJOR_VERSION_ARB 0x2091
#define WGL_CONTEXT_MINOR_VERSION_ARB 0x2092
#define WGL_CONTEXT_PROFILE_MASK_ARB 0x9126
#define WGL_CONTEXT_CORE_PROFILE_BIT_ARB 0x00000001
typedef HGLRC (WINAPI *glimmer_create_attribs)(HDC, HGLRC, const int *);

typedef struct {
	HWND wnd;
	HDC dc;
	HGLRC ctx;
	HMODULE gl32;
	char err[256];
} glimmer_wgl;

// glimmer_wgl_open makes an OpenGL 4.3 core context current on the calling
// thread, on a window of its own that is never shown.
static int glimmer_wgl_open(glimmer_wgl *w) {
	ZeroMemory(w, sizeof(*w));
	HINSTANCE inst = GetModuleHandleA(NULL);
	WNDCLASSA wc;
	ZeroMemory(&wc, sizeof wc);
	wc.style = CS_OWNDC;
	wc.lpfnWndProc = DefWindowProcA;
	wc.hInstance = inst;
	wc.lpszClassName = "GlimmerEngineGL";
	RegisterClassA(&wc); // fails harmlessly when already registered
	w->wnd = CreateWindowExA(0, wc.lpszClassName, "glimmer-engine", WS_OVERLAPPEDWINDOW,
		0, 0, 16, 16, NULL, NULL, inst, NULL);
	if (!w->wnd) { snprintf(w->err, sizeof w->err, "CreateWindowEx failed (error %lu)", GetLastError()); return 0; }
	w->dc = GetDC(w->wnd);
	PIXELFORMATDESCRIPTOR pfd;
	ZeroMemory(&pfd, sizeof pfd);
	pfd.nSize = sizeof pfd;
	pfd.nVersion = 1;
	pfd.dwFlags = PFD_DRAW_TO_WINDOW | PFD_SUPPORT_OPENGL;
	pfd.iPixelType = PFD_TYPE_RGBA;
	pfd.cColorBits = 32;
	int pf = ChoosePixelFormat(w->dc, &pfd);
	if (!pf || !SetPixelFormat(w->dc, pf, &pfd)) {
		snprintf(w->err, sizeof w->err, "no OpenGL pixel format (error %lu)", GetLastError());
		return 0;
	}
	HGLRC legacy = wglCreateContext(w->dc);
	if (!legacy || !wglMakeCurrent(w->dc, legacy)) {
		snprintf(w->err, sizeof w->err, "wglCreateContext failed (error %lu)", GetLastError());
		return 0;
	}
	glimmer_create_attribs create = (glimmer_create_attribs)wglGetProcAddress("wglCreateContextAttribsARB");
	if (create) {
		const int attr[] = { WGL_CONTEXT_MAJOR_VERSION_ARB, 4, WGL_CONTEXT_MINOR_VERSION_ARB, 3,
			WGL_CONTEXT_PROFILE_MASK_ARB, WGL_CONTEXT_CORE_PROFILE_BIT_ARB, 0 };
		HGLRC core = create(w->dc, NULL, attr);
		if (core) {
			wglMakeCurrent(NULL, NULL);
			wglDeleteContext(legacy);
			legacy = core;
			wglMakeCurrent(w->dc, core);
		}
	}
	w->ctx = legacy;
	w->gl32 = LoadLibraryA("opengl32.dll");
	return 1;
}

static void *glimmer_wgl_proc(glimmer_wgl *w, const char *name) {
	void *p = (void *)wglGetProcAddress(name);
	if (p == 0 || p == (void *)1 || p == (void *)2 || p == (void *)3 || p == (void *)-1)
		p = (void *)GetProcAddress(w->gl32, name);
	return p;
}

static void glimmer_wgl_close(glimmer_wgl *w) {
	wglMakeCurrent(NULL, NULL);
	if (w->ctx) wglDeleteContext(w->ctx);
	if (w->dc) ReleaseDC(w->wnd, w->dc);
	if (w->wnd) DestroyWindow(w->wnd);
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

type wglContext struct{ w C.glimmer_wgl }

func openContext() (platformContext, error) {
	c := &wglContext{}
	if C.glimmer_wgl_open(&c.w) == 0 {
		return nil, errors.New(C.GoString(&c.w.err[0]))
	}
	return c, nil
}

func (c *wglContext) procAddress(name string) unsafe.Pointer {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.glimmer_wgl_proc(&c.w, cs)
}

func (c *wglContext) platform() string { return "WGL hidden window" }

func (c *wglContext) close() { C.glimmer_wgl_close(&c.w) }
