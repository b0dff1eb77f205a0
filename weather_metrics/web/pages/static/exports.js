// Keeps the list of /exports current: while an export is queued or running, every two seconds it fetches
// /exports/jobs (the same jobs, as JSON, with this browser's session cookie) and writes each job's status,
// progress and rows into its entry; a finished one shows its Download link, a failed one its reason.
// The runner tells no one when a job moves on, so the page asks; it stops once nothing is left to wait for.
// A file, not an inline script: the pages' Content-Security-Policy runs scripts of this origin only.
(function () {
  "use strict";
  var list = document.getElementById("export-list");
  var status = document.getElementById("export-status");
  var NAMES = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };
  var EVERY = 2000;
  if (!list) return;

  function waiting() {
    return list.querySelector('[data-status="queued"], [data-status="running"]') !== null;
  }

  function slot(item, name) {
    return item.querySelector('[data-slot="' + name + '"]');
  }

  function show(job) {
    var item = list.querySelector('[data-job="' + job.id + '"]');
    if (!item) return;
    item.dataset.status = job.status;
    slot(item, "status").textContent = NAMES[job.status] || job.status;
    slot(item, "bar").value = job.progress;
    slot(item, "progress").textContent = job.progress + " %";
    slot(item, "rows").textContent = Number(job.rows).toLocaleString("en-US");
    slot(item, "download").hidden = job.status !== "done";
    var error = slot(item, "error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
  }

  function settled() {
    var done = list.querySelectorAll('[data-status="done"]').length;
    status.textContent = done ? "Every export has finished; a finished one has its Download link." : "";
  }

  function poll() {
    fetch(list.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" }, redirect: "manual" })
      .then(function (answer) {
        if (answer.status !== 200) throw new Error("the list answered " + answer.status);
        return answer.json();
      })
      .then(function (body) {
        body.jobs.forEach(show);
        document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
        if (waiting()) {
          setTimeout(poll, EVERY);
        } else {
          settled();
        }
      })
      .catch(function () {
        status.textContent = "Progress could not be fetched; reload the page to see it.";
      });
  }

  if (waiting()) setTimeout(poll, EVERY);
})();
