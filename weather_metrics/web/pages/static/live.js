// A page's live updates over /ws: a ticket from POST /live/ticket (this browser's session cookie and its
// X-CSRF-Token), then a subscription to `options.rooms`. Each other event goes to `options.heard`. A closed
// socket is opened again after 2, 4, 8… seconds, five times at most; a signed-out session (4401) is not.
// `options.say` shows the state in words; <body data-live> is "on" while subscribed (tests wait on it).
// A file, not an inline script: the pages' Content-Security-Policy runs scripts of this origin only.
window.followLive = function (options) {
  "use strict";
  var attempts = 0;
  var say = options.say;

  function connect() {
    fetch("/live/ticket", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": options.csrf },
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
          socket.send(JSON.stringify({ type: "subscribe", rooms: options.rooms }));
        });
        socket.addEventListener("message", function (message) {
          var event = JSON.parse(message.data);
          if (event.type === "subscribed") {
            attempts = 0;
            document.body.dataset.live = "on";
            say(options.listening);
          } else if (event.type === "error") {
            say("Live updates are off: " + event.error.message);
          } else {
            options.heard(event);
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
};
