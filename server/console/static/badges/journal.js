// The offline journal: entries are written to IndexedDB first (with the time they were
// written and a random key), then uploaded to /badges/api/entries whenever the server answers.
// The server stores each key once, so an upload repeated after a lost answer stores nothing new.
(() => {
  "use strict";
  const DB_NAME = "qaqpa-badges";
  const STORE = "outbox";
  const RETRY_MS = 2000;
  const TIMEOUT_MS = 8000; // a hanging village link must not stop the retries
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const net = document.getElementById("net");
  const labels = JSON.parse(document.getElementById("labels").textContent || "{}");
  const label = (v) => (v != null && labels[v]) || v;
  let flushing = false;

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/badges/sw.js", { scope: "/badges/" }).catch(() => {});
  }

  const open = () => new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "key" });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

  const tx = async (mode, fn) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const out = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(out && out.result !== undefined ? out.result : undefined);
      t.onerror = () => reject(t.error);
    });
  };

  const all = () => tx("readonly", (s) => s.getAll());
  const put = (entry) => tx("readwrite", (s) => s.put(entry));

  const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));

  async function render(serverEntries) {
    const local = await all();
    const rows = new Map();
    for (const e of local) rows.set(e.key, { ...e, state: e.sent ? net.dataset.sent : net.dataset.waiting });
    for (const e of serverEntries || []) rows.set(e.key, { ...e, state: e.status });
    const body = document.getElementById("entries");
    body.textContent = "";
    const sorted = [...rows.values()].sort((a, b) => b.written_at_ms - a.written_at_ms);
    for (const e of sorted) {
      const tr = document.createElement("tr");
      tr.dataset.key = e.key;
      const amount = e.book ? e.book : e.days != null && e.days !== "" ? `${e.days} d` : `${e.hours} h`;
      for (const v of [e.date, label(e.direction), amount, new Date(e.written_at_ms).toLocaleString(), label(e.state)]) {
        const td = document.createElement("td");
        td.textContent = v == null ? "" : String(v);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    const waiting = local.filter((e) => !e.sent).length;
    document.body.dataset.pending = String(waiting);
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      const waiting = (await all()).filter((e) => !e.sent);
      let listed = null;
      if (waiting.length) {
        const body = waiting.map(({ sent, error, ...e }) => e);
        const r = await fetch("/badges/api/entries", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ entries: body }),
          credentials: "same-origin",
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        if (!r.ok) throw new Error(`upload ${r.status}`);
        const answer = await r.json();
        const done = new Set(answer.stored);
        for (const e of waiting) {
          const refused = answer.refused.find((x) => x.key === e.key);
          if (done.has(e.key)) await put({ ...e, sent: 1 });
          else if (refused) await put({ ...e, sent: 1, error: refused.message });
        }
      }
      const r2 = await fetch("/badges/api/entries", { credentials: "same-origin", signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (r2.ok) listed = (await r2.json()).entries;
      net.textContent = net.dataset.online;
      net.className = "ok";
      await render(listed);
    } catch (err) {
      net.textContent = net.dataset.offline;
      net.className = "warn";
      await render(null);
    } finally {
      flushing = false;
    }
  }

  const form = document.getElementById("entry-form");
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const direction = f.get("direction");
      const entry = { key: newKey(), direction, date: f.get("date"), written_at_ms: Date.now(), text: f.get("text") || "", sent: 0 };
      if (direction === "reading" || (direction === "heritage" && f.get("book"))) {
        entry.book = f.get("book");
        entry.section = f.get("section");
      } else if (direction === "trip" || direction === "work") {
        entry.days = Number.parseInt(f.get("days") || "0", 10);
      } else {
        entry.hours = String(f.get("hours") || "0");
      }
      // cleared at once, before the (asynchronous) write: what is typed next is never wiped
      form.reset();
      document.getElementById("date").value = entry.date;
      await put(entry);
      await render(null);
      flush();
    });
  }

  window.addEventListener("online", flush);
  setInterval(flush, RETRY_MS);
  flush();
})();
