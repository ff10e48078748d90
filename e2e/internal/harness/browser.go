package harness

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// Browser starts Debian's headless Chromium for t, driven by chromedp, and
// returns the context of its first tab. It has a fresh profile, no
// sandbox (tests run as root), and none of the background traffic a
// first run would make. Everything is shut down at cleanup.
func Browser(t testing.TB) context.Context {
	t.Helper()
	bin := RequireProgram(t, "/usr/bin/chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 640),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		bcancel()
		acancel()
	})
	// Start the browser now, so a missing library fails here, clearly.
	// (The first run must get the tab's own context: canceling the one
	// it ran with would close the tab.)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("e2e: chromium: %v", err)
	}
	return bctx
}

// BrowserContext opens a new, separate browser context (its own cookies:
// another person) in the browser of parent, and returns its first tab.
func BrowserContext(t testing.TB, parent context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("e2e: chromium: new browser context: %v", err)
	}
	return ctx
}

// DoBrowser runs steps in ctx within timeout, failing t on error.
func DoBrowser(t testing.TB, ctx context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(rctx, steps...); err != nil {
		t.Fatalf("e2e: %s: %v", what, err)
	}
}

// EvalBrowser evaluates a JavaScript expression in ctx's page.
func EvalBrowser[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, timeoutShort)
	defer cancel()
	v, err := chromedp.Run(rctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("e2e: evaluate %s: %v", expr, err)
	}
	return v
}

// TypeKeys types s into the focused element as a person would: one
// keyDown carrying the text, then keyUp, per character ('\r' is Enter).
// (chromedp.SendKeys sends a separate char event without a DOM keydown,
// which xterm.js takes for keyboard input and again for text input.)
func TypeKeys(s string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		for _, r := range s {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: string(r), Text: string(r)}
			switch {
			case r == '\r':
				down.Key, down.Code, down.WindowsVirtualKeyCode = "Enter", "Enter", 13
			case r >= 'a' && r <= 'z':
				down.Code, down.WindowsVirtualKeyCode = "Key"+string(r-32), int64(r-32)
			case r >= 'A' && r <= 'Z':
				down.Code, down.WindowsVirtualKeyCode, down.Modifiers = "Key"+string(r), int64(r), 8
			case r >= '0' && r <= '9':
				down.Code, down.WindowsVirtualKeyCode = "Digit"+string(r), int64(r)
			case r == ' ':
				down.Code, down.WindowsVirtualKeyCode = "Space", 32
			}
			up := down
			up.Type, up.Text = input.DispatchKeyEventTypeKeyUp, ""
			for _, p := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, p); err != nil {
					return chromedp.Void{}, err
				}
			}
		}
		return chromedp.Void{}, nil
	}
}
