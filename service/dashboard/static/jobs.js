// Jobs: live list (polled), cancel, and the submit form.
"use strict";
(() => {
  const body = document.querySelector("#jobs tbody");
  const statusFilter = document.getElementById("status-filter");
  const sweepFilter = document.getElementById("sweep-filter");
  sweepFilter.value = new URLSearchParams(location.search).get("sweep_id") || "";
  const form = document.getElementById("submit-form");
  const result = document.getElementById("submit-result");

  async function refresh() {
    try {
      let filter = statusFilter.value ? `&status=${statusFilter.value}` : "";
      if (sweepFilter.value) filter += `&sweep_id=${encodeURIComponent(sweepFilter.value)}`;
      const page = await Alto.api(`/jobs?limit=100${filter}`);
      document.getElementById("empty").hidden = page.items.length > 0;
      body.replaceChildren();
      for (const job of page.items) {
        const row = body.insertRow();
        row.dataset.jobId = job.id;
        Alto.cell(row, Alto.link(`/dashboard/jobs/${job.id}`, `#${job.id}`));
        Alto.cell(row, job.task);
        Alto.cell(row, job.sweep_id ? Alto.link(`/dashboard/sweeps/${job.sweep_id}`, `sweep ${job.sweep_id}`) : "–");
        Alto.cell(row, job.cancel_requested && job.status === "running" ? "cancelling" : job.status, `status status-${job.status}`);
        const bar = document.createElement("progress");
        bar.max = 1; bar.value = job.progress;
        bar.setAttribute("aria-label", `job ${job.id} progress`);
        const cell = Alto.cell(row, bar);
        cell.append(` ${job.trials_done}/${job.trials_total}`);
        Alto.cell(row, Alto.when(job.created_at));
        if (job.status === "queued" || job.status === "running") {
          const button = document.createElement("button");
          button.type = "button"; button.textContent = "Cancel"; button.className = "cancel";
          button.setAttribute("aria-label", `Cancel job ${job.id}`);
          button.addEventListener("click", () => cancel(job.id));
          Alto.cell(row, button);
        } else Alto.cell(row, "");
      }
      Alto.showError("");
    } catch (error) { Alto.showError(error.message); }
    Alto.ready();
  }

  async function cancel(id) {
    try { await Alto.api(`/jobs/${id}/cancel`, { method: "POST" }); await refresh(); }
    catch (error) { Alto.showError(error.message); }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = {
      task: document.getElementById("f-task").value,
      batch_sizes: document.getElementById("f-batches").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number),
      arms: [...form.querySelectorAll("input[name=arm]:checked")].map((el) => ({ optimizer: el.value })),
      trials_per_study: Number(document.getElementById("f-trials").value),
    };
    const epochs = document.getElementById("f-epochs").value;
    if (epochs) spec.epochs_per_trial = Number(epochs);
    try {
      const job = await Alto.api("/jobs", { method: "POST", body: spec });
      result.textContent = `Job ${job.id} queued: ${job.trials_total} trials.`;
      await refresh();
    } catch (error) { result.textContent = ""; Alto.showError(error.message); }
  });

  statusFilter.addEventListener("change", refresh);
  sweepFilter.addEventListener("change", refresh);
  Alto.api("/tasks").then((tasks) => {
    const select = document.getElementById("f-task");
    for (const t of tasks) select.add(new Option(`${t.name} (max batch ${t.max_batch_size})`, t.name));
  }).catch((error) => Alto.showError(error.message));
  refresh();
  setInterval(refresh, 2000);
})();
