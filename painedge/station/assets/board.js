// The live board: server-sent events in, DOM out. No framework, no build step.
// Alarm cards are updated in place, so a name being typed survives every update.
"use strict";

const state = { beds: new Map(), alarms: [], offset: 0, staleAfter: 3, sound: false };
const LEVELS = ["No pain", "Mild", "Moderate", "Severe", "Extreme"];
const $ = (sel, el = document) => el.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

const serverNow = () => Date.now() / 1000 + state.offset;
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
function ago(ts) {
  if (!ts) return "never";
  const s = Math.max(0, serverNow() - ts);
  if (s < 90) return `${s.toFixed(0)} s ago`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

// ------------------------------------------------------------------ beds

function sparkline(points) {
  const w = 120, h = 30;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("aria-label", "level over the last 10 minutes");
  if (points.length < 2) return svg;
  const t1 = serverNow(), t0 = t1 - 600;
  const x = (t) => Math.max(0, (t - t0) / 600 * w);
  const y = (lv) => h - 3 - lv / 4 * (h - 6);
  let d = `M${x(points[0][0]).toFixed(1)},${y(points[0][1]).toFixed(1)}`;
  for (let i = 1; i < points.length; i++) {
    const gap = points[i][0] - points[i - 1][0] > 20;
    d += gap ? `M${x(points[i][0]).toFixed(1)},${y(points[i][1]).toFixed(1)}`
             : `H${x(points[i][0]).toFixed(1)}V${y(points[i][1]).toFixed(1)}`;
  }
  const band = document.createElementNS(ns, "rect");
  band.setAttribute("x", 0); band.setAttribute("width", w);
  band.setAttribute("y", 0); band.setAttribute("height", y(3) + 1);
  band.setAttribute("class", "spark-band");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  svg.append(band, path);
  return svg;
}

function bedTile(b) {
  const stale = !b.last_heard || serverNow() - b.last_heard > state.staleAfter;
  const alarm = state.alarms.find((a) => a.device_id === b.device_id);
  const cls = ["bed"];
  if (stale) cls.push("stale");
  if (alarm) cls.push(`has-alarm prio-${alarm.priority}`, `st-${alarm.state}`);
  if (b.level !== null && !stale) cls.push(`lv-${b.level}`);
  const tile = el("article", { class: cls.join(" "), id: `bed-${b.device_id}`, "data-device": b.device_id });
  const head = el("header", {},
    el("a", { href: `/beds/${encodeURIComponent(b.device_id)}`, class: "bed-name", text: b.name }),
    b.name !== b.device_id ? el("span", { class: "device", text: b.device_id }) : null);
  tile.append(head);
  const badges = el("div", { class: "badges" });
  if (stale) badges.append(el("span", { class: "badge stale-badge", text: b.last_heard ? "STALE: not heard" : "OFFLINE" }));
  if (b.alerts === "off") badges.append(el("span", { class: "badge off-badge", text: "ALERTS OFF" }));
  if (b.camera !== "up" && b.camera !== "unknown") badges.append(el("span", { class: "badge warn-badge", text: `camera ${b.camera}` }));
  if (b.face === "lost") badges.append(el("span", { class: "badge warn-badge", text: "no face" }));
  if (badges.childElementCount) tile.append(badges);
  const level = el("div", { class: "level" },
    el("span", { class: "level-num", text: b.level === null ? "–" : String(b.level) }),
    el("span", { class: "level-name", text: b.level === null ? "no reading yet" : b.level_name }),
    sparkline(b.spark || []));
  tile.append(level);
  const facts = el("dl", { class: "facts" });
  const fact = (k, v) => facts.append(el("dt", { text: k }), el("dd", { text: v }));
  fact("PSPI", b.pspi === null ? "–" : `${b.pspi} / 16`);
  if (b.face_item) fact(b.face_item.label.split(" face item")[0] + " face", `${b.face_item.score}/${b.face_item.max} ${b.face_item.words} (estimate)`);
  fact("Cues", b.explanation || (b.face === "present" ? "none" : "–"));
  fact("Face · camera", `${b.face} · ${b.camera}`);
  fact("Last heard", ago(b.last_heard));
  tile.append(facts);
  return tile;
}

function renderBeds() {
  const box = $("#beds");
  const beds = [...state.beds.values()];
  const rank = (b) => {
    const a = state.alarms.find((x) => x.device_id === b.device_id);
    if (!a) return 9;
    return { escalated: 0, active: 1, acknowledged: 2 }[a.state] * 2 + (a.priority === "high" ? 0 : 1);
  };
  beds.sort((p, q) => rank(p) - rank(q) || p.name.localeCompare(q.name, undefined, { numeric: true }));
  box.replaceChildren(...beds.map(bedTile));
  if (!beds.length) box.append(el("p", { class: "quiet", text: "Waiting for devices." }));
}

// ------------------------------------------------------------------ alarms

async function post(url, data) {
  const body = new URLSearchParams(data);
  const r = await fetch(url, { method: "POST", body, credentials: "same-origin" });
  let reply = {};
  try { reply = await r.json(); } catch (e) { reply = { ok: false, error: `the station answered ${r.status}` }; }
  return reply;
}

function alarmCard(a) {
  const card = el("article", { class: "alarm", id: `alarm-${a.alarm_id}`, "data-alarm": a.alarm_id });
  card.append(el("div", { class: "alarm-head" }), el("p", { class: "alarm-why" }), el("p", { class: "alarm-status" }));
  const form = el("form", { class: "ack" });
  const name = el("input", { name: "name", placeholder: "Your name", required: "", maxlength: "80", autocomplete: "name" });
  const note = el("input", { name: "note", placeholder: "Note (optional)", maxlength: "500" });
  const ack = el("button", { type: "submit", class: "ack-button", text: "Acknowledge" });
  const minutes = el("select", { name: "minutes", "aria-label": "silence for" },
    ...[2, 5, 10, 15].map((m) => el("option", { value: String(m), text: `${m} min` })));
  const hush = el("button", { type: "button", class: "silence-button", text: "Silence" });
  const msg = el("span", { class: "form-msg", role: "status" });
  form.append(name, note, ack, el("span", { class: "sep" }), minutes, hush, msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    const reply = await post(`/api/alarms/${encodeURIComponent(a.alarm_id)}/ack`, { name: name.value, note: note.value });
    if (!reply.ok) { msg.textContent = reply.error; msg.className = "form-msg error"; return; }
    if (reply.alarm) { upsertAlarm(reply.alarm); renderAlarms(); }
  });
  hush.addEventListener("click", async () => {
    msg.textContent = "";
    const reply = await post(`/api/alarms/${encodeURIComponent(a.alarm_id)}/silence`, { minutes: minutes.value });
    if (!reply.ok) { msg.textContent = reply.error; msg.className = "form-msg error"; }
  });
  card.append(form);
  return card;
}

function fillAlarm(card, a) {
  const bed = state.beds.get(a.device_id);
  const name = bed ? bed.name : a.device_id;
  const prio = a.priority === "high" ? "HIGH priority" : "MEDIUM priority";
  card.className = `alarm prio-${a.priority} st-${a.state}` + (a.silenced_until ? " silenced" : "");
  const head = card.querySelector(".alarm-head");
  head.replaceChildren(
    el("span", { class: "prio", text: prio }),
    el("a", { class: "alarm-bed", href: `/beds/${encodeURIComponent(a.device_id)}`, text: name }),
    el("span", { class: "alarm-level", text: `${a.level_name} pain` }),
    el("span", { class: "alarm-state", text: a.state === "escalated" ? "ESCALATED: not acknowledged" : a.state }));
  card.querySelector(".alarm-why").textContent = a.explanation ? `Why: ${a.explanation}` : "";
  let status = `since ${clock(a.raised_ts)}`;
  if (a.state === "acknowledged") status += ` · acknowledged by ${a.acked_by} at ${clock(a.acked_ts)}` + (a.ack_note ? ` (“${a.ack_note}”)` : "");
  else if (a.state === "escalated") status += ` · escalated at ${clock(a.escalated_ts)}`;
  else if (!a.silenced_until) status += ` · escalates in ${Math.max(0, a.due_ts - serverNow()).toFixed(0)} s unless acknowledged`;
  if (a.silenced_until) status += ` · silenced until ${clock(a.silenced_until)}`;
  card.querySelector(".alarm-status").textContent = status;
  card.querySelector("form.ack").hidden = a.state === "acknowledged";
}

function upsertAlarm(a) {
  const i = state.alarms.findIndex((x) => x.alarm_id === a.alarm_id);
  if (i >= 0) state.alarms[i] = a; else state.alarms.push(a);
}

function renderAlarms() {
  const box = $("#alarm-list");
  const keep = new Set(state.alarms.map((a) => a.alarm_id));
  for (const card of [...box.querySelectorAll(".alarm")]) if (!keep.has(card.dataset.alarm)) card.remove();
  box.querySelector(".quiet")?.remove();
  const order = { escalated: 0, active: 1, acknowledged: 2 };
  const sorted = [...state.alarms].sort((p, q) => order[p.state] - order[q.state]
    || (p.priority === q.priority ? 0 : p.priority === "high" ? -1 : 1) || p.raised_ts - q.raised_ts);
  let prev = null;
  for (const a of sorted) {
    let card = document.getElementById(`alarm-${a.alarm_id}`);
    if (!card) card = alarmCard(a);
    fillAlarm(card, a);
    const want = prev ? prev.nextSibling : box.firstChild;
    if (card !== want) box.insertBefore(card, want);  // moves only when the order changed
    prev = card;
  }
  if (!sorted.length) box.append(el("p", { class: "quiet", text: "No open alarms." }));
  document.body.classList.toggle("escalated", sorted.some((a) => a.state === "escalated"));
  document.title = sorted.filter((a) => a.state !== "acknowledged").length
    ? `(${sorted.filter((a) => a.state !== "acknowledged").length}) painedge station` : "painedge station";
}

// ------------------------------------------------------------------ sound (after a click: browsers require it)

let audio = null;
function beep(freq, ms) {
  if (!audio) return;
  const o = audio.createOscillator(), g = audio.createGain();
  o.frequency.value = freq; g.gain.value = 0.08;
  o.connect(g).connect(audio.destination);
  o.start(); o.stop(audio.currentTime + ms / 1000);
}
let tickCount = 0;
function sound() {
  tickCount++;
  const now = serverNow();
  const loud = state.alarms.filter((a) => a.state !== "acknowledged" && !(a.silenced_until && a.silenced_until > now));
  if (!loud.length) return;
  if (loud.some((a) => a.state === "escalated")) { beep(880, 180); setTimeout(() => beep(880, 180), 300); }
  else if (loud.some((a) => a.priority === "high") && tickCount % 2 === 0) beep(740, 200);
  else if (tickCount % 5 === 0) beep(523, 200);
}

// ------------------------------------------------------------------ wiring

function connect() {
  const conn = $("#conn");
  const es = new EventSource("/events");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "live"; });
  es.addEventListener("error", () => { conn.textContent = "connection lost: retrying"; conn.className = "lost"; });
  // Every server event carries the server's clock: the board counts ages in it, not in the browser's.
  const on = (kind, apply) => es.addEventListener(kind, (ev) => {
    const d = JSON.parse(ev.data);
    state.offset = d.now - Date.now() / 1000;
    apply(d);
  });
  on("beds", (d) => {
    state.staleAfter = d.stale_after_s;
    for (const b of d.beds) state.beds.set(b.device_id, b);
    renderBeds();
  });
  on("alarms", (d) => {
    state.alarms = d.alarms;
    renderAlarms();
    renderBeds();
  });
  on("tick", () => {
    renderBeds();
    for (const a of state.alarms) { const c = document.getElementById(`alarm-${a.alarm_id}`); if (c) fillAlarm(c, a); }
    sound();
  });
}

function startClock() {
  const c = $("#clock");
  const show = () => { c.textContent = new Date(serverNow() * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }); };
  show(); setInterval(show, 5000);
  c.title = "Click to turn alarm sounds on";
  document.addEventListener("click", () => { if (!audio) { audio = new AudioContext(); c.classList.add("sound"); } }, { once: true });
}

state.staleAfter = parseFloat($("#board").dataset.staleAfter);
startClock();
connect();
