package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is headless Chromium with a fresh profile.
type browser struct {
	actx    context.Context
	acancel context.CancelFunc
	ctx     context.Context
	cancel  context.CancelFunc
}

func newBrowser(bin, dir string) (*browser, error) {
	b := &browser{}
	b.actx, b.acancel = chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir+"/chromium"),
		chromedp.WindowSize(1100, 640),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		// Tabs other than the front one must not be throttled: every
		// viewer of the CPU measurement is a tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true))
	b.ctx, b.cancel = chromedp.NewContext(b.actx)
	if err := chromedp.Do(b.ctx); err != nil {
		b.close()
		return nil, fmt.Errorf("bench: chromium: %w", err)
	}
	return b, nil
}

func (b *browser) close() {
	b.cancel()
	b.acancel()
}

// page is one logged-in console page.
type page struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// page logs user in (in a browser context of its own) and opens the
// console.
func (b *browser) page(base, user string) (*page, error) {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &page{ctx: ctx, cancel: cancel}
	if err := chromedp.Do(ctx); err != nil {
		p.close()
		return nil, err
	}
	if err := p.do(30*time.Second,
		chromedp.Navigate(base+"/login?next=/console/console"),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), user+"-pw"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#term .xterm-rows")),
	); err != nil {
		p.close()
		return nil, fmt.Errorf("bench: login: %w", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		ok, err := evalT[bool](p, `!!(window.chartee && window.chartee.hello)`)
		if err == nil && ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.close()
			return nil, fmt.Errorf("bench: the page did not connect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *page) do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

func evalT[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Minute)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func (p *page) close() { p.cancel() }
