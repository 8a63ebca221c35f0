package main

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// cdfChart writes an SVG of each system's completion-time CDF (fraction of
// nodes complete against seconds from the start), with T_min as a
// vertical line.
func cdfChart(path string, p distParams, tmin float64, systems []distSummary) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("Completion time CDF, %s preset: N=%d, F=%d MiB", p.Preset, p.Nodes, p.Size>>20)
	pl.X.Label.Text = "seconds from start (log scale)"
	pl.Y.Label.Text = "fraction of nodes complete"
	pl.X.Scale = plot.LogScale{}
	pl.Y.Min, pl.Y.Max = 0, 1
	pl.Legend.Top = true
	pl.Legend.Left = true
	pl.Legend.XOffs, pl.Legend.YOffs = vg.Points(8), vg.Points(-8)
	colors := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
	lo, hi := tmin, tmin
	for i, s := range systems {
		ts := slices.DeleteFunc(slices.Clone(s.Times), math.IsNaN)
		if len(ts) == 0 {
			continue
		}
		slices.Sort(ts)
		n := float64(len(s.Times))
		pts := plotter.XYs{{X: ts[0], Y: 0}}
		for j, t := range ts {
			pts = append(pts, plotter.XY{X: t, Y: float64(j) / n}, plotter.XY{X: t, Y: float64(j+1) / n})
		}
		lo, hi = min(lo, ts[0]), max(hi, ts[len(ts)-1])
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("chart %s: %w", s.System, err)
		}
		l.Color = colors[i%len(colors)]
		l.Width = vg.Points(1.5)
		pl.Add(l)
		pl.Legend.Add(s.System, l)
	}
	if tmin > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: tmin, Y: 0}, {X: tmin, Y: 1}})
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = color.Gray{Y: 0x60}
		pl.Add(l)
		pl.Legend.Add(fmt.Sprintf("bound Tmin = %.1f s", tmin), l)
	}
	pl.X.Min, pl.X.Max = lo*0.8, hi*1.25
	pl.X.Tick.Marker = niceLogTicks{}
	pl.Add(plotter.NewGrid())
	// The SVG, and a PNG beside it for viewers without SVG.
	for _, f := range []string{path, strings.TrimSuffix(path, ".svg") + ".png"} {
		if err := pl.Save(7*vg.Inch, 4.5*vg.Inch, f); err != nil {
			return fmt.Errorf("write chart %s: %w", f, err)
		}
	}
	return nil
}

// niceLogTicks labels 1, 2 and 5 times the powers of ten in range, with
// minor ticks at 3 and 7.
type niceLogTicks struct{}

func (niceLogTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 3, 5, 7} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m != 7 && m != 3 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}
