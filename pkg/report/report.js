"use strict";
// Highlight a host everywhere (tables, timeline, graph) when it is clicked,
// and filter the operations table. No data leaves the page.
(function () {
  var current = null;
  function mark(host) {
    current = current === host ? null : host;
    var all = document.querySelectorAll("[data-host]");
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      var on = current !== null && el.getAttribute("data-host") === current;
      el.classList.toggle("hl", on);
      el.classList.toggle("dim", current !== null && !on && el.classList.contains("mark"));
    }
    var status = document.getElementById("selected");
    if (status) {
      status.textContent = current === null ? "" : "highlighting " + current + " (click again to clear)";
    }
  }
  document.addEventListener("click", function (ev) {
    var el = ev.target;
    while (el && el !== document && !(el.getAttribute && el.getAttribute("data-host"))) {
      el = el.parentNode;
    }
    if (el && el !== document) {
      mark(el.getAttribute("data-host"));
    }
  });
  var filter = document.getElementById("opfilter");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      var rows = document.querySelectorAll("#ops tbody tr");
      for (var i = 0; i < rows.length; i++) {
        rows[i].style.display = q === "" || rows[i].textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      }
    });
  }
  document.documentElement.setAttribute("data-ready", "1");
})();
