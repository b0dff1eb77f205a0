// Keeps /alerts/history current over /ws (live.js): the room alerts, whose alert_triggered says a rule of
// this person's has fired.
// The page then fetches itself again and swaps in its history, so what it shows stays what the server draws
// (the same alerts, scopes and pages as GET /api/alerts gives this person).
// A file, not an inline script: the pages' Content-Security-Policy runs scripts of this origin only.
(function () {
  "use strict";
  var block = document.getElementById("alerts-live");
  var page = JSON.parse(block.textContent).page;
  var status = document.getElementById("live-status");
  var fetching = false;
  var again = false;

  function say(text) {
    status.textContent = text;
  }

  // The page as the server draws it now; its history replaces this one's.
  function redraw() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "manual" })
      .then(function (answer) {
        if (answer.status !== 200) throw new Error("the page answered " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("alert-history");
        var shown = document.getElementById("alert-history");
        if (fresh && shown) shown.replaceWith(document.adoptNode(fresh));
        document.body.dataset.redrawn = String(Number(document.body.dataset.redrawn || 0) + 1);
      })
      .catch(function () {
        say("A new alert fired, but the list could not be fetched; reload the page to see it.");
      })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          redraw();
        }
      });
  }

  function heard(alert) {
    document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
    var where = page > 1 ? " It is on the first page." : "";
    // The evaluation's own time, in UTC like every time of the page.
    say("Live: \u201c" + alert.rule_name + "\u201d fired at " + String(alert.timestamp).slice(11, 19) + " UTC." + where);
    redraw();
  }

  window.followLive({
    csrf: block.dataset.csrf,
    rooms: ["alerts"],
    say: say,
    listening: "Live: new alerts appear here as they fire.",
    heard: function (event) {
      if (event.type === "alert_triggered") heard(event.data);
    }
  });
})();
