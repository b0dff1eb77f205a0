// Draws each <canvas data-chart="ID"> as a bar chart of the JSON data block with that id
// ({"label", "labels", "values"}). A file, not an inline script: the pages' Content-Security-Policy
// runs scripts of this origin only. Colours and fonts come from the stylesheet.
(function () {
  "use strict";
  var style = getComputedStyle(document.documentElement);
  function token(name) {
    return style.getPropertyValue(name).trim();
  }
  function shortDate(iso) {
    return new Date(iso + "T00:00:00Z").toLocaleDateString("en", { month: "short", day: "numeric", timeZone: "UTC" });
  }

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = token("--muted");
  Chart.defaults.borderColor = token("--rule");

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var data = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: data.label, data: data.values, backgroundColor: token("--chart-bar"), borderRadius: 2 }]
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: function (items) { return items[0].label; } } }
        },
        scales: {
          x: {
            grid: { display: false },
            ticks: {
              autoSkipPadding: 12,
              maxRotation: 0,
              callback: function (value) { return shortDate(this.getLabelForValue(value)); }
            }
          },
          y: { beginAtZero: true, ticks: { precision: 0 } }
        }
      }
    });
  });
})();
