//go:build linux

package gl

/*
#cgo LDFLAGS: -lEGL
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <EGL/egl.h>
#include <EGL/eglext.h>

typedef struct {
	EGLDisplay dpy;
	EGLContext ctx;
	const char *platform;
	char err[256];
} glimmer_egl;

static int glimmer_try_display(glimmer_egl *e, EGLDisplay dpy, const char *platform) {
	EGLint major, minor;
	if (dpy == EGL_NO_DISPLAY) return 0;
	if (!eglInitialize(dpy, &major, &minor)) return 0;
	if (!eglBindAPI(EGL_OPENGL_API)) { eglTerminate(dpy); return 0; }

	EGLConfig cfg = EGL_NO_CONFIG_KHR;
	EGLint n = 0;
	const EGLint cfgAttr[] = { EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE };
	if (!eglChooseConfig(dpy, cfgAttr, &cfg, 1, &n) || n < 1) cfg = EGL_NO_CONFIG_KHR;

	const EGLint ctxAttr[] = {
		EGL_CONTEXT_MAJOR_VERSION, 4,
		EGL_CONTEXT_MINOR_VERSION, 3,
		EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
		EGL_NONE };
	EGLContext ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctxAttr);
	if (ctx == EGL_NO_CONTEXT) {
		// Ask for whatever the driver has; the caller checks the version
		// and names what it found.
		ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, NULL);
	}
	if (ctx == EGL_NO_CONTEXT) { eglTerminate(dpy); return 0; }
	if (!eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
		eglDestroyContext(dpy, ctx);
		eglTerminate(dpy);
		return 0;
	}
	e->dpy = dpy;
	e->ctx = ctx;
	e->platform = platform;
	return 1;
}

// glimmer_egl_open makes a headless OpenGL context current on the calling
// thread: EGL's device platform first (real GPUs, no display server), then
// Mesa's surfaceless platform, then the default display.
static int glimmer_egl_open(glimmer_egl *e) {
	memset(e, 0, sizeof(*e));
	PFNEGLQUERYDEVICESEXTPROC queryDevices =
		(PFNEGLQUERYDEVICESEXTPROC)eglGetProcAddress("eglQueryDevicesEXT");
	PFNEGLGETPLATFORMDISPLAYEXTPROC getPlatformDisplay =
		(PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
	if (queryDevices && getPlatformDisplay) {
		EGLDeviceEXT devs[16];
		EGLint n = 0;
		if (queryDevices(16, devs, &n)) {
			for (EGLint i = 0; i < n; i++) {
				if (glimmer_try_display(e, getPlatformDisplay(EGL_PLATFORM_DEVICE_EXT, devs[i], NULL), "EGL device"))
					return 1;
			}
		}
	}
	if (getPlatformDisplay &&
	    glimmer_try_display(e, getPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL), "EGL surfaceless"))
		return 1;
	if (glimmer_try_display(e, eglGetDisplay(EGL_DEFAULT_DISPLAY), "EGL default display"))
		return 1;
	snprintf(e->err, sizeof e->err, "no EGL display gave an OpenGL context (last EGL error 0x%x)", eglGetError());
	return 0;
}

static void glimmer_egl_close(glimmer_egl *e) {
	eglMakeCurrent(e->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
	eglDestroyContext(e->dpy, e->ctx);
	eglTerminate(e->dpy);
}

static void *glimmer_egl_proc(const char *name) { return (void *)eglGetProcAddress(name); }
*/
import "C"

import (
	"errors"
	"unsafe"
)

// eglContext is a headless OpenGL context made current on the thread that
// created it.
type eglContext struct{ e C.glimmer_egl }

func openContext() (platformContext, error) {
	c := &eglContext{}
	if C.glimmer_egl_open(&c.e) == 0 {
		return nil, errors.New(C.GoString(&c.e.err[0]))
	}
	return c, nil
}

func (c *eglContext) procAddress(name string) unsafe.Pointer {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.glimmer_egl_proc(cs)
}

func (c *eglContext) platform() string { return C.GoString(c.e.platform) }

func (c *eglContext) close() { C.glimmer_egl_close(&c.e) }
