package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{20, 20, 20, 255}
	grey    = color.RGBA{150, 150, 150, 255}
	light   = color.RGBA{225, 225, 225, 255}
	palette = map[string]color.RGBA{
		"pty read directly":         {120, 120, 120, 255},
		"socat":                     {230, 160, 40, 255},
		"ser2net":                   {200, 60, 50, 255},
		"ser2net chardelay:false":   {240, 130, 120, 255},
		"chartee":                   {40, 110, 200, 255},
		"chartee GOMAXPROCS=1":      {120, 170, 230, 255},
		"unix socket read directly": {90, 90, 90, 255},
		"chartee (unix frontend)":   {60, 170, 110, 255},
	}
)

type bar struct {
	peer  string
	value float64 // the bar
	mark  float64 // a tick drawn across it (0: none)
}

type group struct {
	label string
	bars  []bar
}

// logRange returns decades covering every positive value.
func logRange(groups []group) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, b := range g.bars {
			for _, v := range []float64{b.value, b.mark} {
				if v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	return math.Floor(math.Log10(lo)), math.Max(math.Ceil(math.Log10(hi)), math.Floor(math.Log10(lo))+1)
}

func fmtValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// drawPanel draws grouped bars on a log axis inside r.
func drawPanel(img *image.RGBA, r image.Rectangle, title string, groups []group) {
	drawText(img, r.Min.X, r.Min.Y, 2, title, black)
	plot := image.Rect(r.Min.X+70, r.Min.Y+40, r.Max.X-10, r.Max.Y-40)
	lo, hi := logRange(groups)
	y := func(v float64) int {
		if v <= 0 {
			return plot.Max.Y
		}
		f := (math.Log10(v) - lo) / (hi - lo)
		return plot.Max.Y - int(f*float64(plot.Dy()))
	}
	for d := lo; d <= hi; d++ {
		gy := y(math.Pow(10, d))
		fillRect(img, plot.Min.X, gy, plot.Dx(), 1, light)
		lbl := fmtValue(math.Pow(10, d))
		drawText(img, plot.Min.X-8-textWidth(lbl, 2), gy-7, 2, lbl, grey)
	}
	fillRect(img, plot.Min.X, plot.Min.Y, 1, plot.Dy()+1, grey)
	fillRect(img, plot.Min.X, plot.Max.Y, plot.Dx(), 1, grey)
	if len(groups) == 0 {
		return
	}
	gw := plot.Dx() / len(groups)
	for gi, g := range groups {
		gx := plot.Min.X + gi*gw
		lbl := g.label
		drawText(img, gx+(gw-textWidth(lbl, 2))/2, plot.Max.Y+12, 2, lbl, black)
		if len(g.bars) == 0 {
			continue
		}
		bw := min((gw-20)/len(g.bars), 140)
		x0 := gx + (gw-bw*len(g.bars))/2
		for bi, b := range g.bars {
			bx := x0 + bi*bw
			c, ok := palette[b.peer]
			if !ok {
				c = color.RGBA{100, 100, 200, 255}
			}
			top := y(b.value)
			fillRect(img, bx+2, top, bw-4, plot.Max.Y-top, c)
			if b.mark > 0 {
				my := y(b.mark)
				fillRect(img, bx, my-1, bw, 3, black)
			}
			v := fmtValue(b.value)
			drawText(img, bx+(bw-textWidth(v, 1))/2, top-10, 1, v, black)
		}
	}
}

func writePlot(path string, res *results) error {
	const w, h = 1200, 1000
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fillRect(img, 0, 0, w, h, white)

	var tg []group
	for _, n := range res.cfg.clients {
		g := group{label: fmt.Sprintf("N=%d", n)}
		for _, r := range res.tput {
			if r.N == n && r.Err == "" && r.AggMBps > 0 {
				g.bars = append(g.bars, bar{peer: r.Peer, value: r.AggMBps})
			}
		}
		tg = append(tg, g)
	}
	drawPanel(img, image.Rect(10, 10, w-10, 520), "OUTPUT THROUGHPUT: MB/S SUMMED OVER N CLIENTS, LOG SCALE", tg)

	var rg []group
	for _, r := range res.rtt {
		if r.Err == "" && r.Samples > 0 {
			rg = append(rg, group{label: "", bars: []bar{{peer: r.Peer, value: float64(r.P50.Microseconds()), mark: float64(r.P99.Microseconds())}}})
		}
	}
	// One group holding every peer reads better than one group each.
	var one group
	for _, g := range rg {
		one.bars = append(one.bars, g.bars...)
	}
	drawPanel(img, image.Rect(10, 540, w-10, 880), "KEYSTROKE ROUND TRIP, MICROSECONDS: P50 BAR, P99 TICK, LOG SCALE", []group{one})

	// Legend.
	x, ly := 20, 900
	for _, p := range allPeers {
		c := palette[p.label]
		used := false
		for _, r := range res.tput {
			used = used || r.Peer == p.label
		}
		for _, r := range res.rtt {
			used = used || r.Peer == p.label
		}
		if !used {
			continue
		}
		lw := 24 + textWidth(p.label, 2) + 30
		if x+lw > w-10 {
			x, ly = 20, ly+30
		}
		fillRect(img, x, ly, 16, 16, c)
		drawText(img, x+24, ly+1, 2, p.label, black)
		x += lw
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot: %w", err)
	}
	return f.Close()
}
