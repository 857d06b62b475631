// wasiter's ask page: the questions a route in ask mode holds, one button
// per answer, the recent decisions and the draft allowlist.
//
// It asks GET /api/questions every second and POSTs /api/answer on a
// click, with the admin token as a bearer token (docs/ask.md). The token
// comes from the address's #token=... fragment (which a browser never
// sends to a server) or from the field; it is kept in this tab's
// sessionStorage only. Every value from the proxy is set with textContent:
// a hostile name or path is shown as text, never read as markup.
"use strict";

const ANSWERS = [
  ["once", "once"],
  ["session", "session"],
  ["forever", "forever"],
  ["deny", "deny"],
  ["deny-forever", "deny forever"],
];
const KEY = "wasiter-admin-token";
const $ = (id) => document.getElementById(id);

// The token: from the fragment (then removed from the address bar), else
// from this tab's storage.
function takeToken() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  if (body) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
    credentials: "omit",
  });
  let data = {};
  try {
    data = await res.json();
  } catch (e) {
    // not JSON: data stays empty
  }
  return { status: res.status, data };
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function showLogin(why) {
  if (why || $("login").hidden) $("status").textContent = why || "Give the admin token.";
  $("board").hidden = true;
  $("login").hidden = false;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function destination(q) {
  return q.port ? q.host + ":" + q.port : q.host;
}

// One row per question, made once and kept while the question waits (so
// that a button is not replaced under the pointer); its figures updated.
function showQuestions(questions) {
  const body = $("questions").querySelector("tbody");
  const waiting = new Set(questions.map((q) => String(q.id)));
  for (const row of Array.from(body.rows)) {
    if (!waiting.has(row.dataset.question)) row.remove();
  }
  for (const q of questions) {
    let row = body.querySelector('tr[data-question="' + q.id + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.question = String(q.id);
      cell(row, String(q.id));
      cell(row, q.route);
      cell(row, q.client);
      cell(row, q.way);
      cell(row, destination(q), "destination");
      cell(row, q.method ? q.method + " " + q.path : "", "request");
      cell(row, "", "waited");
      cell(row, "", "clients");
      const buttons = cell(row, "");
      for (const [answer, label] of ANSWERS) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.answer = answer;
        button.textContent = label;
        buttons.appendChild(button);
      }
      body.appendChild(row);
    }
    row.querySelector(".waited").textContent = q.waited_s + " s";
    row.querySelector(".clients").textContent = String(q.clients);
  }
  $("none").hidden = questions.length > 0;
  $("questions").hidden = questions.length === 0;
}

function showRecent(recent) {
  const body = $("recent").querySelector("tbody");
  body.replaceChildren();
  for (const r of recent) {
    const row = document.createElement("tr");
    for (const text of [String(r.id), r.at, r.route, r.client, r.way, destination(r), r.answer, r.by]) {
      cell(row, text);
    }
    body.appendChild(row);
  }
}

async function poll() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  try {
    const { status, data } = await api("GET", "/api/questions");
    if (status === 401) {
      sessionStorage.removeItem(KEY);
      return showLogin("The proxy refused that token: give it again.");
    }
    if (status !== 200) {
      $("status").textContent = "The proxy answered " + status + ": " + (data.error || "");
      return;
    }
    $("login").hidden = true;
    $("board").hidden = false;
    $("status").textContent = "Up to date at " + new Date().toLocaleTimeString();
    showQuestions(data.questions);
    showRecent(data.recent);
    $("drafts").textContent = data.drafts;
  } catch (e) {
    $("status").textContent = "Cannot reach the proxy (" + e.message + "); trying again.";
  }
}

// A click on an answer button, anywhere in the table.
async function answer(event) {
  const button = event.target.closest("button[data-answer]");
  if (!button) return;
  const row = button.closest("tr[data-question]");
  const id = Number(row.dataset.question);
  for (const b of row.querySelectorAll("button")) b.disabled = true;
  try {
    const { status, data } = await api("POST", "/api/answer", { id, answer: button.dataset.answer, by: "page" });
    if (status === 200) {
      showError("");
      row.remove();
    } else {
      showError("Question " + id + " (" + button.dataset.answer + "): " + status + " " + (data.error || ""));
    }
  } catch (e) {
    showError("Cannot reach the proxy: " + e.message);
  }
  for (const b of row.querySelectorAll("button")) b.disabled = false;
  poll();
}

function start() {
  takeToken();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    poll();
  });
  $("questions").addEventListener("click", answer);
  // Every second, one request at a time.
  const tick = async () => {
    await poll();
    setTimeout(tick, 1000);
  };
  tick();
}

start();
