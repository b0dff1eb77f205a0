// Draws a dashboard's widgets from the JSON block #dashboard-live (the entries of GET /api/dashboards/<id>/data)
// and keeps them current over /ws (live.js): the room dashboard:<id>, whose dashboard_update messages carry
// one widget's new entry, and the viewer's own room (admins: the organization's), whose metric_ingested
// says new data is stored.
// A file, not an inline script: the pages' Content-Security-Policy runs scripts of this origin only.
(function () {
  "use strict";
  var block = document.getElementById("dashboard-live");
  var board = JSON.parse(block.textContent);
  var status = document.getElementById("live-status");
  var style = getComputedStyle(document.documentElement);
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var PALETTE = ["#2f73b8", "#c2571a", "#2e8540", "#8a4baf", "#b8860b", "#1b7f86", "#b3261e", "#5c6b7a"];

  function token(name) {
    return style.getPropertyValue(name).trim();
  }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = token("--muted");
  Chart.defaults.borderColor = token("--rule");

  function kind(metric) {
    var name = metric.split(".").slice(1).join(".");
    if (name === "success_rate") return "percent";
    return /_duration_ms$/.test(name) ? "ms" : "count";
  }

  // The same text as the server's metric_figure filter.
  function figure(value, metric) {
    if (value === null || value === undefined) return "\u2013";
    var k = kind(metric);
    if (k === "percent") return (value * 100).toFixed(1) + " %";
    if (k === "ms") return Math.round(value).toLocaleString("en") + " ms";
    return Number.isInteger(value)
      ? value.toLocaleString("en")
      : value.toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  // 2025-11-12T14:00:00+01:00, read as the local time it names (the organization's zone).
  function periodLabel(period, aggregation, long) {
    var month = MONTHS[Number(period.slice(5, 7)) - 1];
    var day = String(Number(period.slice(8, 10)));
    if (aggregation === "month") return month + " " + period.slice(0, 4);
    if (aggregation === "hour") return (long ? month + " " + day + " " : "") + period.slice(11, 16);
    return month + " " + day;
  }

  function periodText(period, aggregation) {
    if (aggregation === "hour") return period.slice(0, 10) + " " + period.slice(11, 16);
    return aggregation === "month" ? period.slice(0, 7) : period.slice(0, 10);
  }

  // What the series counts: a percentile's series counts calls (the API's series_metric).
  function seriesMetric(entry) {
    return entry.data.series_metric ? "agents." + entry.data.series_metric : entry.metric;
  }

  // What a chart plots: agent values by agent for a pie of an agents.* metric, else the series by period.
  function plotted(entry) {
    var data = entry.data;
    if (entry.type === "pie" && data.agents) {
      return {
        labels: data.agents.map(function (a) { return a.agent_name; }),
        values: data.agents.map(function (a) { return a.value; })
      };
    }
    return {
      labels: data.series.map(function (p) { return periodLabel(p.period, data.window.aggregation, true); }),
      values: data.series.map(function (p) { return p.value; })
    };
  }

  function chartConfig(entry, points) {
    var metric = entry.type === "pie" && entry.data.agents ? entry.metric : seriesMetric(entry);
    var type = entry.type === "area" ? "line" : entry.type;
    var colour = token("--chart-bar");
    var dataset = { label: metric, data: points.values };
    if (type === "pie") {
      dataset.backgroundColor = points.values.map(function (_, i) { return PALETTE[i % PALETTE.length]; });
    } else if (type === "bar") {
      dataset.backgroundColor = colour;
      dataset.borderRadius = 2;
    } else {
      dataset.borderColor = colour;
      dataset.backgroundColor = colour + "33";
      dataset.fill = entry.type === "area";
      dataset.pointRadius = points.values.length > 40 ? 0 : 2;
    }
    var options = {
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: type === "pie", position: "bottom" },
        tooltip: { callbacks: { label: function (item) { return figure(item.raw, metric); } } }
      }
    };
    if (type !== "pie") {
      options.scales = {
        x: { grid: { display: false }, ticks: { autoSkipPadding: 12, maxRotation: 0 } },
        y: {
          beginAtZero: true,
          suggestedMax: kind(metric) === "percent" ? 1 : undefined,
          ticks: { precision: kind(metric) === "percent" ? 2 : 0, callback: function (value) { return figure(value, metric); } }
        }
      };
    }
    return { type: type, data: { labels: points.labels, datasets: [dataset] }, options: options };
  }

  function showError(section, message) {
    var body = section.querySelector(".widget__error");
    if (!body) {
      section.querySelectorAll(".widget__canvas, .widget__number, .widget__note, .widget__table").forEach(function (n) {
        n.hidden = true;
      });
      body = document.createElement("p");
      body.className = "notice notice--error widget__error";
      section.appendChild(body);
    }
    body.textContent = message;
  }

  function render(section, entry) {
    if (entry.error) {
      showError(section, entry.error.message);
      return;
    }
    var data = entry.data;
    if (entry.type === "number") {
      var number = section.querySelector("[data-number]");
      if (number) number.textContent = figure(data.totals ? data.totals.sum : data.value, entry.metric);
    } else if (entry.type === "table") {
      var rows = section.querySelector("[data-rows]");
      if (!rows) return;
      rows.textContent = "";
      data.series.forEach(function (point) {
        var row = rows.insertRow();
        row.insertCell().textContent = periodText(point.period, data.window.aggregation);
        var cell = row.insertCell();
        cell.className = "num";
        cell.textContent = figure(point.value, seriesMetric(entry));
      });
      var whole = section.querySelector("[data-value]");
      if (whole) whole.textContent = figure(data.value, entry.metric);
    } else {
      var canvas = section.querySelector("canvas");
      if (!canvas) return;
      var points = plotted(entry);
      var chart = Chart.getChart(canvas);
      if (chart) {
        chart.data.labels = points.labels;
        chart.data.datasets[0].data = points.values;
        if (entry.type === "pie") {
          chart.data.datasets[0].backgroundColor = points.values.map(function (_, i) { return PALETTE[i % PALETTE.length]; });
        }
        chart.update();
      } else {
        new Chart(canvas, chartConfig(entry, points));
      }
    }
    section.dataset.updated = String(Date.now());
  }

  var sections = {};
  document.querySelectorAll("[data-widget]").forEach(function (section) {
    sections[section.dataset.widget] = section;
  });
  board.widgets.forEach(function (entry) {
    if (sections[entry.id]) render(sections[entry.id], entry);
  });

  // Live updates (live.js).
  function time() {
    return new Date().toLocaleTimeString("en", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  window.followLive({
    csrf: block.dataset.csrf,
    rooms: ["dashboard:" + board.dashboard_id, board.data_room],
    say: function (text) { status.textContent = text; },
    listening: "Live: widgets update as new data arrives.",
    heard: function (event) {
      if (event.type === "dashboard_update" && sections[event.data.widget_id]) {
        render(sections[event.data.widget_id], event.data.data);
        status.textContent = "Live: updated at " + time() + ".";
      } else if (event.type === "metric_ingested") {
        document.body.dataset.ingested = String(Number(document.body.dataset.ingested || 0) + event.data.count);
        status.textContent = "Live: " + event.data.count.toLocaleString("en") + " new " +
          (event.data.count === 1 ? "record" : "records") + " at " + time() + "; the widgets follow within seconds.";
      }
    }
  });
})();
