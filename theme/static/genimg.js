// genimg lightbox: click a picture to see the full PNG; arrow keys, buttons and swipes
// move through the pictures of the page (one post; in a comparison grid the arrow keys
// move along its rows and columns), Escape or a click outside closes.
// Without JavaScript each picture is a plain link to its PNG.
(function () {
  "use strict";
  var links = Array.prototype.slice.call(document.querySelectorAll("a.picture-link"));
  if (!links.length) return;

  var box = document.createElement("div");
  box.className = "lightbox";
  box.hidden = true;
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", "Picture viewer");
  box.innerHTML =
    '<img alt="">' +
    '<p class="lb-caption" aria-live="polite"></p>' +
    '<span class="lb-count"></span>' +
    '<button type="button" class="lb-prev" aria-label="Previous picture">\u2039</button>' +
    '<button type="button" class="lb-next" aria-label="Next picture">\u203a</button>' +
    '<button type="button" class="lb-close" aria-label="Close">\u00d7</button>';
  document.body.appendChild(box);
  var img = box.querySelector("img");
  var caption = box.querySelector(".lb-caption");
  var count = box.querySelector(".lb-count");
  var buttons = Array.prototype.slice.call(box.querySelectorAll("button"));
  var current = -1, opener = null;

  function wrap(i) { return (i + links.length) % links.length; }

  function show(i) {
    current = wrap(i);
    var link = links[current], thumb = link.querySelector("img");
    img.src = link.href;
    img.alt = thumb ? thumb.alt : "";
    var text = link.getAttribute("data-caption") || "";
    var prompt = link.getAttribute("data-prompt") || "";
    caption.textContent = text && prompt ? text + " \u2014 " + prompt : text || prompt;
    count.textContent = (current + 1) + " / " + links.length;
    box.setAttribute("data-index", String(current));
    if (links.length > 1) new Image().src = links[wrap(current + 1)].href;  // preload next
  }

  function open(i) {
    opener = document.activeElement;
    box.hidden = false;
    document.documentElement.classList.add("lightbox-open");
    show(i);
    box.querySelector(".lb-close").focus();
  }

  function close() {
    box.hidden = true;
    current = -1;
    document.documentElement.classList.remove("lightbox-open");
    if (opener && opener.focus) opener.focus();
  }

  links.forEach(function (link, i) {
    link.addEventListener("click", function (e) {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      open(i);
    });
  });
  if (links.length < 2) {
    box.querySelector(".lb-prev").hidden = true;
    box.querySelector(".lb-next").hidden = true;
  }
  box.querySelector(".lb-prev").addEventListener("click", function () { show(current - 1); });
  box.querySelector(".lb-next").addEventListener("click", function () { show(current + 1); });
  box.querySelector(".lb-close").addEventListener("click", close);
  box.addEventListener("click", function (e) { if (e.target === box) close(); });

  // In a comparison grid the arrow keys move along its rows and columns (wrapping round).
  function gridStep(dx, dy) {
    var cell = links[current].closest("td[data-x]");
    if (!cell) return false;
    var table = cell.closest("table");
    var cols = +table.getAttribute("data-columns"), rows = +table.getAttribute("data-rows");
    var x = (+cell.getAttribute("data-x") + dx + cols) % cols;
    var y = (+cell.getAttribute("data-y") + dy + rows) % rows;
    var target = table.querySelector('td[data-x="' + x + '"][data-y="' + y + '"] a.picture-link');
    if (!target) return false;
    show(links.indexOf(target));
    return true;
  }

  document.addEventListener("keydown", function (e) {
    if (box.hidden) return;
    if (e.key === "ArrowRight") { e.preventDefault(); if (!gridStep(1, 0)) show(current + 1); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); if (!gridStep(-1, 0)) show(current - 1); }
    else if (e.key === "ArrowDown" && gridStep(0, 1)) e.preventDefault();
    else if (e.key === "ArrowUp" && gridStep(0, -1)) e.preventDefault();
    else if (e.key === "Escape") { e.preventDefault(); close(); }
    else if (e.key === "Tab") {  // keep focus inside the dialog
      var shown = buttons.filter(function (b) { return !b.hidden; });
      var at = shown.indexOf(document.activeElement);
      var next = at + (e.shiftKey ? -1 : 1);
      e.preventDefault();
      shown[(next + shown.length) % shown.length].focus();
    }
  });

  var startX = null, startY = null;
  box.addEventListener("touchstart", function (e) {
    if (e.touches.length !== 1) { startX = null; return; }
    startX = e.touches[0].clientX;
    startY = e.touches[0].clientY;
  }, { passive: true });
  box.addEventListener("touchend", function (e) {
    if (startX === null) return;
    var dx = e.changedTouches[0].clientX - startX;
    var dy = e.changedTouches[0].clientY - startY;
    startX = null;
    if (Math.abs(dx) > 40 && Math.abs(dx) > Math.abs(dy)) show(current + (dx < 0 ? 1 : -1));
    else if (dy > 80 && Math.abs(dy) > Math.abs(dx)) close();  // swipe down closes
  });
})();

// Copy buttons (in each picture's settings): the prompt, the A1111 infotext, the genimg
// spec. The Clipboard API needs a secure context; elsewhere (http://, file://) a hidden
// textarea and execCommand("copy") do it. Each copy is shown on the button and announced.
(function () {
  "use strict";
  var groups = document.querySelectorAll(".copy-buttons");
  if (!groups.length) return;
  var live = document.createElement("p");
  live.className = "visually-hidden";
  live.setAttribute("role", "status");
  document.body.appendChild(live);

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-100vh";
    document.body.appendChild(area);
    var focused = document.activeElement;
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    if (focused && focused.focus) focused.focus();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }

  groups.forEach(function (group) { group.hidden = false; });
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.copy");
    if (!button) return;
    var what = button.getAttribute("data-what");
    copy(button.getAttribute("data-copy")).then(function () {
      button.classList.add("copied");
      live.textContent = what + " copied";
    }, function () {
      button.classList.add("copy-failed");
      live.textContent = what + " could not be copied";
    });
    setTimeout(function () {
      button.classList.remove("copied", "copy-failed");
      if (live.textContent.indexOf(what) === 0) live.textContent = "";
    }, 2500);
  });
})();

// Before/after slider of a picture and the one it was made from. The range input does
// the keyboard (arrows, Home, End, Page Up/Down) and screen readers; pointer events do
// mouse, pen and touch drags anywhere on the picture.
(function () {
  "use strict";
  document.querySelectorAll("figure.picture").forEach(function (figure) {
    var box = figure.querySelector(".compare");
    var toggle = figure.querySelector(".compare-toggle");
    var link = figure.querySelector(".picture-link");
    if (!box || !toggle || !link) return;
    var range = box.querySelector(".compare-range");
    var dragging = false;

    function set(value) {
      range.value = String(value);
      box.style.setProperty("--position", value + "%");
      range.setAttribute("aria-valuetext", value + "% before");
    }
    function slider(on) {
      box.hidden = !on;
      link.hidden = on;
      toggle.setAttribute("aria-pressed", String(on));
    }
    function move(e) {
      var r = box.getBoundingClientRect();
      set(Math.round(Math.min(100, Math.max(0, (e.clientX - r.left) / r.width * 100))));
    }

    range.addEventListener("input", function () { set(+range.value); });
    box.addEventListener("pointerdown", function (e) {
      dragging = true;
      try { box.setPointerCapture(e.pointerId); } catch (error) { /* a synthetic event */ }
      move(e);
      range.focus({ preventScroll: true });
      e.preventDefault();
    });
    box.addEventListener("pointermove", function (e) { if (dragging) move(e); });
    box.addEventListener("pointerup", function () { dragging = false; });
    box.addEventListener("pointercancel", function () { dragging = false; });
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      slider(box.hidden);
      if (!box.hidden) range.focus();
    });
    if (figure.getAttribute("data-compare") === "slider") slider(true);
  });
})();
