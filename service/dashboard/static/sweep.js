// One sweep: its totals and its jobs with live status; refreshed until every job has ended.
"use strict";
(() => {
  const id = document.getElementById("sweep").dataset.sweepId;
  const cancel = document.getElementById("cancel");
  const ended = ["succeeded", "failed", "cancelled"];
  let timer;

  async function refresh() {
    try {
      const sweep = await Alto.api(`/sweeps/${id}`);
      const t = sweep.totals;
      document.getElementById("title").textContent = `Sweep ${sweep.id}: ${sweep.name}`;
      const facts = document.getElementById("facts");
      facts.replaceChildren();
      const add = (term, value) => {
        const dt = document.createElement("dt"); dt.textContent = term;
        const dd = document.createElement("dd"); dd.textContent = value;
        facts.append(dt, dd);
      };
      add("Jobs", String(t.jobs));
      add("Progress", `${t.trials_done}/${t.trials_total} trials (${Math.round(100 * t.progress)}%)`);
      add("By status", Object.entries(t.by_status).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`).join(", ") || "–");
      add("Created", Alto.when(sweep.created_at));
      const body = document.querySelector("#sweep-jobs tbody");
      body.replaceChildren();
      for (const job of sweep.jobs) {
        const row = body.insertRow();
        row.dataset.jobId = job.id;
        Alto.cell(row, Alto.link(`/dashboard/jobs/${job.id}`, `#${job.id}`));
        Alto.cell(row, job.task);
        Alto.cell(row, job.spec.batch_sizes.join(", "));
        Alto.cell(row, job.spec.arms.map((a) => a.optimizer).join(", "));
        Alto.cell(row, `${job.spec.trials_per_study} trials × ${job.spec.epochs_per_trial ?? "default"} epochs`);
        Alto.cell(row, job.cancel_requested && job.status === "running" ? "cancelling" : job.status, `status status-${job.status}`);
        const bar = document.createElement("progress");
        bar.max = 1; bar.value = job.progress;
        bar.setAttribute("aria-label", `job ${job.id} progress`);
        Alto.cell(row, bar).append(` ${job.trials_done}/${job.trials_total}`);
      }
      const open = sweep.jobs.some((j) => !ended.includes(j.status));
      cancel.hidden = !open;
      if (!open) clearInterval(timer);
      Alto.showError("");
    } catch (error) { Alto.showError(error.message); }
    Alto.ready();
  }
  cancel.addEventListener("click", async () => {
    try { await Alto.api(`/sweeps/${id}/cancel`, { method: "POST" }); await refresh(); }
    catch (error) { Alto.showError(error.message); }
  });
  refresh();
  timer = setInterval(refresh, 2000);
})();
