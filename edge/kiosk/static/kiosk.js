const WORDS = {
  kk: {idle: "Картаны оқу құрылғысына тигізіңіз", cls: "Сынып", balance: "Баланс", total: "Барлығы",
       can: "Жұмсауға болады", earlier: "Бұрын берілді", confirm: "Растау", cancel: "Болдырмау",
       after: "Қалдық", online: "байланыс бар", offline: "байланыс жоқ", blocked: "тыйым",
       signout: "Шығу", voucher: "Ваучер"},
  ru: {idle: "Приложите карту к считывателю", cls: "Класс", balance: "Баланс", total: "Итого",
       can: "Можно потратить", earlier: "Уже выдано", confirm: "Подтвердить", cancel: "Отмена",
       after: "Остаток", online: "на связи", offline: "нет связи", blocked: "запрет",
       signout: "Выйти", voucher: "Ваучер"},
  en: {idle: "Tap a card on the reader", cls: "Class", balance: "Balance", total: "Total",
       can: "Can spend", earlier: "Served earlier", confirm: "Confirm", cancel: "Cancel",
       after: "Balance after", online: "connected", offline: "disconnected", blocked: "blocked",
       signout: "Sign out", voucher: "Voucher"},
};
const $ = (id) => document.getElementById(id);
let lang = localStorage.getItem("qaqpa.lang") || document.documentElement.lang;
const CSRF = document.querySelector("meta[name=csrf-token]").content;
let terminal = localStorage.getItem("qaqpa.terminal") || $("terminal").value;
if (![...$("terminal").options].some((o) => o.value === terminal)) terminal = $("terminal").value;
$("terminal").value = terminal;
const IDLE = {screen: "idle", colour: "grey"};
const ALLERGENS = JSON.parse($("allergen-names").textContent);
const allergen = (code) => (ALLERGENS[code] ? ALLERGENS[code][lang] : code);
let screen = IDLE;
let idleTimer = null;
let cart = [];
let source = null;

const money = (t) => (t / 100).toLocaleString("ru-RU", {minimumFractionDigits: 2, maximumFractionDigits: 2}) + " ₸";
const text = (el, s) => { el.textContent = s == null ? "" : s; };

function render() {
  const w = WORDS[lang];
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-lang]").forEach((b) => b.classList.toggle("on", b.dataset.lang === lang));
  text($("sign-out"), w.signout);  // a word: the power glyph is missing from the kiosk's fonts
  const conn = $("conn");  // the connection label follows the language too
  if (conn.dataset.state) text(conn, conn.dataset.state === "open" ? "● " + w.online : "○ " + w.offline);
  const p = $("panel");
  p.className = screen.colour || "grey";
  p.dataset.screen = screen.screen;
  p.dataset.reason = screen.reason || "";
  text($("headline"), screen.headline ? screen.headline[lang] : "");
  text($("at"), screen.at || "");  // when the shown result happened
  text($("message"), screen.screen === "idle" ? w.idle : (screen.message ? screen.message[lang] : ""));
  const st = screen.student;
  $("who").classList.toggle("hidden", !st);
  if (st) {
    text($("photo"), st.photo || st.initials || "");
    text($("name"), st.name);
    text($("class"), w.cls + ": " + st.class);
  }
  let detail = "";
  if (screen.served_before) detail = w.earlier + ": " + screen.served_before.at + ", " + screen.served_before.terminal;
  else if (screen.balance_tiyn != null && screen.screen !== "served") detail = w.balance + ": " + money(screen.balance_tiyn);
  if (screen.voucher_tiyn) detail += (detail ? " · " : "") + w.voucher + ": " + money(screen.voucher_tiyn);
  text($("detail"), detail);
  $("error").classList.toggle("hidden", !screen.error);
  if (screen.error) text($("error"), screen.error.message[lang]);
  const paying = screen.screen === "pay" && screen.offer && screen.tap_id;
  $("pay").classList.toggle("hidden", !paying);
  if (paying) renderMenu(w);
  $("receipt").classList.toggle("hidden", !screen.receipt);
  if (screen.receipt) {
    const r = screen.receipt;
    $("receipt").innerHTML = "";
    for (const l of r.lines) {
      const div = document.createElement("div");
      div.textContent = l.portions + " × " + l.name + " — " + money(l.price_tiyn * l.portions);
      $("receipt").appendChild(div);
    }
    const tot = document.createElement("div");
    tot.id = "receipt-total";
    tot.textContent = w.total + ": " + money(r.amount_tiyn) + " · " + w.after + ": " + money(r.balance_after_tiyn);
    $("receipt").appendChild(tot);
  }
}

function renderMenu(w) {
  const menu = $("menu");
  menu.innerHTML = "";
  for (const d of screen.offer.dishes) {
    const b = document.createElement("button");
    b.className = "dish";
    b.dataset.item = d.id;
    b.disabled = !d.allowed;  // a blocked allergen, or more than can be spent now
    b.innerHTML = "";
    const n = document.createElement("span"); n.textContent = d.name; b.appendChild(n);
    const pr = document.createElement("span"); pr.className = "price"; pr.textContent = money(d.price_tiyn); b.appendChild(pr);
    if (d.allergens.length) {
      const a = document.createElement("span"); a.className = "allergens";
      a.textContent = d.allergens.map(allergen).join(", ") + (d.blocked_allergens.length ? " — " + w.blocked : "");
      b.appendChild(a);
    }
    b.onclick = () => { cart.push(d.id); render(); };
    menu.appendChild(b);
  }
  const ul = $("cart");
  ul.innerHTML = "";
  const byId = Object.fromEntries(screen.offer.dishes.map((d) => [d.id, d]));
  let total = 0;
  cart.forEach((id, i) => {
    total += byId[id].price_tiyn;
    const li = document.createElement("li");
    li.textContent = byId[id].name + " — " + money(byId[id].price_tiyn);
    const x = document.createElement("button"); x.textContent = "−";
    x.onclick = () => { cart.splice(i, 1); render(); };
    li.appendChild(x);
    ul.appendChild(li);
  });
  text($("total"), w.total + ": " + money(total) + " · " + w.can + ": " + money(screen.offer.spendable_tiyn));
  text($("confirm"), "✓ " + w.confirm);
  text($("cancel"), "✕ " + w.cancel);
  $("confirm").disabled = cart.length === 0;
}

function show(s) {
  if (s.screen !== "pay" || s.tap_id !== screen.tap_id) cart = [];
  screen = s;
  // a result stays on screen for hold_s seconds, then the terminal is idle again
  clearTimeout(idleTimer);
  if (s.screen !== "idle" && s.hold_s) idleTimer = setTimeout(() => show(IDLE), s.hold_s * 1000);
  render();
}

function connect() {
  if (source) source.close();
  source = new EventSource("/api/stream?terminal=" + encodeURIComponent(terminal));
  source.addEventListener("screen", (e) => show(JSON.parse(e.data)));
  source.onopen = () => { text($("conn"), "● " + WORDS[lang].online); $("conn").dataset.state = "open"; };
  source.onerror = () => {
    text($("conn"), "○ " + WORDS[lang].offline); $("conn").dataset.state = "closed";
    // the server refused the stream (the session was revoked or expired): back to sign-in
    if (source.readyState === EventSource.CLOSED) location.reload();
  };
}

async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
                               headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF}});
  if (r.status === 401) { location.reload(); return; }  // signed out meanwhile: sign in again
  const data = await r.json();
  if (r.status === 409) { screen = Object.assign({}, screen, {error: {message: {kk: data.error, ru: data.error, en: data.error}}}); render(); return; }
  if (r.ok) show(data);
}

$("confirm").onclick = () => { if (cart.length) post("/api/purchase", {terminal, tap_id: screen.tap_id, items: cart.slice()}); };
$("cancel").onclick = () => post("/api/cancel", {terminal, tap_id: screen.tap_id || ""});
// a QR scanner types the voucher's text and Enter: the menu to pay with it
$("voucher-form").onsubmit = (e) => {
  e.preventDefault();
  const qr = $("voucher-qr").value.trim();
  $("voucher-qr").value = "";
  if (qr) post("/api/voucher", {terminal, qr});
};
document.querySelectorAll("[data-lang]").forEach((b) => b.onclick = () => {
  lang = b.dataset.lang; localStorage.setItem("qaqpa.lang", lang); render();
});
$("terminal").onchange = () => { terminal = $("terminal").value; localStorage.setItem("qaqpa.terminal", terminal); connect(); };
render();
connect();
