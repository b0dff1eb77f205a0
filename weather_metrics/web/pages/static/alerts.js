// Keeps /alerts/history current over /ws: a ticket from POST /live/ticket (this browser's session cookie and
// its X-CSRF-Token), then the room alerts, whose alert_triggered says a rule of this person's has fired.
// The page then fetches itself again and swaps in its history, so what it shows stays what the server draws
// (the same alerts, scopes and pages as GET /api/alerts gives this person).
// A file, not an inline script: the pages' Content-Security-Policy runs scripts of this origin only.
(function () {
  "use strict";
  var block = document.getElementById("alerts-live");
  var page = JSON.parse(block.textContent).page;
  var status = document.getElementById("live-status");
  var attempts = 0;
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

  function connect() {
    fetch("/live/ticket", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": block.dataset.csrf },
      redirect: "manual"
    })
      .then(function (answer) {
        if (answer.status !== 201) throw new Error("no ticket (" + answer.status + ")");
        return answer.json();
      })
      .then(function (ticket) {
        var scheme = location.protocol === "https:" ? "wss://" : "ws://";
        var socket = new WebSocket(scheme + location.host + ticket.url);
        socket.addEventListener("open", function () {
          socket.send(JSON.stringify({ type: "subscribe", rooms: ["alerts"] }));
        });
        socket.addEventListener("message", function (message) {
          var event = JSON.parse(message.data);
          if (event.type === "subscribed") {
            attempts = 0;
            document.body.dataset.live = "on";
            say("Live: new alerts appear here as they fire.");
          } else if (event.type === "alert_triggered") {
            heard(event.data);
          } else if (event.type === "error") {
            say("Live updates are off: " + event.error.message);
          }
        });
        socket.addEventListener("close", function (closing) {
          document.body.dataset.live = "off";
          if (closing.code === 4401) {
            say("Live updates stopped: you are signed out. Reload the page after signing in.");
          } else {
            retry();
          }
        });
      })
      .catch(function () { retry(); });
  }

  function retry() {
    attempts += 1;
    if (attempts > 5) {
      say("Live updates are off; reload the page to try again.");
      return;
    }
    say("Live updates paused; trying again\u2026");
    setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, attempts)));
  }

  connect();
})();
