// Sorts each <table data-sortable> by the column whose heading is pressed: each <th data-sort="text|number">
// gets a button; cells sort by their data-value when they have one (empty: no figure, always last), else
// their text. aria-sort on the heading says the order, for screen readers and for the stylesheet's arrow.
(function () {
  "use strict";
  function key(row, index, kind) {
    var cell = row.cells[index];
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (raw === "") return null;
    return kind === "number" ? Number(raw) : raw;
  }

  function compare(a, b, kind) {
    return kind === "number" ? a - b : a.localeCompare(b, "en");
  }

  function sort(table, heading, index, kind) {
    // Numbers start largest first, text A to Z; pressing again reverses.
    var first = kind === "number" ? "descending" : "ascending";
    var current = heading.getAttribute("aria-sort");
    var order = current === first ? (first === "ascending" ? "descending" : "ascending") : first;
    var sign = order === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, key: key(row, index, kind), position: position };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return a.key === b.key ? a.position - b.position : a.key === null ? 1 : -1;
      }
      return sign * compare(a.key, b.key, kind) || a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    heading.setAttribute("aria-sort", order);
  }

  document.querySelectorAll("table[data-sortable]").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (heading, index) {
      var kind = heading.dataset.sort;
      if (!kind) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort-button";
      while (heading.firstChild) button.appendChild(heading.firstChild);
      heading.appendChild(button);
      button.addEventListener("click", function () { sort(table, heading, index, kind); });
    });
  });
})();
