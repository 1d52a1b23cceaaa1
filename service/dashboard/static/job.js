// One job: its facts, studies and a cancel button; refreshed while it runs.
"use strict";
(() => {
  const id = document.getElementById("job").dataset.jobId;
  const cancel = document.getElementById("cancel");
  let timer;

  async function refresh() {
    try {
      const job = await Alto.api(`/jobs/${id}`);
      const facts = document.getElementById("facts");
      facts.replaceChildren();
      const add = (term, value) => {
        const dt = document.createElement("dt"); dt.textContent = term;
        const dd = document.createElement("dd"); dd.textContent = value;
        facts.append(dt, dd);
      };
      add("Task", job.task);
      add("Status", job.status + (job.error ? ` (${job.error})` : ""));
      add("Progress", `${job.trials_done}/${job.trials_total} trials (${Math.round(100 * job.progress)}%)`);
      add("Batch sizes", job.spec.batch_sizes.join(", "));
      add("Optimizers", job.spec.arms.map((a) => a.optimizer).join(", "));
      add("Attempts", String(job.attempts) + (job.abandoned ? ` (${job.abandoned} abandoned by a dying worker)` : ""));
      add("Created", Alto.when(job.created_at));
      cancel.hidden = !(job.status === "queued" || job.status === "running");
      const body = document.querySelector("#studies tbody");
      body.replaceChildren();
      for (const s of job.studies) {
        const row = body.insertRow();
        Alto.cell(row, Alto.link(`/dashboard/studies/${s.id}`, String(s.batch_size)));
        Alto.cell(row, s.optimizer); Alto.cell(row, s.status);
        Alto.cell(row, `${s.trials_done}/${s.trials_total}`); Alto.cell(row, Alto.num(s.best_metric), "n");
      }
      if (["succeeded", "failed", "cancelled"].includes(job.status)) clearInterval(timer);
    } catch (error) { Alto.showError(error.message); }
    Alto.ready();
  }
  cancel.addEventListener("click", async () => {
    try { await Alto.api(`/jobs/${id}/cancel`, { method: "POST" }); await refresh(); }
    catch (error) { Alto.showError(error.message); }
  });
  refresh();
  timer = setInterval(refresh, 2000);
})();
