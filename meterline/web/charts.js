"use strict";
// uPlot wrappers: one chart per id, created once and then fed new data on every refresh (no
// flicker, the cursor and legend survive), re-created only when its series change. Each chart
// keeps the API's exact strings next to the numbers it plots: the legend shows those, and
// window.meterline (a debug and test hook) exposes both.
(function (ML) {
  const COLORS = ["#3056d3", "#e07a1f", "#16a34a", "#c026d3", "#0891b2", "#dc2626",
                  "#65a30d", "#7c3aed", "#ca8a04", "#475569"];
  const AXIS = { stroke: "#6b7280", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#c9ced6", width: 1 } };
  const charts = {}; // id -> {u, el, sig, spec, raw}

  const widthOf = (el) => Math.max(260, Math.floor(el.getBoundingClientRect().width) || 600);

  // Charts follow their card's width (the grid reflows on resize).
  const resized = new ResizeObserver((entries) => {
    for (const e of entries) {
      const c = Object.values(charts).find((x) => x.el === e.target);
      if (c && widthOf(c.el) !== c.u.width) c.u.setSize({ width: widthOf(c.el), height: c.spec.height });
    }
  });

  // Bars drawn at [x0, x0 + width) in data units (a window's start and length), so a lone
  // window is one window wide, not the whole plot as uPlot's spacing-based width would be.
  function windowBars(c) {
    const gap = () => (c.spec.barMs || 0) * 0.08;
    return uPlot.paths.bars({
      disp: {
        x0: { unit: 1, values: (u) => u.data[0].map((t) => t + gap() / 2) },
        size: { unit: 1, values: (u) => u.data[0].map(() => (c.spec.barMs || 0) - gap()) },
      },
    });
  }

  function seriesOptions(c, s) {
    const out = {
      label: s.label, stroke: s.color, width: 1.6, spanGaps: false,
      // The legend shows the API's exact text for the hovered point, not the float; with
      // no point hovered, a time chart's latest one (what a live view is read for).
      value: (u, v, si, idx) => {
        const raw = (c.raw && c.raw[si - 1]) || [];
        let text = idx !== null && idx !== undefined ? raw[idx] : null;
        if ((idx === null || idx === undefined) && c.spec.x !== "category") {
          text = [...raw].reverse().find((t) => t !== null && t !== undefined);
        }
        return text === null || text === undefined ? "—" : String(text);
      },
    };
    if (s.kind === "windowBars") {
      Object.assign(out, { paths: windowBars(c), fill: s.color, width: 0, points: { show: false } });
    } else if (s.kind === "barLeft" || s.kind === "barRight") {
      // Two bars per category, either side of its tick (cost | billed).
      const align = s.kind === "barLeft" ? -1 : 1;
      Object.assign(out, { paths: uPlot.paths.bars({ size: [0.38, 70], align }), fill: s.color, width: 0, points: { show: false } });
    } else if (s.kind === "step") {
      Object.assign(out, { paths: uPlot.paths.stepped({ align: 1 }), fill: s.color + "1f", width: 2, points: { show: false } });
    } else if (s.kind === "points") {
      // Markers only: no line between them.
      Object.assign(out, { paths: () => null, points: { show: true, space: 0, size: 11, width: 2, stroke: "#ffffff", fill: s.color } });
    } else {
      Object.assign(out, { points: { show: true, size: 5, fill: s.color } });
    }
    return out;
  }

  // Bars and balances read against zero; a flat series still gets some height.
  function yRange(u, min, max) {
    if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
    let lo = Math.min(0, min), hi = Math.max(0, max);
    if (lo === hi) hi = lo + 1;
    const pad = (hi - lo) * 0.08;
    return [lo < 0 ? lo - pad : 0, hi > 0 ? hi + pad : 0];
  }

  // Dashed verticals at ledger entries worth seeing (grants, top-ups) across the plot.
  function drawMarkers(u, c) {
    const marks = c.spec.markers || [];
    if (!marks.length) return;
    const ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const m of marks) {
      const x = Math.round(u.valToPos(m.t, "x", true));
      if (x < left || x > left + width) continue;
      ctx.strokeStyle = m.color;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
    }
    ctx.restore();
  }

  function options(c) {
    const spec = c.spec, time = spec.x !== "category";
    const xSeries = time
      ? { label: "time", value: (u, v) => (v === null ? "latest" : ML.fullTime(v, c.spec.tz)) }
      : { label: spec.xLabel || "", value: (u, v) => (v === null ? "—" : c.spec.categories[v] || "") };
    return {
      width: widthOf(c.el),
      height: spec.height,
      ms: 1, // x values are epoch milliseconds, as the API prints times
      tzDate: (ts) => uPlot.tzDate(new Date(ts), c.spec.tz || "UTC"),
      series: [xSeries, ...spec.series.map((s) => seriesOptions(c, s))],
      scales: {
        x: time
          ? { time: true, range: (u, min, max) => c.spec.xRange || [min, max] }
          : { time: false, range: () => [-0.5, Math.max(1, c.spec.categories.length) - 0.5] },
        y: { range: yRange },
      },
      axes: [
        time ? { ...AXIS } : {
          ...AXIS, grid: { show: false },
          splits: () => c.spec.categories.map((_, i) => i),
          values: (u, splits) => splits.map((i) => c.spec.categories[i] || ""),
        },
        { ...AXIS, size: 56, values: (u, splits) => splits.map((v) => (spec.yFmt || ML.shortNum)(v)) },
      ],
      // No drag-to-zoom: the next refresh would undo it every few seconds.
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [(u) => drawMarkers(u, c)] },
    };
  }

  /* Draws chart `id` into `el`.
     spec: {height, x: "time"|"category", tz, xRange: [ms, ms], barMs, categories, markers,
            series: [{label, color, kind: "line"|"step"|"points"|"windowBars"|"barLeft"|"barRight"}]}
     data: uPlot's [xs, ys1, ys2, ...] (numbers or null); raw: [texts1, texts2, ...], the
     API's strings for each plotted point (what the legend shows). */
  function draw(id, el, spec, data, raw) {
    spec = { height: 200, tz: "UTC", ...spec };
    const sig = JSON.stringify([spec.x, spec.height, spec.series.map((s) => [s.label, s.kind, s.color])]);
    let c = charts[id];
    if (c && (c.sig !== sig || c.el !== el || !el.contains(c.u.root))) {
      clear(id);
      c = null;
    }
    if (!c) {
      c = { el, sig, spec, raw };
      el.innerHTML = "";
      c.u = new uPlot(options(c), data, el);
      charts[id] = c;
      resized.observe(el);
    } else {
      Object.assign(c, { spec, raw });
      c.u.setData(data); // re-ranges the scales through the range functions above
    }
    return c.u;
  }

  function clear(id, message) {
    const c = charts[id];
    if (c) {
      resized.unobserve(c.el);
      c.u.destroy();
      delete charts[id];
      if (message !== undefined) c.el.innerHTML = `<div class="empty">${ML.esc(message)}</div>`;
    }
  }

  // What a test (or a curious operator in the console) can read back: every chart with its
  // series labels, x values, plotted numbers and the API's exact strings.
  window.meterline = window.meterline || {};
  Object.assign(window.meterline, {
    charts,
    snapshot() {
      const out = {};
      for (const [id, c] of Object.entries(charts)) {
        out[id] = {
          labels: c.u.series.slice(1).map((s) => s.label),
          x: Array.from(c.u.data[0] || []),
          plotted: c.u.data.slice(1).map((ys) => Array.from(ys)),
          raw: c.raw,
          categories: c.spec.categories || null,
          markers: c.spec.markers || [],
          // On the page, not just built: a chart whose card was replaced is not drawn.
          drawn: document.body.contains(c.u.root) && Boolean(c.u.root.querySelector("canvas")),
        };
      }
      return out;
    },
  });

  Object.assign(ML, { COLORS, draw, clear, chartIds: () => Object.keys(charts) });
})(window.ML);
