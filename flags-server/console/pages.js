// The console's pages: each reads the JSON API and returns the DOM of the
// page (nothing is computed here that the API does not say; numbers are
// only formatted). What a page keeps between renders (filters, the try-it
// form) lives in `kept`, so a live update re-renders without losing it.

import { api } from "./api.js";
import { h, raw } from "./dom.js";
import { liftChart, pValueChart } from "./charts.js";

const kept = {
  flagFilter: "",
  stateFilter: "all",
  tryIt: new Map(), // flag -> { key, attrs, result, error }
};

// ---------------------------------------------------------------- formatting

const dash = "–";

function fixed(x, digits = 4) {
  return x === null || x === undefined ? dash : x.toFixed(digits);
}

function pValue(p) {
  if (p === null || p === undefined) return dash;
  return p < 0.0001 ? p.toExponential(2) : p.toFixed(4);
}

function percent(x, digits = 2) {
  return x === null || x === undefined ? dash : `${(x * 100).toFixed(digits)}%`;
}

function interval(ci, format) {
  if (!ci) return dash;
  const lower = ci.lower === null ? "−∞" : format(ci.lower);
  const upper = ci.upper === null ? "+∞" : format(ci.upper);
  return `[${lower}, ${upper}]`;
}

function when(text) {
  return text ? h("time", { datetime: text }, text) : dash;
}

function count(n) {
  return n.toLocaleString("en-US");
}

function json(value) {
  return JSON.stringify(value);
}

const flagLink = (key) => h("a", { href: `#/flags/${encodeURIComponent(key)}` }, key);
const readoutLink = (flag, text = flag) =>
  h("a", { href: `#/experiments/${encodeURIComponent(flag)}` }, text);

// ---------------------------------------------------------------- flags

/** The state labels of a flag: words, so colour is never the only cue. */
function stateBadges(flag) {
  const badges = [];
  if (flag.killed) {
    badges.push(badge("killed", `killed by ${flag.killed_by}`));
  } else {
    badges.push(badge("enabled", "enabled"));
  }
  if (flag.stale) badges.push(badge("stale", "stale"));
  if (flag.overridden_to !== null) {
    badges.push(badge("overridden", `overridden to ${flag.overridden_to}`));
  }
  return h("span", { class: "badges", "data-state": flagStates(flag).join(" ") }, badges);
}

function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

function flagStates(flag) {
  const states = [flag.killed ? "killed" : "enabled"];
  if (flag.stale) states.push("stale");
  if (flag.overridden_to !== null) states.push("overridden");
  return states;
}

function actionText(rule) {
  if (rule.action === "split") {
    const arms = rule.arms.map((arm) => `${arm.variant} ${arm.percent}%`).join(" / ");
    return `split ${arms}${rule.experiment ? " (experiment)" : ""}`;
  }
  if (rule.rollout_percent !== null) return `serve ${rule.variant} to ${rule.rollout_percent}%`;
  if (rule.schedule.length > 0) {
    const steps = rule.schedule.map((step) => `${step.rollout_percent}% from ${step.at}`);
    return `serve ${rule.variant} on a schedule: ${steps.join(", ")}`;
  }
  return `serve ${rule.variant}`;
}

function targeting(rule) {
  const tests = [
    ...rule.segments.map((segment) => `in segment ${segment}`),
    ...rule.conditions.map((condition) => condition.text),
  ];
  return tests.length > 0 ? tests.join(" and ") : "everyone";
}

function ruleTitle(rule) {
  return rule.name === null ? `#${rule.index}` : `#${rule.index} “${rule.name}”`;
}

function ruleSummary(rule) {
  return h(
    "li",
    { "data-line": rule.line },
    h("span", { class: "line" }, `line ${rule.line}`),
    " ",
    ruleTitle(rule),
    `: ${targeting(rule)} → ${actionText(rule)}`,
  );
}

function variantCounts(flag) {
  return h(
    "ul",
    { class: "plain" },
    Object.entries(flag.variants).map(([name, value]) =>
      h(
        "li",
        { "data-variant": name, "data-evaluations": flag.evaluations[name] ?? 0 },
        h("code", {}, name),
        ` = ${json(value)}: `,
        h("span", { class: "count" }, count(flag.evaluations[name] ?? 0)),
        " evaluations",
      ),
    ),
  );
}

/** Kill or Revive, whichever applies; nothing for a flag the file disables. */
function killButton(flag, ui) {
  if (!flag.killed) {
    return h(
      "button",
      { type: "button", class: "danger", onclick: () => ui.kill(flag.key) },
      "Kill",
      h("span", { class: "visually-hidden" }, ` ${flag.key}`),
    );
  }
  if (flag.killed_by === "file") return h("span", { class: "note" }, "disabled in the file");
  return h(
    "button",
    { type: "button", onclick: () => ui.revive(flag.key) },
    "Revive",
    h("span", { class: "visually-hidden" }, ` ${flag.key}`),
  );
}

function matchesFilters(flag) {
  const name = kept.flagFilter.trim().toLowerCase();
  if (name && !flag.key.toLowerCase().includes(name)) return false;
  return kept.stateFilter === "all" || flagStates(flag).includes(kept.stateFilter);
}

function flagRows(list, ui) {
  return list.flags.filter(matchesFilters).map((flag) =>
    h(
      "tr",
      { "data-flag": flag.key },
      h("th", { scope: "row" }, flagLink(flag.key), flag.description ? h("p", { class: "note" }, flag.description) : null),
      h("td", {}, stateBadges(flag)),
      h("td", {}, flag.type),
      h("td", {}, variantCounts(flag)),
      h(
        "td",
        {},
        flag.rules.length > 0
          ? h("ol", { class: "plain rules" }, flag.rules.map(ruleSummary))
          : h("span", { class: "note" }, `no rules: serves its default (line ${flag.line})`),
      ),
      h("td", {}, killButton(flag, ui)),
    ),
  );
}

async function flagsPage(_parts, _query, ui) {
  const list = await api("/v1/flags");
  const body = h("tbody", {}, flagRows(list, ui));
  const caption = h("caption", {});
  const recount = () => {
    body.replaceChildren(...flagRows(list, ui));
    caption.textContent = `${body.rows.length} of ${list.flags.length} flags, config ${list.config_version}`;
  };
  recount();
  const filters = h(
    "form",
    { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
    h("label", { for: "flag-filter" }, "Name contains"),
    h("input", {
      id: "flag-filter",
      type: "search",
      value: kept.flagFilter,
      oninput: (event) => {
        kept.flagFilter = event.target.value;
        recount();
      },
    }),
    h("label", { for: "state-filter" }, "State"),
    h(
      "select",
      {
        id: "state-filter",
        onchange: (event) => {
          kept.stateFilter = event.target.value;
          recount();
        },
      },
      ["all", "enabled", "killed", "stale", "overridden"].map((state) =>
        h("option", { value: state, selected: state === kept.stateFilter }, state),
      ),
    ),
  );
  return [
    h("h1", {}, "Flags"),
    filters,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "flags-table" },
        caption,
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Flag", "State", "Type", "Variants: evaluations since start", "Rules (in order)", "Action"].map((title) =>
              h("th", { scope: "col" }, title),
            ),
          ),
        ),
        body,
      ),
    ),
  ];
}

// ---------------------------------------------------------------- one flag

/** `name=value` lines as `flags eval --attr` reads them; `name:=JSON` is exact. */
function parseAttributes(text) {
  const context = {};
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    const exact = line.indexOf(":=");
    const equals = line.indexOf("=");
    if (equals <= 0) throw new Error(`line ${index + 1}: expected name=value, got “${line}”`);
    if (exact > 0 && exact < equals) {
      const name = line.slice(0, exact).trim();
      try {
        context[name] = JSON.parse(line.slice(exact + 2));
      } catch (error) {
        throw new Error(`line ${index + 1}: ${name}:= needs a JSON value (${error.message})`);
      }
      return;
    }
    const name = line.slice(0, equals).trim();
    const value = line.slice(equals + 1).trim();
    const number = Number(value);
    if (value === "true" || value === "false") context[name] = value === "true";
    else if (value !== "" && Number.isFinite(number)) context[name] = number;
    else context[name] = value;
  });
  return context;
}

function traceRow(step) {
  const cell = (text) => h("td", {}, text);
  const rule = step.rule === undefined ? dash : `#${step.rule}`;
  const line = step.line === undefined ? dash : String(step.line);
  switch (step.step) {
    case "prerequisite":
      return h("tr", {}, cell(dash), cell(dash), cell(`requires ${step.flag} = ${step.required}`), cell(`served ${step.served ?? "nothing"}: ${step.met ? "met" : "not met"}`));
    case "segment":
      return h("tr", {}, cell(dash), cell(rule), cell(`in segment ${step.name}?`), cell(step.matched ? "yes" : "no"));
    case "condition":
      return h("tr", {}, cell(line), cell(rule), cell(step.text), cell(step.held ? "held" : "did not hold"));
    default: {
      const detail =
        step.bucket === undefined
          ? step.outcome.replaceAll("_", " ")
          : `${step.outcome.replaceAll("_", " ")} (bucket ${step.bucket}${step.threshold === undefined ? "" : `, threshold ${step.threshold}`})`;
      return h("tr", {}, cell(line), cell(rule), cell("rule decided?"), cell(detail));
    }
  }
}

function evaluationResult(result) {
  const rule = result.rule === null ? dash : result.rule.name === null ? `#${result.rule.index}` : `#${result.rule.index} “${result.rule.name}”`;
  return [
    h(
      "dl",
      { class: "facts", id: "try-result", "data-variant": raw(result.variant), "data-reason": result.reason },
      // A disabled flag without off_variant serves no value (not an error).
      h("dt", {}, "Value"), h("dd", {}, result.value === null && result.error === null ? "none: the caller's default applies" : h("code", {}, json(result.value))),
      h("dt", {}, "Variant"), h("dd", {}, result.variant ?? dash),
      h("dt", {}, "Reason"), h("dd", {}, result.reason, result.killed_by ? ` (killed by ${result.killed_by})` : ""),
      h("dt", {}, "Rule"), h("dd", {}, rule),
      h("dt", {}, "Bucket"), h("dd", {}, result.bucket ?? dash),
      h("dt", {}, "Enrolled"), h("dd", {}, result.enrolled ? `yes, as ${result.arm ?? result.variant}` : "no"),
    ),
    h(
      "table",
      {},
      h("caption", {}, "Explanation: every step tried, with its line in the file"),
      h("thead", {}, h("tr", {}, ["Line", "Rule", "Step", "Result"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, result.trace.map(traceRow)),
    ),
  ];
}

function tryItForm(key) {
  const state = kept.tryIt.get(key) ?? { key: "", attrs: "", result: null, error: null };
  kept.tryIt.set(key, state);
  const output = h("section", { "aria-live": "polite", class: "try-output" });
  const show = () => {
    if (state.error) output.replaceChildren(h("p", { class: "error", role: "alert" }, state.error));
    else if (state.result) output.replaceChildren(...evaluationResult(state.result));
    else output.replaceChildren();
  };
  show();
  const submit = async (event) => {
    event.preventDefault();
    try {
      const context = { ...parseAttributes(state.attrs), targetingKey: state.key };
      // exposure=false: trying a context must not enrol a test unit in an experiment.
      state.result = await api(`/v1/evaluate/${encodeURIComponent(key)}?explain=true&exposure=false`, {
        method: "POST",
        body: { context },
      });
      state.error = null;
    } catch (error) {
      state.result = null;
      state.error = error.message;
    }
    show();
  };
  return [
    h(
      "form",
      { class: "try-it", onsubmit: submit },
      h("label", { for: "try-key" }, "Targeting key"),
      h("input", { id: "try-key", value: state.key, autocomplete: "off", oninput: (e) => (state.key = e.target.value) }),
      h("label", { for: "try-attrs" }, "Attributes, one per line"),
      h("textarea", { id: "try-attrs", rows: 4, "aria-describedby": "try-attrs-help", oninput: (e) => (state.attrs = e.target.value) }, state.attrs),
      h("p", { id: "try-attrs-help", class: "note" }, "name=value (true/false and numbers are typed, the rest are strings); name:=JSON for an exact value, such as roles:=[\"a\",\"b\"]. Trying a context records no exposure, so it adds no unit to an experiment."),
      h("button", { type: "submit" }, "Evaluate"),
    ),
    output,
  ];
}

async function flagPage([, key], _query, ui) {
  const list = await api("/v1/flags");
  const flag = list.flags.find((f) => f.key === key);
  if (!flag) return [h("h1", {}, key), h("p", { class: "error" }, `The served config has no flag “${key}”.`)];
  return [
    h("p", { class: "crumbs" }, h("a", { href: "#/flags" }, "Flags"), " / ", key),
    h("h1", {}, key, " ", stateBadges(flag)),
    flag.description ? h("p", {}, flag.description) : null,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Type"), h("dd", {}, flag.type),
      h("dt", {}, "Defined at"), h("dd", {}, `line ${flag.line}`),
      h("dt", {}, "Version"), h("dd", {}, h("code", {}, flag.version)),
      h("dt", {}, "Experiments"), h("dd", {}, flag.experiments > 0 ? readoutLink(key, "readout") : "none"),
      h("dt", {}, "Guardrails"), h("dd", {}, flag.guardrails > 0 ? h("a", { href: "#/guardrails" }, String(flag.guardrails)) : "none"),
      h("dt", {}, "Action"), h("dd", {}, killButton(flag, ui)),
    ),
    h("h2", {}, "Variants"),
    variantCounts(flag),
    h("h2", {}, "Rules, in the order they are tried"),
    flag.rules.length === 0
      ? h("p", {}, "No rules: every unit gets the default.")
      : h(
          "ol",
          { class: "plain rule-list" },
          flag.rules.map((rule) =>
            h(
              "li",
              { "data-line": rule.line },
              h("h3", {}, ruleTitle(rule), " ", h("span", { class: "line" }, `line ${rule.line}`)),
              h(
                "ul",
                {},
                rule.segments.map((segment) => h("li", {}, `in segment ${segment}`)),
                rule.conditions.map((condition) =>
                  h("li", {}, h("span", { class: "line" }, `line ${condition.line}`), " ", h("code", {}, condition.text)),
                ),
                h("li", {}, actionText(rule)),
              ),
            ),
          ),
        ),
    h("h2", {}, "Try it"),
    tryItForm(key),
  ];
}

// ---------------------------------------------------------------- experiments

async function readoutOrError(flag, phase) {
  const query = phase ? `?phase=${encodeURIComponent(phase)}` : "";
  try {
    return { readout: await api(`/v1/experiments/${encodeURIComponent(flag)}/results${query}`) };
  } catch (error) {
    if (error.status === 401 || error.status === 403) throw error;
    return { error: error.message };
  }
}

function srmLabel(readout) {
  const srm = readout.sample_ratio_mismatch;
  if (!srm) return `not checked: ${readout.srm_skipped ?? "no split known"}`;
  return srm.mismatch ? "MISMATCH" : "ok";
}

function progressOf(metric) {
  if (metric.progress === undefined || metric.progress === null) return null;
  const shown = Math.min(metric.progress, 1);
  return h(
    "div",
    { class: "progress" },
    h("label", { for: `progress-${metric.metric}` }, `${metric.metric}: `),
    h("progress", { id: `progress-${metric.metric}`, max: 1, value: shown }, percent(metric.progress, 0)),
    ` ${percent(metric.progress, 0)} of ${count(metric.plan.units_per_arm)} units per arm`,
  );
}

async function experimentsPage(_parts, _query) {
  const list = await api("/v1/experiments");
  const readouts = await Promise.all(list.experiments.map((e) => readoutOrError(e.flag)));
  const rows = list.experiments.map((experiment, i) => {
    const { readout, error } = readouts[i];
    const cells = readout
      ? [
          h("td", {}, `${readout.phase.number} of ${readout.phase.phases}`),
          h("td", {}, h("ul", { class: "plain" }, readout.arms.map((arm) => h("li", {}, `${arm.variant}: ${count(arm.units)}`)))),
          h("td", {}, srmLabel(readout)),
          h(
            "td",
            {},
            readout.metrics.map(progressOf).filter(Boolean).length > 0
              ? readout.metrics.map(progressOf)
              : h("span", { class: "note" }, "no planned sample size (set mde on the experiment)"),
          ),
        ]
      : [h("td", { colspan: 4, class: "error" }, error)];
    return h(
      "tr",
      { "data-flag": experiment.flag },
      h("th", { scope: "row" }, readoutLink(experiment.flag)),
      h("td", {}, experiment.status),
      h("td", {}, experiment.arms.map((arm) => `${arm.variant} ${arm.percent}%`).join(" / "), h("br"), h("span", { class: "note" }, `traffic ${experiment.traffic_percent}%${experiment.layer ? `, layer ${experiment.layer.name} [${experiment.layer.range_percent.join("%, ")}%)` : ""}`)),
      ...cells,
    );
  });
  return [
    h("h1", {}, "Experiments"),
    list.experiments.length === 0
      ? h("p", {}, "No flag runs an experiment.")
      : h(
          "div",
          { class: "scroll" },
          h(
            "table",
            {},
            h("caption", {}, `${list.experiments.length} experiments`),
            h("thead", {}, h("tr", {}, ["Flag", "Status", "Split", "Phase", "Units per arm", "Sample ratio", "Progress to planned size"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, rows),
          ),
        ),
  ];
}

function srmBanner(readout) {
  const srm = readout.sample_ratio_mismatch;
  if (!srm || !srm.mismatch) return null;
  return h(
    "section",
    { class: "srm", role: "alert", id: "srm-banner" },
    h("h2", {}, "Sample ratio mismatch: do not trust these results"),
    h(
      "p",
      {},
      `Units did not arrive in the proportions the split assigns (p = ${pValue(srm.p_value)}${srm.reason ? `; ${srm.reason}` : ""}). `,
      "Assignment or logging is broken, and no metric below can be trusted until that is explained.",
    ),
  );
}

function comparisonRow(metric, comparison, arm) {
  const c = comparison;
  return h(
    "tr",
    {
      class: "comparison",
      "data-metric": metric.metric,
      "data-arm": c.arm,
      "data-lift": raw(c.relative_lift),
      "data-lift-lower": raw(c.relative_lift_ci?.lower),
      "data-lift-upper": raw(c.relative_lift_ci?.upper),
      "data-sequential-lower": raw(c.sequential.ci?.lower),
      "data-sequential-upper": raw(c.sequential.ci?.upper),
      "data-sequential-lift-lower": raw(c.sequential_relative_lift.ci?.lower),
      "data-sequential-lift-upper": raw(c.sequential_relative_lift.ci?.upper),
      "data-sequential-p": raw(c.sequential.p_value),
    },
    h("th", { scope: "row" }, c.arm),
    h("td", {}, arm ? count(arm.units) : dash),
    h("td", {}, fixed(arm?.mean)),
    h("td", {}, percent(c.relative_lift)),
    h("td", {}, interval(c.relative_lift_ci, (x) => percent(x))),
    h("td", {}, c.sequential_relative_lift.ci ? interval(c.sequential_relative_lift.ci, (x) => percent(x)) : `none: ${c.sequential_relative_lift.undefined_because}`),
    h("td", {}, pValue(c.p_value)),
    h("td", {}, pValue(c.adjusted_p_value)),
    h("td", {}, fixed(c.difference)),
    h("td", {}, interval(c.sequential.ci, (x) => fixed(x))),
    h("td", {}, pValue(c.sequential.p_value)),
    h("td", {}, percent(c.chance_to_beat_control, 1)),
  );
}

function metricSection(metric) {
  const heading = h("h2", {}, `Metric: ${metric.metric}`);
  if (metric.error !== undefined) return h("section", { class: "metric" }, heading, h("p", { class: "error" }, metric.error));
  const analysis = metric.analysis;
  const control = analysis.arms[0];
  const arms = new Map(analysis.arms.map((arm) => [arm.name, arm]));
  return h(
    "section",
    { class: "metric", "data-metric": metric.metric },
    heading,
    h("p", {}, `${analysis.metric} metric; control arm “${control.name}”: ${count(control.units)} units, mean ${fixed(control.mean)}.`),
    metric.plan ? h("p", {}, progressOf(metric)) : null,
    liftChart(metric.metric, analysis),
    pValueChart(metric.metric, metric.p_value_history ?? [], analysis.comparisons, analysis.alpha),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h("caption", {}, `Each arm against the control arm “${control.name}” (alpha ${analysis.alpha}, ${analysis.correction} correction)`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "Arm",
              "Units",
              "Mean",
              "Relative lift",
              "95% CI (fixed horizon)",
              "Always-valid 95% CI of the lift",
              "p-value",
              "Adjusted p",
              "Difference",
              "Always-valid 95% CI of the difference",
              "Always-valid p (running minimum over looks)",
              "Chance to beat control",
            ].map((t) => h("th", { scope: "col" }, t)),
          ),
        ),
        h("tbody", {}, analysis.comparisons.map((c) => comparisonRow(metric, c, arms.get(c.arm)))),
      ),
    ),
  );
}

async function readoutPage([, flag], query) {
  const phase = query.get("phase");
  const { readout, error } = await readoutOrError(flag, phase);
  const crumbs = h("p", { class: "crumbs" }, h("a", { href: "#/experiments" }, "Experiments"), " / ", flag);
  if (!readout) return [crumbs, h("h1", {}, `Experiment on ${flag}`), h("p", { class: "error" }, error)];
  const phases = Array.from({ length: readout.phase.phases }, (_, i) => i + 1);
  const srm = readout.sample_ratio_mismatch;
  return [
    crumbs,
    h("h1", {}, `Experiment on `, flagLink(flag)),
    srmBanner(readout),
    h(
      "form",
      { class: "filters", onsubmit: (event) => event.preventDefault() },
      h("label", { for: "phase" }, "Analysis phase"),
      h(
        "select",
        {
          id: "phase",
          onchange: (event) => {
            location.hash = `#/experiments/${encodeURIComponent(flag)}?phase=${event.target.value}`;
          },
        },
        phases.map((n) =>
          h("option", { value: n, selected: n === readout.phase.number }, n === readout.phase.phases ? `${n} (current)` : String(n)),
        ),
      ),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Phase"), h("dd", {}, `${readout.phase.number} of ${readout.phase.phases} (design ${readout.phase.design.replaceAll("_", " ")})`),
      h("dt", {}, "Started"), h("dd", {}, when(readout.phase.started)),
      h("dt", {}, "Ended"), h("dd", {}, readout.phase.ended ? when(readout.phase.ended) : "running"),
      readout.phase.stopped_at ? [h("dt", {}, "Stopped"), h("dd", {}, when(readout.phase.stopped_at))] : null,
      h("dt", {}, "Units"), h("dd", {}, `${count(readout.units)} (${count(readout.multiple_exposures)} exposed to several arms, excluded)`),
      h("dt", {}, "Sample ratio"), h("dd", { id: "srm-state" }, srm ? `${srm.mismatch ? "MISMATCH" : "ok"} (p = ${pValue(srm.p_value)})` : `not checked: ${readout.srm_skipped}`),
    ),
    h(
      "table",
      {},
      h("caption", {}, "Units per arm"),
      h("thead", {}, h("tr", {}, ["Arm", "Split", "Expected units", "Units"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        readout.arms.map((arm, i) =>
          h(
            "tr",
            { "data-arm": arm.variant, "data-units": arm.units },
            h("th", { scope: "row" }, arm.variant, i === 0 ? " (control arm)" : ""),
            h("td", {}, arm.percent === null ? "unknown" : `${arm.percent}%`),
            h("td", {}, srm ? fixed(srm.expected_units[i], 1) : dash),
            h("td", {}, count(arm.units)),
          ),
        ),
      ),
    ),
    readout.metrics.map(metricSection),
  ];
}

// ---------------------------------------------------------------- guardrails

function figures(arm) {
  if (arm.control) {
    return `control ${arm.control.variant}: ${count(arm.control.units)} units, mean ${fixed(arm.control.mean)}; treatment ${arm.treatment.variant}: ${count(arm.treatment.units)} units, mean ${fixed(arm.treatment.mean)}`;
  }
  return `${count(arm.units_with_event)} of ${count(arm.treatment_units)} treatment units had the event (${percent(arm.rate)})`;
}

function limits(guardrail) {
  if (guardrail.test === "relative") {
    return `relative: ${guardrail.direction} of at most ${percent(guardrail.max_increase, 1)}, alpha ${guardrail.alpha}`;
  }
  return `absolute: rate at most ${percent(guardrail.max_rate, 1)} over ${guardrail.window_seconds} s`;
}

function guardrailTable(flag, guardrail) {
  return h(
    "table",
    { "data-flag": flag.flag, "data-metric": guardrail.metric },
    h(
      "caption",
      {},
      `${guardrail.metric} (line ${guardrail.line}): ${limits(guardrail)}; at least ${count(guardrail.min_units)} units; action ${guardrail.action}; state `,
      h("strong", {}, guardrail.decision ?? "not checked yet"),
      guardrail.error ? h("span", { class: "error" }, ` — last check failed: ${guardrail.error}`) : null,
    ),
    h("thead", {}, h("tr", {}, ["Arm", "Decision", "Since", "Last checked", "Figures", "p-value / above since", "Phase"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      guardrail.arms.length === 0
        ? h("tr", {}, h("td", { colspan: 7 }, "No check has compared arms yet."))
        : guardrail.arms.map((arm) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, arm.arm ?? "pooled treatment"),
              h("td", {}, badge(arm.decision, arm.decision)),
              h("td", {}, when(arm.decided_at)),
              h("td", {}, when(arm.checked_at)),
              h("td", {}, figures(arm)),
              h("td", {}, arm.p_value !== undefined ? pValue(arm.p_value) : arm.above_since ? when(arm.above_since) : dash),
              h("td", {}, String(arm.phase)),
            ),
          ),
    ),
  );
}

function tripRow(trip) {
  const ended = trip.action === "alert" ? "alert only: nothing to revive" : trip.revived_at ? ["revived by ", trip.revived_by ?? "?", " at ", when(trip.revived_at)] : h("strong", {}, "in force");
  return h(
    "tr",
    { class: "trip", "data-flag": trip.flag, "data-metric": trip.metric, "data-action": trip.action, "data-revived": trip.revived_at ? "yes" : "no" },
    h("th", { scope: "row" }, when(trip.tripped_at)),
    h("td", {}, flagLink(trip.flag)),
    h("td", {}, trip.metric),
    h("td", {}, trip.arm ?? "pooled treatment"),
    h("td", {}, badge(trip.action, trip.action)),
    h("td", { class: "trip-figures" }, trip.reason),
    h("td", {}, ended),
  );
}

function tripHistory(overview) {
  if (overview.trips_error) return h("p", { class: "error" }, `The trip history cannot be read: ${overview.trips_error}`);
  if (overview.trips.length === 0) return h("p", {}, "No guardrail has tripped.");
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { id: "trips" },
      h("caption", {}, "Every trip and alert, newest first (the last 100 per flag), with the figures at the trip and the revive that ended a kill"),
      h("thead", {}, h("tr", {}, ["When", "Flag", "Metric", "Arm", "Action", "Figures at the trip", "Ended"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, overview.trips.map(tripRow)),
    ),
  );
}

async function guardrailsPage() {
  const [overview, status] = await Promise.all([api("/v1/guardrails"), api("/v1/status")]);
  const trips = (status.killed_flags ?? []).filter((k) => String(k.runtime_kill?.killed_by ?? "").startsWith("guardrail:"));
  return [
    h("h1", {}, "Guardrails"),
    h("p", {}, `Checked every ${overview.interval_seconds} s; last check began `, when(overview.last_check), "."),
    overview.store_error ? h("p", { class: "error" }, `States are not stored: ${overview.store_error}`) : null,
    overview.flags.length === 0 ? h("p", {}, "No flag has guardrails.") : null,
    overview.flags.map((flag) =>
      h(
        "section",
        { class: "guarded", "data-flag": flag.flag },
        h("h2", {}, flagLink(flag.flag), " ", flag.killed_by ? badge("killed", `killed by ${flag.killed_by}`) : badge("enabled", "enabled"), flag.checked ? "" : h("span", { class: "note" }, " not checked while killed")),
        flag.guardrails.map((guardrail) => h("div", { class: "scroll" }, guardrailTable(flag, guardrail))),
      ),
    ),
    h("h2", {}, "Trips in force"),
    trips.length === 0
      ? h("p", {}, "No flag is killed by a guardrail.")
      : h(
          "ul",
          {},
          trips.map((trip) =>
            h("li", {}, flagLink(trip.flag), ` killed by ${trip.runtime_kill.killed_by} since `, when(trip.runtime_kill.since), `: ${trip.runtime_kill.reason ?? ""}`),
          ),
        ),
    h("h2", {}, "Trip history"),
    tripHistory(overview),
  ];
}

// ---------------------------------------------------------------- status

function reloadRow(attempt) {
  const problems = [
    ...(attempt.error ? [attempt.error] : []),
    ...(attempt.errors ?? []).map((e) => e.problem),
  ];
  return h(
    "tr",
    { "data-outcome": attempt.outcome },
    h("th", { scope: "row" }, when(attempt.at)),
    h("td", {}, attempt.trigger),
    h("td", {}, badge(attempt.outcome, attempt.outcome)),
    h("td", {}, attempt.applied ? "yes" : "no"),
    h("td", {}, problems.length === 0 ? "none" : h("ul", { class: "plain problems" }, problems.map((p) => h("li", {}, h("code", {}, p))))),
  );
}

async function statusPage() {
  const status = await api("/v1/status");
  const events = status.events;
  return [
    h("h1", {}, "Status"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Config version"), h("dd", {}, h("code", { id: "config-version" }, status.config_version)),
      h("dt", {}, "Loaded at"), h("dd", {}, when(status.loaded_at)),
      h("dt", {}, "Flags"), h("dd", {}, `${status.flags} (${status.stale} stale, ${status.killed} killed)`),
      h("dt", {}, "Event store"), h("dd", {}, events.available ? "available" : `UNAVAILABLE: ${events.error ?? "see the server's log"}`, `; ${count(events.queued_events)} events queued, ${count(events.dropped_exposures)} exposures dropped`),
      h("dt", {}, "Runtime kills"), h("dd", {}, status.kill_store.available ? "stored" : `NOT STORED (they last until a restart): ${status.kill_store.error ?? ""}`),
    ),
    h("h2", {}, "Latest reload attempts"),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "reloads" },
        h("caption", {}, "Newest first; every problem as file:line:column"),
        h("thead", {}, h("tr", {}, ["When", "Trigger", "Outcome", "Published", "Problems"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, (status.recent_reloads ?? [status.last_reload]).map(reloadRow)),
      ),
    ),
    h("h2", {}, "Stale flags"),
    (status.stale_flags ?? []).length === 0
      ? h("p", {}, "None: every flag is served from the file as it is.")
      : h("ul", {}, status.stale_flags.map((key) => h("li", {}, flagLink(key), " keeps its last good version"))),
    h("h2", {}, "Killed flags"),
    (status.killed_flags ?? []).length === 0
      ? h("p", {}, "None.")
      : h(
          "ul",
          {},
          status.killed_flags.map((k) =>
            h(
              "li",
              {},
              k.served ? flagLink(k.flag) : `${k.flag} (not in the served config)`,
              ` killed by ${k.killed_by ?? k.runtime_kill?.killed_by}`,
              k.runtime_kill ? [" since ", when(k.runtime_kill.since), k.runtime_kill.reason ? `: ${k.runtime_kill.reason}` : "", k.runtime_kill.persisted ? "" : " (not stored)"] : "",
            ),
          ),
        ),
    h("h2", {}, "Overrides"),
    (status.overrides ?? []).length === 0
      ? h("p", {}, "None.")
      : h("ul", {}, status.overrides.map((o) => h("li", {}, `${o.flag} forced to ${o.variant}`, o.problem ? `: NOT APPLIED, ${o.problem}` : ""))),
  ];
}

// ---------------------------------------------------------------- routes

/** Every page: which hash paths it answers, its title, and how it renders. */
export const routes = [
  { nav: "flags", matches: (p) => p.length === 1 && p[0] === "flags", title: () => "Flags", render: flagsPage },
  { nav: "flags", matches: (p) => p.length === 2 && p[0] === "flags", title: (p) => p[1], render: flagPage },
  { nav: "experiments", matches: (p) => p.length === 1 && p[0] === "experiments", title: () => "Experiments", render: experimentsPage },
  { nav: "experiments", matches: (p) => p.length === 2 && p[0] === "experiments", title: (p) => `Experiment on ${p[1]}`, render: readoutPage },
  { nav: "guardrails", matches: (p) => p.length === 1 && p[0] === "guardrails", title: () => "Guardrails", render: guardrailsPage },
  { nav: "status", matches: (p) => p.length === 1 && p[0] === "status", title: () => "Status", render: statusPage },
];
