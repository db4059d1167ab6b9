// The console works without scripts; this only adds conveniences (CSP allows only this file).
document.addEventListener("DOMContentLoaded", () => {
  // A language <select> submits its form on change.
  for (const el of document.querySelectorAll("select[data-autosubmit]")) {
    el.addEventListener("change", () => el.form.submit());
  }
  // Live parts: <div data-live="/url" data-every="5"> is replaced by the fragment at /url.
  for (const el of document.querySelectorAll("[data-live]")) {
    const every = Math.max(1, Number(el.dataset.every || 5)) * 1000;
    const refresh = async () => {
      try {
        const r = await fetch(el.dataset.live, { headers: { "X-Requested-With": "fetch" } });
        if (r.ok) { el.innerHTML = await r.text(); el.dataset.updated = String(Date.now()); }
      } catch (e) { /* offline for a moment: keep the last view */ }
    };
    setInterval(refresh, every);
  }
  // The menu: folded on a phone; one group open at a time, closed by a click elsewhere.
  const all = document.querySelector("details.menu-all");
  if (all && window.matchMedia("(max-width: 760px)").matches) all.open = false;
  const groups = [...document.querySelectorAll("nav.menu details.group")];
  for (const g of groups) {
    g.addEventListener("toggle", () => { if (g.open) for (const o of groups) if (o !== g) o.open = false; });
  }
  document.addEventListener("click", (e) => {
    for (const g of groups) if (g.open && !g.contains(e.target)) g.open = false;
  });
  // Print buttons (evacuation list).
  for (const el of document.querySelectorAll("[data-print]")) {
    el.addEventListener("click", () => window.print());
  }
});
