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
  // Print buttons (evacuation list).
  for (const el of document.querySelectorAll("[data-print]")) {
    el.addEventListener("click", () => window.print());
  }
});
