// The readout's picture, drawn as SVG by hand: per treatment arm, the
// relative lift with its fixed-horizon 95% interval and with its
// always-valid 95% interval, each against a line at zero. The numbers are
// the API's; the table beside the chart gives them as text.

import { h, raw, s } from "./dom.js";

const WIDTH = 640;
const ROW = 30;
const TOP = 34;
const LABEL = 110;
const GAP = 24;
const PANEL = (WIDTH - LABEL - GAP - 10) / 2;

/** `[lower, upper]` of the values and 0, widened a little; open ends are left out. */
function domain(values) {
  const finite = values.filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  let lower = Math.min(0, ...finite);
  let upper = Math.max(0, ...finite);
  if (lower === upper) {
    lower -= 1;
    upper += 1;
  }
  const pad = (upper - lower) * 0.08;
  return [lower - pad, upper + pad];
}

function panel({ left, title, rows, format, kind }) {
  const [lower, upper] = domain(rows.flatMap((r) => [r.estimate, r.ci?.lower, r.ci?.upper]));
  const x = (value) => left + ((value - lower) / (upper - lower)) * PANEL;
  const bottom = TOP + rows.length * ROW;
  // An end's label is left out where it would run into the zero's.
  const clear = (end) => Math.abs(x(end) - x(0)) > 40;
  const parts = [
    s("text", { x: left + PANEL / 2, y: 14, class: "chart-title", "text-anchor": "middle" }, title),
    s("line", { x1: x(0), x2: x(0), y1: TOP - 8, y2: bottom, class: "zero" }),
    s("text", { x: x(0), y: bottom + 14, "text-anchor": "middle", class: "tick" }, "0"),
    clear(lower) && s("text", { x: left, y: bottom + 14, "text-anchor": "start", class: "tick" }, format(lower)),
    clear(upper) && s("text", { x: left + PANEL, y: bottom + 14, "text-anchor": "end", class: "tick" }, format(upper)),
  ];
  rows.forEach((row, i) => {
    const y = TOP + i * ROW + ROW / 2;
    if (row.ci) {
      const from = row.ci.lower === null ? left : x(row.ci.lower);
      const to = row.ci.upper === null ? left + PANEL : x(row.ci.upper);
      parts.push(
        s("line", {
          x1: from,
          x2: to,
          y1: y,
          y2: y,
          class: `ci ci-${kind}`,
          "data-arm": row.arm,
          "data-kind": kind,
          "data-lower": raw(row.ci.lower),
          "data-upper": raw(row.ci.upper),
        }),
        s("line", { x1: from, x2: from, y1: y - 6, y2: y + 6, class: `ci ci-${kind}` }),
        s("line", { x1: to, x2: to, y1: y - 6, y2: y + 6, class: `ci ci-${kind}` }),
      );
    } else {
      parts.push(s("text", { x: left + 4, y: y + 4, class: "tick", "data-arm": row.arm, "data-kind": kind }, row.reason ?? "no interval yet"));
    }
    if (row.estimate !== null && row.estimate !== undefined) {
      parts.push(s("circle", { cx: x(row.estimate), cy: y, r: 4, class: `estimate estimate-${kind}` }));
    }
  });
  return parts;
}

/** The chart of one metric's `analysis` (from `/v1/experiments/{flag}/results`). */
export function liftChart(metric, analysis) {
  const comparisons = analysis.comparisons;
  const height = TOP + comparisons.length * ROW + 22;
  const titleId = `chart-${metric}-title`;
  const percent = (x) => `${(x * 100).toFixed(1)}%`;
  const labels = comparisons.map((c, i) =>
    s("text", { x: LABEL - 8, y: TOP + i * ROW + ROW / 2 + 4, "text-anchor": "end", class: "arm-label" }, c.arm),
  );
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${height}`,
      role: "img",
      "aria-labelledby": titleId,
      class: "lift-chart",
      "data-metric": metric,
    },
    s(
      "title",
      { id: titleId },
      `${metric}: each arm's relative lift over control ${analysis.arms[0].name} with its fixed-horizon 95% interval, and with its always-valid 95% interval; the table below gives the numbers.`,
    ),
    labels,
    panel({
      left: LABEL,
      title: "Relative lift, 95% CI (fixed horizon)",
      rows: comparisons.map((c) => ({ arm: c.arm, estimate: c.relative_lift, ci: c.relative_lift_ci })),
      format: percent,
      kind: "fixed",
    }),
    panel({
      left: LABEL + PANEL + GAP,
      title: "Relative lift, always-valid 95% CI",
      rows: comparisons.map((c) => ({
        arm: c.arm,
        estimate: c.relative_lift,
        ci: c.sequential_relative_lift.ci,
        reason: c.sequential_relative_lift.undefined_because,
      })),
      format: percent,
      kind: "sequential",
    }),
  );
  return h(
    "figure",
    { class: "chart" },
    svg,
    h("figcaption", {}, "Dots are estimates; bars are 95% intervals; the vertical line is no effect. An interval that does not cross it is a verdict (the always-valid one, however often you look)."),
  );
}

const P_HEIGHT = 180;
const P_TOP = 24;
const P_LEFT = 56;
const P_RIGHT = 120;

/**
 * Each arm's always-valid p-value over the looks: the earlier looks'
 * running minima (`history`, one point per arm and minute, from the API)
 * and this look's, on a log scale down to the smallest, with `alpha` as a
 * line. Arms are told apart by their label and dash, not by colour alone.
 */
export function pValueChart(metric, history, comparisons, alpha) {
  const now = Date.now();
  const series = comparisons.map((c) => ({
    arm: c.arm,
    points: [
      ...history.filter((p) => p.arm === c.arm).map((p) => ({ time: Date.parse(p.time), p: p.p_value })),
      { time: now, p: c.sequential.p_value },
    ].filter((point) => Number.isFinite(point.p) && point.p > 0),
  }));
  const all = series.flatMap((line) => line.points);
  const floor = Math.floor(Math.log10(Math.min(alpha / 10, ...all.map((point) => point.p))));
  const times = all.map((point) => point.time);
  const [first, last] = [Math.min(now, ...times), Math.max(now, ...times)];
  const plot = WIDTH - P_LEFT - P_RIGHT;
  const x = (time) => (last === first ? P_LEFT + plot / 2 : P_LEFT + ((time - first) / (last - first)) * plot);
  const y = (p) => P_TOP + (Math.log10(p) / floor) * (P_HEIGHT - P_TOP - 20);
  const titleId = `pvalues-${metric}-title`;
  const parts = [
    s("title", { id: titleId }, `${metric}: each arm's always-valid p-value at every look so far (log scale), against alpha ${alpha}; it never goes up.`),
    s("line", { x1: P_LEFT, x2: P_LEFT + plot, y1: y(alpha), y2: y(alpha), class: "zero" }),
    s("text", { x: P_LEFT - 6, y: y(alpha) + 4, "text-anchor": "end", class: "tick" }, `α ${alpha}`),
    s("text", { x: P_LEFT - 6, y: y(1) + 4, "text-anchor": "end", class: "tick" }, "1"),
    s("text", { x: P_LEFT - 6, y: y(10 ** floor) + 4, "text-anchor": "end", class: "tick" }, `1e${floor}`),
  ];
  series.forEach((line, i) => {
    const dash = ["", "6 3", "2 3", "8 3 2 3"][i % 4];
    const coords = line.points.map((point) => `${x(point.time)},${y(point.p)}`).join(" ");
    parts.push(s("polyline", { points: coords, class: "p-line", "stroke-dasharray": dash, "data-arm": line.arm }));
    for (const point of line.points) {
      parts.push(s("circle", { cx: x(point.time), cy: y(point.p), r: 3, class: "p-point", "data-arm": line.arm, "data-p": raw(point.p) }));
    }
    const end = line.points[line.points.length - 1];
    if (end) {
      parts.push(s("text", { x: x(end.time) + 8, y: y(end.p) + 4 + i * 12, class: "arm-label" }, line.arm));
    }
  });
  return h(
    "figure",
    { class: "chart" },
    s("svg", { viewBox: `0 0 ${WIDTH} ${P_HEIGHT}`, role: "img", "aria-labelledby": titleId, class: "p-value-chart", "data-metric": metric }, parts),
    h("figcaption", {}, "The always-valid p-value at each look (one point per minute looked, then now), per arm: below the α line, the difference is significant however often you look."),
  );
}
