// The offline journal's service worker (scope /badges/): keeps the journal page and its
// script so the page opens without a network; entries themselves wait in IndexedDB and are
// uploaded by the page (journal.js), each once, by its key.
const CACHE = "qaqpa-journal-v1";
const SHELL = ["/badges/me/journal", "/static/badges/journal.js", "/static/console.css", "/static/console.js"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) {
    return; // everything else goes to the network as usual
  }
  // Network first (a fresh page when online), the kept copy when the network fails.
  event.respondWith(
    fetch(req)
      .then((resp) => {
        if (resp.ok && !resp.redirected) {
          const copy = resp.clone();
          event.waitUntil(caches.open(CACHE).then((c) => c.put(url.pathname, copy)));
        }
        return resp;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())),
  );
});
