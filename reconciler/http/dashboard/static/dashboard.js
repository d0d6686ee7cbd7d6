/* hoody dashboard: refresh the main region in place every few seconds.
 * The page is complete without this file; it only fetches the same URL with
 * `X-Partial: 1` and swaps <main id="content">, keeping open <details> open. */
(function () {
  "use strict";
  var main = document.getElementById("content");
  var live = document.getElementById("live");
  if (!main || !window.fetch) return;
  var every = parseInt(main.getAttribute("data-refresh"), 10);

  // The run filter: submit on change (the Filter button stays for no-JS readers).
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
  });

  if (!every || every < 1000) return;
  var busy = false, failures = 0;

  function say(text) { if (live) live.textContent = text; }
  function clock() { return new Date().toLocaleTimeString(); }

  function busyWithForm() {
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }

  function openKeys() {
    var keys = {};
    main.querySelectorAll("details[data-key][open]").forEach(function (d) {
      keys[d.getAttribute("data-key")] = true;
    });
    return keys;
  }

  function refresh() {
    if (busy || document.hidden || busyWithForm()) return;
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Partial": "1" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (resp) {
      if (resp.status === 401) throw new Error("signed out: reload to sign in");
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.text();
    }).then(function (html) {
      var keep = openKeys();
      main.innerHTML = html;
      main.querySelectorAll("details[data-key]").forEach(function (d) {
        if (keep[d.getAttribute("data-key")]) d.open = true;
      });
      failures = 0;
      say("Live · updated " + clock());
    }).catch(function (err) {
      failures += 1;
      say("Not updating (" + err.message + ")");
    }).then(function () {
      busy = false;
    });
  }

  say("Live · updates every " + Math.round(every / 1000) + " s");
  window.setInterval(function () {
    if (failures < 10) refresh();
  }, every);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
