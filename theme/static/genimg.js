// genimg lightbox: click a picture to view it large; arrows, Escape and swipes move.
(function () {
  "use strict";
  var links = Array.prototype.slice.call(document.querySelectorAll(".picture-link"));
  if (!links.length) return;
  var box = document.createElement("div");
  box.className = "lightbox";
  box.hidden = true;
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", "Picture viewer");
  box.innerHTML = '<img alt=""><p class="lb-caption"></p>' +
    '<button class="lb-prev" aria-label="Previous picture">‹</button>' +
    '<button class="lb-next" aria-label="Next picture">›</button>' +
    '<button class="lb-close" aria-label="Close">×</button>';
  document.body.appendChild(box);
  var img = box.querySelector("img"), caption = box.querySelector(".lb-caption");
  var current = -1, opener = null;

  function show(i) {
    current = (i + links.length) % links.length;
    var link = links[current], thumb = link.querySelector("img");
    img.src = link.getAttribute("data-full") || link.href;
    img.alt = thumb ? thumb.alt : "";
    caption.textContent = thumb ? thumb.alt : "";
    box.setAttribute("data-index", String(current));
  }
  function open(i) { opener = document.activeElement; box.hidden = false; show(i); box.querySelector(".lb-close").focus(); }
  function close() { box.hidden = true; current = -1; if (opener) opener.focus(); }

  links.forEach(function (link, i) {
    link.addEventListener("click", function (e) {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      open(i);
    });
  });
  box.querySelector(".lb-prev").addEventListener("click", function () { show(current - 1); });
  box.querySelector(".lb-next").addEventListener("click", function () { show(current + 1); });
  box.querySelector(".lb-close").addEventListener("click", close);
  box.addEventListener("click", function (e) { if (e.target === box) close(); });
  document.addEventListener("keydown", function (e) {
    if (box.hidden) return;
    if (e.key === "ArrowRight") show(current + 1);
    else if (e.key === "ArrowLeft") show(current - 1);
    else if (e.key === "Escape") close();
  });
  var startX = null;
  box.addEventListener("touchstart", function (e) { startX = e.touches[0].clientX; }, { passive: true });
  box.addEventListener("touchend", function (e) {
    if (startX === null) return;
    var dx = e.changedTouches[0].clientX - startX;
    if (Math.abs(dx) > 40) show(current + (dx < 0 ? 1 : -1));
    startX = null;
  });
})();
