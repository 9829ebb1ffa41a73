// Watchpost setup page: progressive enhancement only. Every page works without this file;
// with it, values update live from the server's event stream (/live), forms marked
// data-enhance submit in place, camera snapshots refresh every 10 s, and the update page
// uploads a bundle as the raw body of the update API.
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function esc(v) {
    return window.CSS && CSS.escape ? CSS.escape(v) : String(v).replace(/["\\]/g, "\\$&");
  }

  // Sets the text of every [data-field=name] inside each element matching `scope`.
  function setFields(scope, values) {
    var roots = document.querySelectorAll(scope);
    for (var i = 0; i < roots.length; i++) {
      for (var key in values) {
        if (!Object.prototype.hasOwnProperty.call(values, key)) continue;
        var els = roots[i].querySelectorAll('[data-field="' + key + '"]');
        for (var j = 0; j < els.length; j++) {
          var text = values[key] === null || values[key] === undefined ? "–" : String(values[key]);
          if (els[j].textContent !== text) els[j].textContent = text;
        }
      }
    }
  }

  function setClass(scope, field, cls) {
    var els = document.querySelectorAll(scope + ' [data-field="' + field + '"]');
    for (var i = 0; i < els.length; i++) {
      els[i].classList.remove("ok", "warn", "bad", "muted");
      if (cls) els[i].classList.add(cls);
    }
  }

  function onSensor(ev) {
    var s = JSON.parse(ev.data);
    var scope = '[data-sensor="' + esc(s.id) + '"]';
    setFields(scope, { state: s.state, online: s.online ? "online" : "offline",
                       battery: s.battery, changed: s.changed });
    setClass(scope, "state", s.alarm ? "bad" : "ok");
  }

  function onZone(ev) {
    var z = JSON.parse(ev.data);
    setFields('[data-zone="' + esc(z.id) + '"]', { temperature: z.temperature,
      setpoint: z.setpoint, humidity: z.humidity, state: z.state });
  }

  function onHealth(ev) {
    var h = JSON.parse(ev.data);
    (h.workers || []).forEach(function (w) {
      var scope = '[data-worker="' + esc(w.name) + '"]';
      setFields(scope, { state: w.state, restarts: w.restarts, status: w.status });
      setClass(scope, "state", w.state === "running" ? "ok" : (w.state === "failed" ? "bad" : "warn"));
    });
    setFields("[data-system]", { led: h.led, uptime: h.uptime });
  }

  // The update page: the status card's fields, the progress bar and the state's colour.
  function onUpdate(ev) {
    var u = JSON.parse(ev.data);
    setFields("[data-update]", { label: u.label, progress: u.progress, message: u.message,
                                 reason: u.reason, version: u.version });
    setClass("[data-update]", "label", u["class"]);
    var bars = document.querySelectorAll('[data-update] progress');
    for (var i = 0; i < bars.length; i++) bars[i].value = u.percent;
  }

  // The update page's upload: the chosen file is the raw body of POST /api/v1/system/update
  // (streamed by the browser, as curl --data-binary does), with the CSRF header.
  function enhanceUpload() {
    var form = document.querySelector("form[data-update-upload]");
    if (!form) return;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = form.querySelector('input[type="file"]').files[0];
      var out = form.querySelector("[role=status]");
      if (!file) return;
      var force = form.querySelector('input[name="force"]').checked;
      var button = form.querySelector("button");
      button.disabled = true;
      if (out) out.textContent = "Uploading " + file.name + "…";
      fetch("/api/v1/system/update" + (force ? "?force=true" : ""), {
        method: "POST", body: file, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/octet-stream",
                   "Accept": "application/json" }
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!out) return;
          out.classList.remove("ok", "bad");
          out.classList.add(r.ok ? "ok" : "bad");
          out.textContent = r.ok ? "Accepted; installing." :
            ((j.error && (j.error.code + ": " + j.error.message)) || r.statusText);
        });
      }).catch(function (err) {
        if (out) out.textContent = "Not sent: " + err;
      }).finally(function () { button.disabled = false; });
    });
  }

  function startLive() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
    var source = new EventSource("/live");
    source.addEventListener("sensor", onSensor);
    source.addEventListener("zone", onZone);
    source.addEventListener("health", onHealth);
    source.addEventListener("update", onUpdate);
    var status = document.getElementById("live-status");
    source.onopen = function () { if (status) status.textContent = "Live updates on."; };
    source.onerror = function () { if (status) status.textContent = "Live updates interrupted; retrying."; };
  }

  // Forms marked data-enhance are sent with fetch; the answer's message goes to the form's
  // [role=status] element (or the page's #flash). The server answers JSON when the request
  // carries X-CSRF-Token, a 303 redirect otherwise.
  function enhanceForms() {
    var forms = document.querySelectorAll("form[data-enhance]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", submit);
    }
  }

  function submit(e) {
    var form = e.currentTarget;
    e.preventDefault();
    var out = form.querySelector("[role=status]") || document.getElementById("flash");
    var body = new URLSearchParams(new FormData(form));
    if (e.submitter && e.submitter.name) body.append(e.submitter.name, e.submitter.value);
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    if (out) out.textContent = "Sending…";
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().catch(function () { return { ok: r.ok, message: r.statusText }; });
    }).then(function (j) {
      if (out) {
        out.textContent = j.message || (j.ok ? "Done." : "Failed.");
        out.classList.remove("ok", "bad");
        out.classList.add(j.ok ? "ok" : "bad");
      }
      if (j.fields && form.dataset.target) setFields(form.dataset.target, j.fields);
    }).catch(function (err) {
      if (out) out.textContent = "Not sent: " + err;
    }).finally(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  // Camera snapshots: a fresh one every 10 s while the page is visible.
  function refreshImages() {
    var imgs = document.querySelectorAll("img[data-refresh]");
    if (!imgs.length) return;
    setInterval(function () {
      if (document.hidden) return;
      for (var i = 0; i < imgs.length; i++) {
        var base = imgs[i].getAttribute("data-refresh");
        imgs[i].src = base + (base.indexOf("?") < 0 ? "?" : "&") + "t=" + Date.now();
      }
    }, 10000);
  }

  // A settings backup chosen in input[data-restore-into] is read into that text area.
  function restoreFiles() {
    var inputs = document.querySelectorAll("input[data-restore-into]");
    for (var i = 0; i < inputs.length; i++) {
      inputs[i].addEventListener("change", function (e) {
        var target = document.getElementById(e.target.getAttribute("data-restore-into"));
        var file = e.target.files && e.target.files[0];
        if (!target || !file) return;
        file.text().then(function (t) { target.value = t; });
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLive();
    enhanceForms();
    refreshImages();
    restoreFiles();
    enhanceUpload();
  });
})();
