// bluegreen's dashboard (issue 12): plain JavaScript, no build step, charts by uPlot.
//
// Everything comes from the JSON under /-/api/ (the active slot answers it) and, for live
// traffic, from each slot's own counters at /-/slots/<slot>/api/slot, which NGINX sends to
// that slot whichever is active. Rates, error rates and p99 are computed here from two
// readings of those counters. Nothing on this page changes anything on the server.
"use strict";

(function () {
  const SLOTS = ["blue", "green"];
  const COLORS = { blue: "#2563eb", green: "#16a34a" };
  const LIVE_EVERY_MS = 2000;
  const STATUS_EVERY_MS = 5000;
  const LIVE_POINTS = 150; // 5 minutes at one reading every 2 s
  const STEP_COLORS = ["#60a5fa", "#34d399", "#fbbf24", "#f87171", "#a78bfa", "#f472b6", "#22d3ee", "#a3e635", "#fb923c"];
  // Fields the timeline shows in columns of their own; any other is shown in "details".
  const KNOWN = new Set(["time", "action", "outcome", "from_slot", "to_slot", "from_version", "to_version", "steps", "duration_ms", "reason", "gate", "rollout", "live"]);

  const $ = (id) => document.getElementById(id);
  const charts = {};
  const live = { t: [] };
  for (const slot of SLOTS) {
    live[slot] = { prev: null, rate: [], errors: [], p99: [], latest: null, down: null, model: null };
  }
  let status = null;
  let models = [];
  let records = [];
  let servedBy = null;
  let predictionsKey = null;
  const loaded = { status: false, history: false, models: false, predictions: false, live: false };

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const why = body && body.error ? body.error : response.statusText;
      throw new Error(`${path}: HTTP ${response.status}: ${why}`);
    }
    return { body, slot: response.headers.get("x-slot") };
  }

  const errors = new Map();
  function problem(source, error) {
    if (error) errors.set(source, String(error.message || error));
    else errors.delete(source);
    const box = $("error");
    box.hidden = errors.size === 0;
    box.textContent = [...errors.values()].join(" · ");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const short = (version) => (version ? String(version).split("-")[0] : "–");
  const fixed = (x, digits) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(digits));
  const ms = (x) => (x === null || x === undefined ? "–" : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);
  const seconds = (iso) => Date.parse(iso) / 1000;
  const modelOf = (version) => models.find((m) => m.version === version) || null;

  // --- Charts -------------------------------------------------------------------------------

  function chart(id, opts, data) {
    const target = $(id);
    const width = Math.max(240, target.clientWidth);
    if (!charts[id]) {
      charts[id] = new uPlot(Object.assign({ width, height: 200 }, opts), data, target);
    } else {
      charts[id].setData(data);
    }
    return charts[id];
  }

  function slotSeries(unit) {
    return SLOTS.map((slot) => ({
      label: slot,
      stroke: COLORS[slot],
      width: 2,
      value: (u, v) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} ${unit}`),
    }));
  }

  function drawTraffic() {
    const t = live.t;
    chart("chart-rate", { title: "requests / s", series: [{}, ...slotSeries("/s")], scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } } },
      [t, live.blue.rate, live.green.rate]);
    chart("chart-errors", { title: "errors (4xx, 5xx) / s", series: [{}, ...slotSeries("/s")], scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } } },
      [t, live.blue.errors, live.green.errors]);
    chart("chart-p99", { title: "p99 latency (ms)", series: [{}, ...slotSeries("ms")], scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } } },
      [t, live.blue.p99, live.green.p99]);
    // Each slot's highest figure in the window, for a test (or a person's devtools) to read.
    for (const [id, key] of [["chart-rate", "rate"], ["chart-errors", "errors"], ["chart-p99", "p99"]]) {
      for (const slot of SLOTS) {
        const values = live[slot][key].filter((v) => v !== null);
        $(id).dataset[`${slot}Max`] = values.length ? String(Math.max(...values)) : "";
      }
    }
  }

  function drawQuality() {
    const usable = models.filter((m) => m.metrics);
    const x = usable.map((m) => m.seq);
    const liveRmse = new Map();
    for (const r of records) {
      // Live accuracy (issue 11): add-data's RMSE of the active model on the rows it
      // appended, in the record's `live`; the newest one of each model.
      if (r.live && typeof r.live.rmse === "number" && r.live.model) liveRmse.set(r.live.model, r.live.rmse);
    }
    const rmse = usable.map((m) => m.metrics.holdout_rmse);
    const refused = usable.map((m) => (m.gate && m.gate.passed === false ? m.metrics.holdout_rmse : null));
    const r2 = usable.map((m) => m.metrics.holdout_r2);
    const lr = usable.map((m) => (liveRmse.has(m.version) ? liveRmse.get(m.version) : null));
    const points = (stroke, size) => ({ show: true, size, stroke, fill: stroke });
    // A refused model's RMSE may be a million times the others' (poisoned rows): then the
    // RMSE axis is logarithmic, so that the good models do not lie flat at its foot.
    const finite = [...rmse, ...lr].filter((v) => v > 0 && isFinite(v));
    const log = finite.length > 0 && Math.max(...finite) / Math.min(...finite) > 50;
    if (charts["chart-quality"] && charts["chart-quality"].log !== log) {
      charts["chart-quality"].destroy();
      delete charts["chart-quality"];
    }
    const rmseAxis = log
      ? { scale: "rmse", label: "RMSE (log)", size: 64, space: 24,
        values: (u, ticks) => ticks.map((v) => (Number.isInteger(Math.log10(v)) ? (v >= 1e4 ? v.toExponential(0) : String(v)) : "")) }
      : { scale: "rmse", label: "RMSE", size: 64 };
    chart("chart-quality", {
      title: "holdout RMSE and R² by model version",
      scales: { x: { time: false }, rmse: log ? { distr: 3 } : {}, r2: { range: [0, 1] } },
      axes: [
        { values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? `v${v}` : "")) },
        rmseAxis,
        { scale: "r2", side: 1, label: "R²", grid: { show: false } },
      ],
      series: [
        { label: "version", value: (u, v) => (v === null ? "–" : `v${v}`) },
        { label: "holdout RMSE", scale: "rmse", stroke: "#7c3aed", width: 2, points: points("#7c3aed", 6) },
        { label: "refused by the gate", scale: "rmse", stroke: "#b45309", width: 0, paths: () => null, points: points("#b45309", 10) },
        { label: "live RMSE", scale: "rmse", stroke: "#dc2626", width: 0, paths: () => null, points: points("#dc2626", 8) },
        { label: "holdout R²", scale: "r2", stroke: "#0891b2", width: 2, dash: [6, 4], points: points("#0891b2", 5) },
      ],
    }, [x, rmse, refused, lr, r2]).log = log;
    // What the chart holds, for a test (or a person's devtools) to read.
    Object.assign($("chart-quality").dataset, {
      log: String(log),
      refused: String(refused.filter((v) => v !== null).length),
      liveRmse: String(lr.filter((v) => v !== null).length),
    });
  }

  function drawPredictions(p) {
    const colors = ["#7c3aed", "#ea580c"];
    const series = [{ label: "actual", value: (u, v) => fixed(v, 2) },
      { label: "predicted = actual", stroke: "#9ca3af", width: 1, dash: [4, 4], points: { show: false } }];
    const data = [p.actual, p.actual];
    const shown = p.models.filter((m) => Array.isArray(m.predicted));
    const unshown = p.models.filter((m) => !Array.isArray(m.predicted)).map((m) => `${short(m.version)}: ${m.error}.`);
    shown.forEach((m, i) => {
      series.push({
        label: `${short(m.version)} (${m.roles.join(", ")})`,
        stroke: colors[i % colors.length],
        width: 0,
        paths: () => null,
        points: { show: true, size: 5, stroke: colors[i % colors.length], fill: colors[i % colors.length] },
      });
      data.push(m.predicted);
    });
    if (charts["chart-predictions"] && charts["chart-predictions"].series.length !== series.length) {
      charts["chart-predictions"].destroy();
      delete charts["chart-predictions"];
    }
    // The axes follow the actual values: a model that predicts far off (one the gate refused,
    // say) shows as points off the chart, and the note counts them, instead of squashing
    // every other point flat.
    const lo = Math.min(...p.actual), hi = Math.max(...p.actual);
    const pad = (hi - lo) * 0.1 + 1e-9;
    const range = [lo - pad, hi + pad];
    const off = shown.map((m) => [m.version, m.predicted.filter((v) => v < range[0] || v > range[1]).length])
      .filter(([, n]) => n > 0)
      .map(([v, n]) => `${n} predictions of ${short(v)} fall outside the chart.`);
    chart("chart-predictions", {
      title: "predicted against actual, holdout rows",
      scales: { x: { time: false, range }, y: { range } },
      axes: [{ label: `${p.label}, actual` }, { label: `${p.label}, predicted` }],
      series,
    }, data);
    $("predictions-note").textContent =
      `${p.actual.length} of the ${p.holdout_rows} holdout rows (every fifth row) that both models learned from. ` +
      "Neither model was trained on these rows (holdout rows are never trained on), so they test both on data they have not seen. " +
      [...off, ...unshown].join(" ");
  }

  function drawRows() {
    const points = models
      .filter((m) => m.trained_at && typeof m.rows === "number")
      .map((m) => [seconds(m.trained_at), m.rows]);
    if (status && typeof status.data_rows === "number") points.push([Date.now() / 1000, status.data_rows]);
    points.sort((a, b) => a[0] - b[0]);
    chart("chart-rows", {
      title: "rows each model learned from, then the file now",
      series: [{}, { label: "rows", stroke: "#0f766e", width: 2, fill: "rgba(15,118,110,0.08)", paths: uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 6 } }],
    }, [points.map((p) => p[0]), points.map((p) => p[1])]);
  }

  // --- Live counters ------------------------------------------------------------------------

  const total = (requests, keep) =>
    Object.entries(requests).reduce((sum, [code, n]) => (keep(Number(code)) ? sum + n : sum), 0);

  // The p99 of the requests between two readings, from the histogram's bucket counts,
  // interpolated within the bucket as Prometheus's histogram_quantile does; in ms.
  function p99(prev, cur) {
    const b = cur.latency_buckets;
    const before = prev ? prev.latency_buckets : b.map(([le]) => [le, 0]);
    const count = b[b.length - 1][1] - before[before.length - 1][1];
    if (count <= 0) return null;
    const rank = 0.99 * count;
    let lower = 0;
    for (let i = 0; i < b.length; i++) {
      const cumulative = b[i][1] - before[i][1];
      const le = b[i][0];
      if (cumulative >= rank) {
        if (le === null) return lower * 1000;
        const below = i === 0 ? 0 : b[i - 1][1] - before[i - 1][1];
        const inside = cumulative - below;
        return (lower + (le - lower) * (inside > 0 ? (rank - below) / inside : 1)) * 1000;
      }
      if (le !== null) lower = le;
    }
    return lower * 1000;
  }

  async function pollLive() {
    const now = Date.now() / 1000;
    const readings = await Promise.all(SLOTS.map((slot) =>
      getJSON(`/-/slots/${slot}/api/slot`).then((r) => r.body, (e) => ({ error: e }))));
    live.t.push(now);
    SLOTS.forEach((slot, i) => {
      const s = live[slot];
      const cur = readings[i];
      let rate = null, errs = null, q = null;
      if (cur.error) {
        s.down = cur.error.message;
        s.prev = null;
      } else {
        s.down = null;
        s.model = cur.model;
        const all = total(cur.requests, () => true);
        const bad = total(cur.requests, (code) => code >= 400);
        // A slot that restarted counts from 0 again: its first reading is then the delta.
        const restarted = s.prev && total(s.prev.body.requests, () => true) > all;
        const prev = restarted ? null : s.prev;
        if (s.prev) {
          const dt = Math.max(0.001, now - s.prev.at);
          rate = (all - (prev ? total(prev.body.requests, () => true) : 0)) / dt;
          errs = (bad - (prev ? total(prev.body.requests, (code) => code >= 400) : 0)) / dt;
          q = p99(prev && prev.body, cur);
        }
        s.prev = { at: now, body: cur };
        if (rate !== null) s.latest = { rate, errors: errs, p99: q };
      }
      s.rate.push(rate);
      s.errors.push(errs);
      s.p99.push(q);
    });
    if (live.t.length > LIVE_POINTS) {
      live.t.shift();
      for (const slot of SLOTS) ["rate", "errors", "p99"].forEach((k) => live[slot][k].shift());
    }
    drawTraffic();
    renderSlots();
    loaded.live = loaded.live || SLOTS.every((slot) => live[slot].latest || live[slot].down);
    markReady();
  }

  // --- Status, history, models, predictions ---------------------------------------------------

  function renderSlots() {
    if (!status) return;
    for (const slot of SLOTS) {
      const info = status.slots.find((s) => s.slot === slot) || {};
      const model = modelOf(info.model);
      const s = live[slot];
      const dl = $(`slot-${slot}`).querySelector("dl");
      const row = (name, value, cls) => [el("dt", {}, name), el("dd", { class: cls }, value)];
      const health = s.down
        ? el("span", { class: "badge down" }, `down: ${s.down}`)
        : s.model
          ? el("span", { class: "badge up" }, `serving ${short(s.model)}`)
          : "…";
      dl.replaceChildren(
        ...row("role", el("span", {},
          el("span", { class: `badge ${info.role}`, "data-role": info.role }, info.role || "–"),
          status.waiting && status.waiting.slot === slot ? el("span", { class: "badge waiting" }, "candidate waiting") : null)),
        ...row("model", el("span", { class: "version", title: info.model || "" }, info.model || "none")),
        ...row("kind", model ? model.kind : "–"),
        ...row("holdout RMSE · R²", model && model.metrics ? `${fixed(model.metrics.holdout_rmse, 3)} · ${fixed(model.metrics.holdout_r2, 3)}` : "–"),
        ...row("trained on", model ? `${model.rows} rows` : "–"),
        ...row("live", health),
        ...row("requests / s", s.latest ? fixed(s.latest.rate, 1) : "–", "rate"),
        ...row("errors / s", s.latest ? fixed(s.latest.errors, 2) : "–", "errors"),
        ...row("p99", s.latest && s.latest.p99 !== null ? `${fixed(s.latest.p99, 2)} ms` : "–", "p99"),
        ...row("address", info.address || "–"),
      );
      $(`slot-${slot}`).dataset.role = info.role || "";
    }
  }

  // A rollout's state (issue 11) in words: a candidate waiting for an operator, a rollout
  // running (its phase and the phases it finished), a canary split.
  function rolloutText() {
    const parts = [];
    if (status.waiting) {
      const w = status.waiting;
      parts.push(`candidate ${w.version} waits on ${w.slot} since ${w.since.replace("T", " ").replace("Z", "")}; traffic stays on ${w.traffic_on}: \`bluegreen promote\` or \`bluegreen abort\``);
    }
    if (status.rollout) {
      const r = status.rollout;
      const done = (r.phases || []).map(phaseText).join("; ");
      const now = r.current ? `; now ${soFarText(r.current)}` : "";
      parts.push(`${r.action} of ${r.version || "?"} in phase ${String(r.phase).toLowerCase()}${done ? ` (done: ${done})` : ""}${now}`);
    }
    if (typeof status.canary_percent === "number" && status.include) {
      const other = status.include === "blue" ? "green" : "blue";
      parts.push(`canary: ${100 - status.canary_percent}% to ${status.include}, ${status.canary_percent}% to ${other}`);
    }
    return parts.join(" · ");
  }

  // One phase of a rollout, as the history and status report it.
  function phaseText(p) {
    const p99 = typeof p.p99_ms === "number" ? ` · p99 ${p.p99_ms.toFixed(2)} ms${versusText(p)}` : "";
    return `${phaseTitle(p)} ${p.passed ? "passed" : p.inconclusive ? "INCONCLUSIVE" : "STOPPED"}: ${p.reason}${p99}`;
  }

  // The p99 a phase judged the candidate against and, in the watch, over which of the
  // previous slot's windows (`reference_seconds`; absent: its whole life), as `status` says.
  function versusText(p) {
    if (typeof p.reference_p99_ms !== "number") return "";
    let over = "";
    if (p.phase === "watch") {
      const s = p.reference_seconds;
      over = typeof s !== "number" ? ", the previous slot's whole life"
        : s < 1 ? `, the previous slot's last ${Math.max(1, Math.round(s * 1000))} ms`
        : `, the previous slot's last ${s.toFixed(1)} s`;
    }
    return ` vs ${p.reference_p99_ms.toFixed(2)} ms${over}`;
  }

  function phaseTitle(p) {
    return p.phase === "canary" ? `canary ${p.percent}%` : p.phase;
  }

  // The phase a rollout is in, with its figures so far (status's `rollout.current`), and
  // when the rollout read them: a rollout killed mid-phase leaves them behind until a command
  // reconciles it, which this page never does, so their time is what tells them stale.
  function soFarText(p) {
    const errors = typeof p.error_rate === "number" ? `, ${p.errors} errors (${(p.error_rate * 100).toFixed(2)}%)` : "";
    const p99 = typeof p.p99_ms === "number" ? `, p99 ${p.p99_ms.toFixed(2)} ms${versusText(p)}` : "";
    const asOf = p.as_of ? ` (as of ${p.as_of.replace("T", " ").replace("Z", "")})` : "";
    return `${phaseTitle(p)}: ${Math.round(p.seconds)} s of ${p.of_seconds}, ${p.requests} requests${errors}${p99} so far${asOf}`;
  }

  function liveText(l) {
    const ratio = typeof l.ratio === "number" ? `, ${fixed(l.ratio, 2)}× its holdout RMSE ${fixed(l.holdout_rmse, 3)}` : "";
    return `live RMSE ${fixed(l.rmse, 3)} of ${short(l.model)} on ${l.rows} row${l.rows === 1 ? "" : "s"}${ratio}`;
  }

  function renderStatus() {
    const active = status.active || "none";
    $("summary").replaceChildren(
      "active slot ", el("strong", { class: `badge ${active === "none" ? "" : "active"}` }, active),
      ` · this page served by ${servedBy || "?"} through NGINX on port ${status.public_port}`,
      ` · slots run by ${status.supervisor} · state in `, el("code", {}, status.state_dir),
    );
    const rollout = rolloutText();
    $("rollout").hidden = !rollout;
    $("rollout").textContent = rollout;
    const dl = $("data");
    const row = (name, value) => [el("dt", {}, name), el("dd", {}, value)];
    dl.replaceChildren(
      ...row("data rows", status.data_rows === null ? "cannot be read" : String(status.data_rows)),
      ...row("since the newest model", status.rows_since_newest === null ? "–" :
        `${status.rows_since_newest} (batch size ${status.batch_size}: ${status.training_due ? "training is due" : "not due"})`),
      ...row("models stored", String(status.models)),
      ...row("newest", status.newest_model || "–"),
      ...row("newest that passed the gate", status.newest_passed || "–"),
      ...row("pending deploy", status.pending_deploy || "none"),
      ...row("live accuracy", status.live ? liveText(status.live) : "–"),
    );
    const notes = [...status.notes];
    if (status.config_error) notes.unshift(status.config_error);
    if (status.newest_refused) notes.unshift(`refused ${status.newest_refused.version}: ${status.newest_refused.reason}`);
    $("notes").replaceChildren(...notes.map((n) => el("li", {}, n)));
  }

  function renderTimeline(truncated) {
    const body = $("timeline").querySelector("tbody");
    const rows = [...records].reverse().map((r) => {
      const steps = Array.isArray(r.steps) ? r.steps : [];
      const sum = steps.reduce((a, s) => a + (Number(s.ms) || 0), 0);
      const bar = el("div", { class: "steps", title: steps.map((s) => `${s.name} ${ms(s.ms)}`).join(", ") },
        ...steps.map((s, i) => el("span", { title: `${s.name} ${ms(s.ms)}`, "data-step": s.name },
        )));
      [...bar.children].forEach((span, i) => {
        span.style.width = `${sum > 0 ? (100 * (Number(steps[i].ms) || 0)) / sum : 100 / steps.length}%`;
        span.style.background = STEP_COLORS[i % STEP_COLORS.length];
      });
      const extra = Object.entries(r)
        .filter(([k, v]) => !KNOWN.has(k) && v !== null && typeof v !== "object")
        .map(([k, v]) => `${k}: ${v}`);
      if (r.gate && r.gate.reason && r.gate.reason !== r.reason) extra.unshift(`gate: ${r.gate.reason}`);
      if (r.live) extra.unshift(liveText(r.live));
      if (Array.isArray(r.rollout)) extra.unshift(...r.rollout.map(phaseText));
      if (r.reason) extra.unshift(r.reason);
      const slots = r.from_slot || r.to_slot ? `${r.from_slot || "–"} → ${r.to_slot || "–"}` : "–";
      const versions = r.from_version || r.to_version ? `${short(r.from_version)} → ${short(r.to_version)}` : "–";
      return el("tr", { "data-action": r.action, "data-outcome": r.outcome },
        el("td", { class: "time" }, String(r.time || "").replace("T", " ").replace("Z", "")),
        el("td", {}, r.action || "–"),
        el("td", {}, el("span", { class: `badge ${r.outcome}` }, r.outcome || "–")),
        el("td", {}, slots),
        el("td", { title: `${r.from_version || "–"} → ${r.to_version || "–"}` }, versions),
        el("td", { class: "num" }, ms(r.duration_ms)),
        el("td", {}, steps.length ? bar : "–"),
        el("td", { class: "details" }, extra.join(" · ")));
    });
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 8, class: "muted" }, "no records yet"))]));
    $("timeline-note").textContent = `(${records.length} records${truncated ? ", the newest; older ones are in deploys.jsonl" : ""})`;
  }

  async function pollStatus() {
    try {
      const [s, h, m] = await Promise.all([getJSON("/-/api/status"), getJSON("/-/api/history"), getJSON("/-/api/models")]);
      status = s.body;
      servedBy = s.slot;
      records = h.body.records;
      models = m.body.models;
      renderStatus();
      renderSlots();
      renderTimeline(h.body.truncated);
      drawQuality();
      drawRows();
      loaded.status = loaded.history = loaded.models = true;
      problem("status", null);
    } catch (e) {
      problem("status", e);
    }
    const active = status && status.slots.find((x) => x.slot === status.active);
    const key = status && JSON.stringify([active && active.model, status.newest_model, status.data_rows]);
    if (status && key !== predictionsKey) {
      try {
        drawPredictions((await getJSON("/-/api/predictions")).body);
        predictionsKey = key;
        loaded.predictions = true;
        problem("predictions", null);
      } catch (e) {
        problem("predictions", e);
      }
    }
    $("updated").textContent = `updated ${new Date().toISOString().replace("T", " ").slice(0, 19)} UTC`;
    markReady();
  }

  // Set once every part has been drawn with data: what a test (or a person) can wait for.
  function markReady() {
    if (Object.values(loaded).every(Boolean)) document.body.dataset.ready = "true";
  }

  function start() {
    pollStatus();
    pollLive();
    setInterval(pollStatus, STATUS_EVERY_MS);
    setInterval(() => pollLive().catch((e) => problem("live", e)), LIVE_EVERY_MS);
    window.addEventListener("resize", () => {
      for (const [id, c] of Object.entries(charts)) c.setSize({ width: Math.max(240, $(id).clientWidth), height: 200 });
    });
  }

  start();
})();
