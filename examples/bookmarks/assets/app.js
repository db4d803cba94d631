// The bookmarks page: each control calls the JSON API (with the login
// cookie and the page's CSRF token) and reloads the page, or says why not.
"use strict";

(() => {
  const app = document.getElementById("bookmarks-app");
  if (!app) return;
  const message = document.getElementById("message");

  async function call(method, path, body) {
    const init = { method, headers: { "x-csrf-token": app.dataset.csrf } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (!r.ok) {
      let why = r.statusText;
      try {
        why = (await r.json()).error || why;
      } catch (_) {
        // Not JSON: keep the status text.
      }
      throw new Error(why);
    }
  }

  async function act(what) {
    message.textContent = "";
    message.dataset.kind = "";
    try {
      await what();
      location.reload();
    } catch (e) {
      message.textContent = e.message;
      message.dataset.kind = "error";
    }
  }

  document.getElementById("add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const field = (id) => document.getElementById(id);
    act(() =>
      call("POST", "/api/bookmarks", {
        url: field("new-url").value,
        title: field("new-title").value,
        public: field("new-public").checked,
      }),
    );
  });

  const mine = document.getElementById("mine");
  mine.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[type=button]");
    if (!button) return;
    const id = button.closest("li[data-id]").dataset.id;
    const base = `/api/bookmarks/${encodeURIComponent(id)}`;
    if (button.classList.contains("publish")) {
      act(() => call("POST", `${base}/publish`));
    } else if (button.classList.contains("unpublish")) {
      act(() => call("DELETE", `${base}/publish`));
    } else if (button.classList.contains("delete")) {
      act(() => call("DELETE", base));
    } else if (button.classList.contains("withdraw")) {
      const login = button.closest("li[data-login]").dataset.login;
      act(() => call("DELETE", `${base}/share/${encodeURIComponent(login)}`));
    }
  });
  mine.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const id = form.closest("li[data-id]").dataset.id;
    act(() =>
      call("POST", `/api/bookmarks/${encodeURIComponent(id)}/share`, {
        to: form.elements.namedItem("to").value,
      }),
    );
  });
  // The controls work from now on (what a test waits for).
  app.dataset.ready = "true";
})();
