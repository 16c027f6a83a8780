// genimg search page: asks the Pagefind index for what a query needs (the index is split
// in chunks; only those of the query's words are fetched) and lists pictures and posts
// found as thumbnails linking to the picture in its post. The query lives in ?q=.
(function () {
  "use strict";
  var script = document.currentScript;
  var form = document.querySelector(".search-form");
  var input = document.getElementById("search-input");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  var more = document.getElementById("search-more");
  var PAGE = 24;
  var pagefind = null, results = [], shown = 0, asked = 0, timer = null;

  function say(text) { status.textContent = text; }

  function load() {
    if (!pagefind) {
      pagefind = import(script.getAttribute("data-pagefind")).then(function (pf) {
        return pf.init().then(function () { return pf; });
      });
    }
    return pagefind;
  }

  // Pagefind's excerpt is HTML with <mark>: keep the text and the marks, nothing else.
  function excerpt(html) {
    var out = document.createElement("span");
    out.className = "result-excerpt";
    var body = new DOMParser().parseFromString(html, "text/html").body;
    body.childNodes.forEach(function (node) {
      if (node.nodeName === "MARK") {
        var mark = document.createElement("mark");
        mark.textContent = node.textContent;
        out.appendChild(mark);
      } else {
        out.appendChild(document.createTextNode(node.textContent));
      }
    });
    return out;
  }

  function item(data) {
    var meta = data.meta || {};
    var li = document.createElement("li");
    li.className = "result result-" + (meta.kind || "post");
    var link = document.createElement("a");
    link.href = meta.url;  // a full path: the picture in its post, under any base_url
    if (meta.image) {
      var img = document.createElement("img");
      img.src = meta.image;
      img.alt = "";
      img.width = +meta.width || 512;
      img.height = +meta.height || 512;
      img.loading = "lazy";
      img.decoding = "async";
      link.appendChild(img);
    }
    var title = document.createElement("span");
    title.className = "result-title";
    title.textContent = meta.title || data.url;
    link.appendChild(title);
    var kind = document.createElement("span");
    kind.className = "result-kind";
    kind.textContent = (meta.kind === "picture" ? "Picture in " + meta.post : "Post") +
      (meta.preview ? " \u00b7 preview" : "");
    link.appendChild(kind);
    link.appendChild(excerpt(data.excerpt || ""));
    li.appendChild(link);
    return li;
  }

  function showMore() {
    var slice = results.slice(shown, shown + PAGE);
    var query = asked;
    return Promise.all(slice.map(function (r) { return r.data(); })).then(function (found) {
      if (query !== asked) return;
      found.forEach(function (data) { list.appendChild(item(data)); });
      shown += slice.length;
      more.hidden = shown >= results.length;
    });
  }

  function run(query) {
    var mine = ++asked;
    query = query.trim();
    list.textContent = "";
    more.hidden = true;
    if (!query) { say(""); return Promise.resolve(); }
    say("Searching\u2026");
    return load().then(function (pf) { return pf.search(query); }).then(function (search) {
      if (mine !== asked) return;
      results = search.results;
      shown = 0;
      return showMore().then(function () {
        if (mine !== asked) return;
        var n = results.length;
        say(n === 0 ? "Nothing found for \u201c" + query + "\u201d."
          : n + (n === 1 ? " result" : " results") + " for \u201c" + query + "\u201d.");
        document.body.setAttribute("data-searched", query);
      });
    }).catch(function (error) {
      say("Search is not available here (" + error.message + ").");
    });
  }

  function update() {
    var url = new URL(window.location.href);
    if (input.value.trim()) url.searchParams.set("q", input.value.trim());
    else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    run(input.value);
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); update(); });
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(update, 250);
  });
  more.addEventListener("click", function () { showMore(); });
  input.value = new URLSearchParams(window.location.search).get("q") || "";
  if (input.value) run(input.value);
  else say("Type to search.");
})();
