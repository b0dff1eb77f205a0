// Draws each <canvas data-chart="ID"> of the explorer pages from the JSON data block with that id:
// {"type": "bar"|"line", "kind": "count"|"ms"|"percent", "labels": [...], "datasets": [{"label", "values"}]},
// the figures of the API's answer the server put there. Bars of several datasets stack (successes and
// failures make the calls). A file, not an inline script: the pages' Content-Security-Policy.
(function () {
  "use strict";
  var style = getComputedStyle(document.documentElement);
  var PALETTE = ["#2f73b8", "#c2571a", "#2e8540", "#8a4baf", "#b8860b", "#1b7f86", "#b3261e", "#5c6b7a"];

  function token(name) {
    return style.getPropertyValue(name).trim();
  }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = token("--muted");
  Chart.defaults.borderColor = token("--rule");

  // The same text as the server's filters print.
  function figure(value, kind) {
    if (value === null || value === undefined) return "\u2013";
    if (kind === "percent") return (value * 100).toFixed(1) + " %";
    if (kind === "ms") return Math.round(value).toLocaleString("en") + " ms";
    return value.toLocaleString("en", { maximumFractionDigits: 2 });
  }

  function dataset(set, index, type, many) {
    var colour = many ? PALETTE[index % PALETTE.length] : token("--chart-bar");
    var drawn = { label: set.label, data: set.values, backgroundColor: colour, borderColor: colour };
    if (type === "bar") {
      drawn.borderRadius = 2;
    } else {
      drawn.backgroundColor = colour + "33";
      drawn.pointRadius = set.values.length > 60 ? 1.5 : 2.5; // a lone period between gaps stays visible
      drawn.spanGaps = false;
    }
    return drawn;
  }

  function config(data) {
    var many = data.datasets.length > 1;
    var stacked = data.type === "bar" && many;
    return {
      type: data.type,
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set, i) { return dataset(set, i, data.type, many); })
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: many, position: "bottom" },
          tooltip: { callbacks: { label: function (item) { return item.dataset.label + ": " + figure(item.raw, data.kind); } } }
        },
        scales: {
          x: { stacked: stacked, grid: { display: false }, ticks: { autoSkipPadding: 12, maxRotation: 0 } },
          y: {
            stacked: stacked,
            beginAtZero: true,
            suggestedMax: data.kind === "percent" ? 1 : undefined,
            ticks: { precision: data.kind === "percent" ? 2 : 0, callback: function (value) { return figure(value, data.kind); } }
          }
        }
      }
    };
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    new Chart(canvas, config(JSON.parse(document.getElementById(canvas.dataset.chart).textContent)));
  });
  document.body.dataset.charts = "drawn";
})();
