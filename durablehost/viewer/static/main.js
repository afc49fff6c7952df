// The viewer's shell: hash routes (#/?filters = instances, #/instance/<id> = one instance), the key
// form, and the live-refresh timer shared by the pages.
import { getKey, setKey } from "./api.js";
import { renderDetail } from "./detail.js";
import { el } from "./dom.js";
import { renderList } from "./list.js";

const main = document.getElementById("main");

// One refresh loop for the page on screen; replaced on every navigation. A refresh starts only when
// the previous one has finished, so a slow host is not flooded.
let timer = null;
const live = {
  every(ms, refresh) {
    let busy = false;
    timer = setInterval(async () => {
      if (busy || !liveToggle.checked || document.hidden || document.getElementById("dialog").open) return;
      busy = true;
      try {
        await refresh();
      } finally {
        busy = false;
      }
    }, ms);
  },
};

const liveToggle = el("input", { type: "checkbox", id: "live", checked: sessionStorage.getItem("durablehost.viewer.live") !== "off" });
liveToggle.addEventListener("change", () => sessionStorage.setItem("durablehost.viewer.live", liveToggle.checked ? "on" : "off"));
document.querySelector("header nav").append(el("label", { class: "inline" }, liveToggle, "live refresh"));

function route() {
  clearInterval(timer);
  const hash = location.hash.slice(1) || "/";
  const [path, query = ""] = hash.split("?");
  if (path.startsWith("/instance/")) renderDetail(main, decodeURIComponent(path.slice("/instance/".length)), live);
  else renderList(main, new URLSearchParams(query), live);
}

const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyState = document.getElementById("key-state");
const notice = document.getElementById("notice");

function showKeyState() {
  keyState.textContent = getKey() ? "key set (this tab)" : "";
}

keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  setKey(keyInput.value.trim());
  keyInput.value = "";
  notice.hidden = true;
  showKeyState();
  route();
});

window.addEventListener("needkey", () => {
  notice.textContent = getKey()
    ? "The host refused the key (HTTP 401). Enter the master key or the system key."
    : "This host is exposed: the management API needs a key. Enter the master key or the system key above.";
  notice.hidden = false;
});

window.addEventListener("hashchange", route);
showKeyState();
route();
