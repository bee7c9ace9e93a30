// Live tail of an app's logs (Server-Sent Events). The page works without
// it: it already shows the recent lines.
(function () {
  var box = document.getElementById("live");
  var out = document.getElementById("live-log");
  var status = document.getElementById("live-status");
  if (!box || !out || !window.EventSource) return;
  var max = 2000;
  status.textContent = "Connecting to the live tail…";
  var es = new EventSource(box.getAttribute("data-src"));
  es.onopen = function () {
    status.textContent = "Live: new lines appear below.";
    box.className = "live";
  };
  es.onmessage = function (e) {
    var stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    var line = document.createElement("div");
    line.className = "line";
    line.textContent = e.data;
    out.appendChild(line);
    while (out.childNodes.length > max) out.removeChild(out.firstChild);
    if (stick) out.scrollTop = out.scrollHeight;
  };
  es.onerror = function () {
    status.textContent = "Live tail disconnected; retrying…";
    box.className = "";
  };
})();
