// The readout's picture, drawn as SVG by hand: per treatment arm, the
// relative lift with its fixed-horizon 95% interval, and the difference
// with its always-valid 95% interval, each against a line at zero. The
// numbers are the API's; the table beside the chart gives them as text.

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
      parts.push(s("text", { x: left + 4, y: y + 4, class: "tick" }, "no interval yet"));
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
  const plain = (x) => x.toPrecision(2);
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
      `${metric}: each arm's relative lift over control ${analysis.arms[0].name} with its fixed-horizon 95% interval, and its difference with the always-valid 95% interval; the table below gives the numbers.`,
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
      title: "Difference, always-valid 95% CI",
      rows: comparisons.map((c) => ({ arm: c.arm, estimate: c.difference, ci: c.sequential.ci })),
      format: plain,
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
