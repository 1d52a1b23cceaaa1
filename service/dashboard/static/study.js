// One study: optimisation history, parallel coordinates, flatness, trials, learning curves.
"use strict";
(() => {
  const id = document.getElementById("study").dataset.studyId;
  const state = { offset: 0, limit: 25, sort: "number", order: "asc", status: "", jobId: null, total: 0 };
  const selected = new Map();

  async function summary(s) {
    document.getElementById("title").textContent =
      `${s.study.optimizer} at batch size ${s.study.batch_size} · ${s.job.task}`;
    const facts = document.getElementById("facts");
    const add = (term, value) => {
      const dt = document.createElement("dt"); dt.textContent = term;
      const dd = document.createElement("dd");
      if (value instanceof Node) dd.append(value); else dd.textContent = value;
      facts.append(dt, dd);
    };
    add("Job", Alto.link(`/dashboard/jobs/${s.job.id}`, `#${s.job.id} (${s.job.status})`));
    add("Trials", Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ") || "none yet");
    add(`Best ${s.metric_name}`, Alto.num(s.study.best_metric));

    const h = s.history;
    Plotly.react("history", [
      { name: "trial", x: h.number, y: h.value.map(Alto.finite), mode: "markers", type: "scatter",
        marker: { size: 5, color: "#8aa4c8" } },
      { name: "best so far", x: h.number, y: h.best_so_far.map(Alto.finite), mode: "lines", line: { shape: "hv", color: "#0b63c5" } },
    ], { title: { text: `Optimisation history${h.sampled ? " (sampled)" : ""}`, font: { size: 14 } },
         xaxis: { title: { text: "trial" } }, yaxis: { title: { text: s.metric_name } },
         margin: { t: 40, r: 10, b: 50, l: 60 }, legend: { orientation: "h", y: -0.2 } }, Alto.plotConfig);

    parallel(s.parallel, s.metric_name, s.direction);

    const body = document.querySelector("#flatness tbody");
    body.replaceChildren();
    let method = "";
    for (const f of s.flatness) {
      const row = body.insertRow();
      Alto.cell(row, f.optimizer);
      Alto.cell(row, f.trial_id ? `#${f.trial_id}` : "–");
      Alto.cell(row, Alto.num(f.metric), "n");
      Alto.cell(row, Alto.num(f.flatness?.top_eigenvalue), "n");
      Alto.cell(row, Alto.num(f.flatness?.drift_from_start), "n");
      const window = f.flatness?.drift_over_window;
      Alto.cell(row, window === "NaN" ? "n/a (under 10 epochs)" : Alto.num(window), "n");
      method = method || f.flatness?.method || "";
    }
    document.getElementById("flatness-method").textContent = method ? `Measured by ${method}.` : "Not measured yet.";
  }

  // Parallel coordinates drawn as SVG lines (one trace per metric quintile): plotly's
  // parcoords needs WebGL, which takes seconds to start in a browser without a GPU.
  function parallel(p, metricName, direction) {
    // alpha and beta1 as the search samples them: c = alpha (1 - beta1) and log10(1 - beta1).
    const cs = p.alpha.map((a, i) => Alto.c(a, p.beta1[i]));
    const logs = p.beta1.map(Alto.logOneMinusBeta1);
    const axes = [["c = alpha (1 − beta1)", cs, false], ["log10(1 − beta1)", logs, false], ["lr", p.lr, true],
                  [metricName, p.metric, false]]
      .map(([label, raw, log]) => {
        const values = raw.map(Alto.finite).map((v) => (v !== null && log ? (v > 0 ? Math.log10(v) : null) : v));
        const known = values.filter((v) => v !== null);
        return { label, log, values, min: Math.min(...known), max: Math.max(...known), empty: !known.length };
      })
      .filter((a) => !a.empty);
    const metric = axes[axes.length - 1];
    const order = metric.values.map((v, i) => [v, i]).filter(([v]) => v !== null)
      .sort((x, y) => (direction === "max" ? x[0] - y[0] : y[0] - x[0]));
    const colors = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
    const traces = colors.map((color, bin) => ({ x: [], y: [], mode: "lines", type: "scatter",
      line: { color, width: 1 }, opacity: 0.55, hoverinfo: "skip",
      name: `${["worst", "", "", "", "best"][bin] || ""} ${metricName} quintile ${bin + 1}`.trim(), showlegend: false }));
    order.forEach(([, i], rank) => {
      const bin = Math.min(4, Math.floor((5 * rank) / order.length));
      axes.forEach((a, k) => {
        const v = a.values[i];
        traces[bin].x.push(k);
        traces[bin].y.push(v === null ? null : a.max > a.min ? (v - a.min) / (a.max - a.min) : 0.5);
      });
      traces[bin].x.push(null); traces[bin].y.push(null);
    });
    const label = (a, v) => (a.log ? Alto.num(10 ** v) : Alto.num(v));
    const annotations = axes.flatMap((a, k) => [
      { x: k, y: 1.08, text: `<b>${a.label}</b>`, showarrow: false },
      { x: k, y: 1.0, text: label(a, a.max), showarrow: false, xanchor: "left", font: { size: 10 } },
      { x: k, y: 0.0, text: label(a, a.min), showarrow: false, xanchor: "left", font: { size: 10 } },
    ]);
    const shapes = axes.map((a, k) => ({ type: "line", x0: k, x1: k, y0: 0, y1: 1, line: { color: "#888" } }));
    Plotly.react("parallel", traces, {
      title: { text: `Settings → ${metricName} (colour: quintile, yellow best)${p.sampled ? ", sampled" : ""}`, font: { size: 14 } },
      xaxis: { visible: false, range: [-0.2, axes.length - 0.6] }, yaxis: { visible: false, range: [-0.05, 1.15] },
      annotations, shapes, margin: { t: 40, r: 20, b: 10, l: 20 }, showlegend: false,
    }, Alto.plotConfig);
  }

  async function trials() {
    const q = new URLSearchParams({ study_id: id, sort: state.sort, order: state.order, limit: state.limit, offset: state.offset });
    if (state.status) q.set("status", state.status);
    const page = await Alto.api(`/jobs/${state.jobId}/trials?${q}`);
    state.total = page.total;
    const body = document.querySelector("#trials tbody");
    body.replaceChildren();
    for (const t of page.items) {
      const row = body.insertRow();
      const box = document.createElement("input");
      box.type = "checkbox"; box.checked = selected.has(t.id);
      box.setAttribute("aria-label", `plot trial ${t.number}`);
      box.addEventListener("change", () => toggle(t, box.checked));
      Alto.cell(row, box);
      Alto.cell(row, String(t.number)); Alto.cell(row, t.status);
      Alto.cell(row, Alto.num(t.alpha), "n"); Alto.cell(row, Alto.num(t.beta1), "n"); Alto.cell(row, Alto.num(t.lr), "n");
      Alto.cell(row, Alto.num(t.final_metric), "n"); Alto.cell(row, String(t.epochs_run));
      Alto.cell(row, t.wall_time_s === null ? "–" : `${Alto.num(t.wall_time_s, 3)} s`);
    }
    const last = Math.min(state.offset + state.limit, page.total);
    document.getElementById("page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no trials";
    document.getElementById("prev").disabled = state.offset === 0;
    document.getElementById("next").disabled = last >= page.total;
  }

  async function toggle(trial, on) {
    if (on) selected.set(trial.id, await Alto.api(`/trials/${trial.id}`)); else selected.delete(trial.id);
    const traces = [...selected.values()].map((t) => ({
      name: `#${t.number}`, x: t.epochs.map((e) => e.epoch), y: t.epochs.map((e) => Alto.finite(e.metric)), mode: "lines+markers",
    }));
    Plotly.react("curves", traces, { title: { text: "Learning curves", font: { size: 14 } },
      xaxis: { title: { text: "epoch" } }, margin: { t: 40, r: 10, b: 50, l: 60 } }, Alto.plotConfig);
  }

  document.querySelectorAll("th button[data-sort]").forEach((b) => b.addEventListener("click", () => {
    state.order = state.sort === b.dataset.sort && state.order === "asc" ? "desc" : "asc";
    state.sort = b.dataset.sort; state.offset = 0;
    trials().catch((e) => Alto.showError(e.message));
  }));
  document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); trials(); });
  document.getElementById("next").addEventListener("click", () => { state.offset += state.limit; trials(); });
  document.getElementById("trial-status").addEventListener("change", (e) => { state.status = e.target.value; state.offset = 0; trials(); });

  // The summary and the first page of trials load together; the table is filled first,
  // then the charts (parallel coordinates need WebGL, the slowest part in a browser).
  async function init() {
    const s = await Alto.api(`/studies/${id}/summary?max_points=1500`);
    state.jobId = s.job.id;
    await trials();
    await summary(s);
  }
  init().catch((error) => Alto.showError(error.message)).finally(Alto.ready);
})();
