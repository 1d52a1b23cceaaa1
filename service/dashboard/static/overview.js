// Overview: best c = alpha (1 - beta1), log10(1 - beta1) and lr (and the metric against the baseline) per batch size.
"use strict";
(() => {
  const task = document.getElementById("task");
  const optimizer = document.getElementById("optimizer");
  const baseline = document.getElementById("baseline");
  const params = new URLSearchParams(location.search);

  function axis(sizes) {
    const ticks = [...new Set(sizes)].sort((a, b) => a - b);
    return { type: "log", title: { text: "batch size (log₂)" }, tickvals: ticks, ticktext: ticks.map(String) };
  }

  function series(points, key, name, valueOf) {
    const measured = points.filter((p) => p.source === "measured");
    const interpolated = points.filter((p) => p.source === "interpolated");
    const all = [...points].sort((a, b) => a.batch_size - b.batch_size);
    return [
      { name: `${name} (interpolated)`, x: all.map((p) => p.batch_size), y: all.map(valueOf),
        mode: "lines+markers", line: { dash: "dash", color: "#8aa4c8" },
        marker: { symbol: all.map((p) => (p.source === "measured" ? "circle" : "circle-open")), size: 9 },
        hovertemplate: "batch %{x}<br>" + key + " %{y}<extra>interpolated</extra>",
        customdata: all.map((p) => p.study_id), visible: interpolated.length ? true : "legendonly" },
      { name, x: measured.map((p) => p.batch_size), y: measured.map(valueOf), mode: "markers",
        marker: { size: 11, color: "#0b63c5" }, customdata: measured.map((p) => p.study_id),
        hovertemplate: "batch %{x}<br>" + key + " %{y}<br>click: open the study<extra>tuned</extra>" },
    ];
  }

  function draw(id, title, traces, sizes, yaxis = {}) {
    const el = document.getElementById(id);
    Plotly.react(el, traces, {
      title: { text: title, font: { size: 14 } }, margin: { t: 40, r: 10, b: 80, l: 60 },
      xaxis: axis(sizes), yaxis, legend: { orientation: "h", y: -0.38 }, hovermode: "closest",
    }, Alto.plotConfig);
    el.removeAllListeners?.("plotly_click");
    el.on("plotly_click", (event) => {
      const study = event.points[0]?.customdata;
      if (study) location.href = `/dashboard/studies/${study}`;
    });
  }

  async function load() {
    Alto.showError("");
    const empty = document.getElementById("empty");
    const charts = document.getElementById("charts");
    const table = document.getElementById("points");
    if (!task.value) {
      empty.textContent = "No tasks yet: start a worker (it publishes the task catalogue).";
      empty.hidden = false; charts.hidden = table.hidden = true; Alto.ready();
      return;
    }
    history.replaceState(null, "", `?task=${encodeURIComponent(task.value)}`);
    const data = await Alto.api(`/recommendations/${encodeURIComponent(task.value)}/overview?optimizer=${optimizer.value}&baseline=${baseline.value}`);
    const points = data.points;
    if (!points.length) {
      empty.textContent = `No tuned batch sizes for ${data.task} with ${data.optimizer} yet. Submit a job on the Jobs page; its results appear here when a batch size is done.`;
      empty.hidden = false; charts.hidden = table.hidden = true;
      document.getElementById("legend").hidden = true;
      Alto.ready();
      return;
    }
    empty.hidden = true; charts.hidden = false; table.hidden = false;
    document.getElementById("legend").hidden = false;
    const sizes = points.map((p) => p.batch_size).concat(data.baseline_points.map((p) => p.batch_size));
    const base = data.baseline_points;
    const measured = points.filter((p) => p.source === "measured");
    draw("chart-metric", `${data.metric_name} (${data.direction === "max" ? "higher" : "lower"} is better)`, [
      { name: data.optimizer, x: measured.map((p) => p.batch_size), y: measured.map((p) => Alto.finite(p.metric)),
        mode: "lines+markers", marker: { size: 11, color: "#0b63c5" }, customdata: measured.map((p) => p.study_id),
        text: measured.map((p) => `uplift ${Alto.pct(p.uplift)}`), hovertemplate: "batch %{x}<br>%{y}<br>%{text}<extra></extra>" },
      { name: data.baseline, x: base.map((p) => p.batch_size), y: base.map((p) => Alto.finite(p.metric)),
        mode: "lines+markers", marker: { size: 9, color: "#c05a00", symbol: "square" }, customdata: base.map((p) => p.study_id) },
    ], sizes);
    // alpha and beta1 as the search samples them: c = alpha (1 - beta1) in (-1, 1), ALTO's
    // stability rule, and 1 - beta1 on a log scale (raw alpha 471 at beta1 0.9989 is c = +0.52).
    draw("chart-c", "best c = alpha (1 − beta1)", series(points, "c", "c", (p) => Alto.c(p.settings.alpha, p.settings.beta1)), sizes,
      { range: [-1, 1], zeroline: true, zerolinecolor: "#888", title: { text: "c = alpha (1 − beta1)" } });
    draw("chart-log-one-minus-beta1", "best log10(1 − beta1)",
      series(points, "log10(1 - beta1)", "log10(1 - beta1)", (p) => Alto.logOneMinusBeta1(p.settings.beta1)), sizes,
      { title: { text: "log10(1 − beta1)" } });
    draw("chart-lr", "best learning rate", series(points, "lr", "lr", (p) => Alto.finite(p.settings.lr)), sizes, { type: "log" });

    document.getElementById("metric-head").textContent = data.metric_name;
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const p of points) {
      const row = body.insertRow();
      Alto.cell(row, p.study_id ? Alto.link(`/dashboard/studies/${p.study_id}`, String(p.batch_size)) : String(p.batch_size));
      Alto.cell(row, p.source);
      Alto.cell(row, Alto.num(p.settings.alpha), "n"); Alto.cell(row, Alto.num(p.settings.beta1), "n");
      Alto.cell(row, Alto.num(Alto.c(p.settings.alpha, p.settings.beta1)), "n");
      Alto.cell(row, Alto.num(p.settings.lr), "n"); Alto.cell(row, Alto.num(p.metric), "n");
      Alto.cell(row, Alto.num(p.baseline_metric), "n"); Alto.cell(row, Alto.pct(p.uplift), "n");
      Alto.cell(row, p.n_trials ? String(p.n_trials) : "–");
    }
    Alto.ready();
  }

  async function init() {
    try {
      const tasks = await Alto.api("/tasks");
      for (const t of tasks) task.add(new Option(`${t.name} (${t.metric})`, t.name));
      if (params.get("task")) task.value = params.get("task");
      for (const el of [task, optimizer, baseline]) el.addEventListener("change", () => load().catch((e) => Alto.showError(e.message)));
      await load();
    } catch (error) { Alto.showError(error.message); Alto.ready(); }
  }
  init();
})();
