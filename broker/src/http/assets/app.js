// fleetmq dashboard: plain JavaScript, no build step, no dependencies.
// Live data comes from Server-Sent Events (/api/events): each message is a
// whole snapshot {clients, disconnected, summary}. Everything shown is built
// with textContent (never innerHTML), so client ids cannot inject markup.
"use strict";

const state = {
  clients: [],
  disconnected: [],
  summary: null,
  sort: { key: "connected_at_ms", dir: -1 },
  filter: "",
  seen: new Set(),      // client ids already shown, to flash new rows
  firstSnapshot: true,
  detailId: null,       // client id of the open detail view
  detail: null,
  detailFetchedAt: 0,
  kickRequested: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- formatting -----------------------------------------------------------

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}

function fmtAgo(ms) {
  if (!ms) return "–";
  const secs = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (secs < 60) return secs + " s ago";
  if (secs < 3600) return Math.floor(secs / 60) + " min ago";
  if (secs < 86400) return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min ago";
  return Math.floor(secs / 86400) + " d ago";
}

function fmtDate(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

const AUTH_LABEL = { one_way: "one-way TLS", mutual: "mutual TLS", plain: "plain" };

function authOf(client) {
  return client.tls ? client.tls.auth : "plain";
}

function authCell(client) {
  const auth = authOf(client);
  const cell = el("td", { class: "c-auth" }, el("span", { class: "badge " + auth, text: AUTH_LABEL[auth] || auth }));
  if (client.tls && client.tls.resumed) cell.append(el("span", { class: "badge resumed", text: "resumed" }));
  return cell;
}

// ---- API ------------------------------------------------------------------

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (response.status === 401) {
    window.location.href = "/login";
    throw new Error("unauthorized");
  }
  return response;
}

async function loadStatus() {
  try {
    const response = await api("/api/status");
    const status = await response.json();
    const listeners = status.listeners.map((l) => l.name + " " + l.addr).join(", ");
    $("broker-info").textContent = "v" + status.version + " · " + listeners;
    $("logout-form").hidden = !status.auth_required;
  } catch (error) {
    $("broker-info").textContent = "";
  }
}

// ---- bridges (issue 16) --------------------------------------------------------

// Polled: bridges change state rarely and are not on the event stream. The
// section stays hidden while no bridge is configured.
async function loadBridges() {
  try {
    const response = await api("/api/bridges");
    if (!response.ok) return;
    const bridges = await response.json();
    $("bridges-section").hidden = bridges.length === 0;
    $("bridges").tBodies[0].replaceChildren(...bridges.map((b) => el("tr", {},
      el("td", { text: b.name }), el("td", { text: b.state, class: b.state === "connected" ? "state-up" : "state-down" }),
      el("td", { text: b.remote }), el("td", { text: String(b.queued), class: "num" }),
      el("td", { text: String(b.dropped), class: "num" }), el("td", { text: String(b.sent), class: "num" }),
      el("td", { text: String(b.received), class: "num" }), el("td", { text: b.last_error || "" }))));
  } catch (error) {
    // The next poll tries again.
  }
}

// ---- live updates -----------------------------------------------------------

function connectLive() {
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (message) => {
    const snapshot = JSON.parse(message.data);
    state.clients = snapshot.clients;
    state.disconnected = snapshot.disconnected;
    state.summary = snapshot.summary;
    setLive(true);
    render();
  });
  source.onerror = () => {
    setLive(false);
    // EventSource retries by itself; find out whether the login expired.
    loadStatus();
  };
}

function setLive(on) {
  const live = $("live");
  live.className = "live " + (on ? "on" : "off");
  live.textContent = on ? "live" : "reconnecting…";
}

// ---- devices table --------------------------------------------------------

const SORT_VALUE = {
  auth: (c) => authOf(c),
  tls_handshake: (c) => c.timings_ms.tls_handshake ?? -1,
  total: (c) => c.timings_ms.total ?? -1,
  last_activity_ms: (c) => c.last_activity_ms ?? 0,
};

function sortValue(client, key) {
  return SORT_VALUE[key] ? SORT_VALUE[key](client) : client[key];
}

// " [v1]" / " [weak]" after the identity of a device whose certificate is
// X.509 version 1 or weak (RSA < 2048, SHA-1), so a lab sees which to re-issue.
function certMark(client) {
  const cert = client.tls && client.tls.client_cert;
  if (!cert) return "";
  return (cert.version === 1 ? " [v1]" : "") + (cert.weakness ? " [weak]" : "");
}

function matches(client, needle) {
  if (!needle) return true;
  const cert = client.tls && client.tls.client_cert;
  const haystack = [client.client_id, client.identity, client.peer, client.listener, client.username,
    client.protocol, authOf(client), AUTH_LABEL[authOf(client)], client.tls && client.tls.cipher, client.tls && client.tls.version,
    cert && cert.cn, cert && cert.subject, cert && cert.serial];
  return haystack.some((value) => value && String(value).toLowerCase().includes(needle));
}

function renderClients() {
  const needle = state.filter.trim().toLowerCase();
  const { key, dir } = state.sort;
  const rows = state.clients.filter((c) => matches(c, needle)).sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    if (x === y) return a.client_id < b.client_id ? -1 : 1;
    return (x < y ? -1 : 1) * dir;
  });
  const body = $("clients").tBodies[0];
  body.replaceChildren(...rows.map((client) => {
    const fresh = !state.firstSnapshot && !state.seen.has(client.client_id);
    const row = el("tr", {
      "data-client-id": client.client_id,
      class: [fresh ? "new" : "", client.client_id === state.detailId ? "selected" : ""].join(" ").trim(),
    },
    el("td", { class: "c-client-id", text: client.client_id }),
    el("td", { class: "c-identity", text: (client.identity || "") + certMark(client), title: client.identity_source }),
    el("td", { class: "c-peer opt", text: client.peer }),
    el("td", { class: "c-listener opt", text: client.listener }),
    authCell(client),
    el("td", { class: "c-handshake num", text: fmtMs(client.timings_ms.tls_handshake),
      "data-ms": client.timings_ms.tls_handshake ?? "" }),
    el("td", { class: "c-total num opt", text: fmtMs(client.timings_ms.total) }),
    el("td", { class: "c-connected", text: fmtAgo(client.connected_at_ms), title: fmtDate(client.connected_at) }),
    el("td", { class: "num opt", text: client.messages_in + " / " + client.messages_out }),
    el("td", { class: "num opt", text: fmtBytes(client.bytes_in) + " / " + fmtBytes(client.bytes_out) }),
    el("td", { class: "opt", text: fmtAgo(client.last_activity_ms), title: fmtDate(client.last_activity) }));
    row.addEventListener("click", () => openDetail(client.client_id));
    return row;
  }));
  for (const client of state.clients) state.seen.add(client.client_id);
  state.firstSnapshot = false;
  $("device-count").textContent = state.clients.length;
  $("no-clients").hidden = state.clients.length > 0;
  for (const th of $("clients").tHead.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === key && dir > 0);
    th.classList.toggle("sorted-desc", th.dataset.sort === key && dir < 0);
  }
}

function renderDisconnected() {
  $("disconnected").tBodies[0].replaceChildren(...state.disconnected.map((c) => el("tr", { "data-client-id": c.client_id },
    el("td", { text: c.client_id }), el("td", { text: c.identity }), el("td", { text: c.peer }),
    el("td", { text: fmtDate(c.connected_at) }), el("td", { text: fmtDate(c.disconnected_at) }),
    el("td", { text: c.disconnect_reason || "" }))));
}

// ---- detail view -------------------------------------------------------------

function openDetail(clientId) {
  window.location.hash = "#client/" + encodeURIComponent(clientId);
}

function closeDetail() {
  history.pushState("", document.title, window.location.pathname);
  onHashChange();
}

function onHashChange() {
  const match = window.location.hash.match(/^#client\/(.+)$/);
  state.detailId = match ? decodeURIComponent(match[1]) : null;
  state.detail = null;
  state.kickRequested = false;
  $("detail").hidden = !state.detailId;
  $("kick-confirm").hidden = true;
  $("kick").hidden = false;
  $("revoke-confirm").hidden = true;
  if (state.detailId) {
    $("detail-id").textContent = state.detailId;
    $("detail-status").textContent = "Loading…";
    $("detail-status").className = "status";
    fetchDetail();
    $("detail").scrollIntoView({ behavior: "smooth", block: "start" });
  }
  renderClients();
}

async function fetchDetail() {
  const id = state.detailId;
  if (!id) return;
  state.detailFetchedAt = Date.now();
  const response = await api("/api/clients/" + encodeURIComponent(id));
  if (id !== state.detailId) return;
  state.detail = response.ok ? await response.json() : null;
  renderDetail();
  fetchDynsec();
}

// The dynsec client a device is: its username, else its certificate
// identity (decision 0162). Hidden where dynsec is off or knows no such
// client.
function dynsecName(detail) {
  return detail ? (detail.username || detail.identity) : null;
}

async function fetchDynsec() {
  const name = dynsecName(state.detail);
  const card = $("dynsec-card");
  if (!name) { card.hidden = true; return; }
  const response = await api("/api/dynsec/clients/" + encodeURIComponent(name));
  if (!state.detail || dynsecName(state.detail) !== name) return;
  if (!response.ok) { card.hidden = true; return; }
  const client = await response.json();
  card.hidden = false;
  const names = (list, key) => (list || []).map((item) => item[key]).join(", ") || null;
  dl($("detail-dynsec"), [
    ["Dynsec client", client.username, "dynsec-name"],
    ["State", client.disabled ? "disabled (banned)" : "enabled", "dynsec-state"],
    ["Roles", names(client.roles, "rolename"), "dynsec-roles"],
    ["Groups", names(client.groups, "groupname"), "dynsec-groups"],
  ]);
  $("dynsec-ban").hidden = !!client.disabled;
  $("dynsec-allow").hidden = !client.disabled;
}

async function dynsecAction(action) {
  const name = dynsecName(state.detail);
  if (!name) return;
  const response = await api("/api/dynsec/clients/" + encodeURIComponent(name) + "/" + action, { method: "POST" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("detail-status").textContent = "Could not " + action + ": " + (body.message || response.status);
  }
  fetchDynsec();
}

// pairs: [name, value, class of the value, class of a colour swatch]
function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([name, value, cls, swatch]) =>
    [el("dt", {}, swatch ? el("span", { class: "swatch " + swatch }) : null, name),
      el("dd", { text: value ?? "–", class: cls })]));
}

const SEGMENTS = [
  ["TCP accept → ClientHello", "tcp_to_client_hello"],
  ["ClientHello → TLS done", "client_hello_to_tls_done"],
  ["TLS done → CONNECT", "tls_to_connect"],
  ["CONNECT → CONNACK", "connect_to_connack"],
];

function renderDetail() {
  const detail = state.detail;
  const status = $("detail-status");
  if (!detail) {
    status.textContent = "This client is neither connected nor recently seen.";
    status.className = "status gone";
    return;
  }
  if (detail.connected) {
    status.textContent = state.kickRequested ? "Disconnect requested…" : "Connected since " + fmtDate(detail.connected_at) + ".";
    status.className = "status";
  } else {
    status.textContent = "Disconnected " + fmtDate(detail.disconnected_at) + ": " + (detail.disconnect_reason || "") + ".";
    status.className = "status gone";
  }
  $("kick").disabled = !detail.connected;
  dl($("detail-connection"), [
    ["Identity", detail.identity + " (" + detail.identity_source.replace("_", " ") + ")"],
    ["Peer", detail.peer], ["Listener", detail.listener], ["Protocol", "MQTT " + detail.protocol],
    ["Keep alive", detail.keep_alive + " s"], ["Clean start", detail.clean_start ? "yes" : "no"],
    ["Username", detail.username], ["Connected", fmtDate(detail.connected_at)],
    ["Last activity", fmtDate(detail.last_activity)],
    ["Messages in / out", detail.messages_in + " / " + detail.messages_out],
    ["Bytes in / out", fmtBytes(detail.bytes_in) + " / " + fmtBytes(detail.bytes_out)],
  ]);
  const t = detail.timings_ms;
  const total = t.total || 0;
  // The waterfall: with the handshake's parts (decision 0142), the TLS
  // segment is drawn as broker, network, device, broker.
  const bar = t.client_wait != null ? [
    ["TCP accept → ClientHello", t.tcp_to_client_hello, "seg0"],
    ["broker: its flight (and queue)", (t.broker_flight || 0) + (t.broker_queue || 0) + (t.broker_scheduling || 0), "seg-broker"],
    ["network round trip", t.network_rtt, "seg-network"],
    ["device", t.device, "seg-device"],
    ["broker: checking the reply", t.broker_verify, "seg-broker"],
    ["TLS done → CONNECT", t.tls_to_connect, "seg2"],
    ["CONNECT → CONNACK", t.connect_to_connack, "seg3"],
  ] : SEGMENTS.map(([name, key], i) => [name, t[key], "seg" + i]);
  $("timing-bar").replaceChildren(...bar.map(([name, value, cls]) => {
    const span = el("span", { class: cls, title: name + ": " + fmtMs(value) });
    span.style.width = total > 0 && value ? Math.max(0.5, (value / total) * 100) + "%" : "0";
    return span;
  }));
  // Where the TLS handshake went (decision 0142): shown under its segment.
  const split = t.client_wait != null ? [
    ["· broker: key exchange and signing", fmtMs(t.broker_flight), "num split-broker-flight", "seg-broker"],
    ["· network round trip", fmtMs(t.network_rtt), "num split-network", "seg-network"],
    ["· device (its checks, key share, signature)", fmtMs(t.device), "num split-device", "seg-device"],
    ["· broker: checking the reply", fmtMs(t.broker_verify), "num split-broker-verify", "seg-broker"],
  ] : [];
  // The device's own view of the same connect, if it reported one.
  const r = detail.device_report;
  if (r) {
    split.push(["Device's own view: TLS handshake", fmtMs(r.tls_handshake_ms), "num report-tls"]);
    split.push(["Device's own view: chip", [r.chip, r.cpu_mhz ? r.cpu_mhz + " MHz" : null,
      r.hw_crypto ? "hardware crypto" : (r.hw_crypto === false ? "software crypto" : null), r.tls_library]
      .filter((x) => x).join(", "), "report-chip"]);
  }
  dl($("detail-timing"), [
    ...SEGMENTS.flatMap(([name, key], i) => [[name, fmtMs(t[key]), "num", "seg" + i], ...(key === "client_hello_to_tls_done" ? split : [])]),
    ["TLS handshake (accept → TLS done)", fmtMs(t.tls_handshake), "num timing-tls"],
    ["Total (accept → CONNACK)", fmtMs(t.total), "num timing-total"],
  ]);
  const tls = detail.tls;
  dl($("detail-tls"), tls ? [
    ["Version", tls.version], ["Cipher suite", tls.cipher], ["Key exchange", tls.kx_group],
    ["Authentication", AUTH_LABEL[tls.auth]], ["Resumed", tls.resumed ? "yes" : "no (full handshake)"],
    ["Server name (SNI)", tls.server_name],
  ] : [["Transport", "plain TCP (no TLS)"]]);
  const cert = tls && tls.client_cert;
  dl($("detail-cert"), cert ? [
    ["Common name", cert.cn, "cert-cn"], ["Subject", cert.subject], ["Serial", cert.serial, "cert-serial"],
    ["Issuer", cert.issuer], ["Valid from", fmtDate(cert.not_before)],
    ["Valid until", fmtDate(cert.not_after) + " (" + daysLeft(cert.not_after_unix) + ")", "cert-not-after"],
    ["SHA-256", cert.fingerprint_sha256], ["OU", cert.organizational_units.join(", ") || null],
    ["X.509 version", cert.version === 1 ? "v1 (no extensions; re-issue as v3 when you can)" : "v" + cert.version, "cert-version"],
    ["Weakness", cert.weakness, "cert-weakness"],
    ["DNS SANs", cert.san_dns.join(", ") || null],
  ] : [["Certificate", tls ? "none (one-way TLS)" : "none"]]);
  $("revoke").hidden = !cert || !$("revoke-confirm").hidden;
  $("detail-subs").tBodies[0].replaceChildren(...(detail.subscriptions.length ? detail.subscriptions.map((s) =>
    el("tr", {}, el("td", { text: s.filter }), el("td", { text: s.qos }))) :
    [el("tr", {}, el("td", { text: "none", colSpan: 2, class: "muted" }))]));
  $("detail-history").tBodies[0].replaceChildren(...detail.history.map((h) => el("tr", {},
    el("td", { text: fmtDate(h.connected_at) }), el("td", { text: h.peer }), el("td", { text: h.listener }),
    el("td", { text: AUTH_LABEL[h.auth] || h.auth }),
    el("td", { text: h.resumed === null ? "–" : (h.resumed ? "yes" : "no") }),
    el("td", { class: "num", text: fmtMs(h.timings_ms.tls_handshake) }),
    el("td", { class: "num", text: fmtMs(h.timings_ms.connect_to_connack) }),
    el("td", { class: "num", text: fmtMs(h.timings_ms.total) }),
    el("td", { text: h.disconnected_at ? fmtDate(h.disconnected_at) : "connected" }),
    el("td", { text: h.disconnect_reason || "" }))));
}

function daysLeft(notAfterUnix) {
  const days = (notAfterUnix * 1000 - Date.now()) / 86400000;
  return days < 0 ? "expired" : Math.floor(days) + " days left";
}

// Revokes the device's certificate in the lab PKI and disconnects it
// (POST /api/certs/{serial}/revoke).
async function revokeCertificate() {
  const cert = state.detail && state.detail.tls && state.detail.tls.client_cert;
  $("revoke-confirm").hidden = true;
  if (!cert) return;
  const response = await api("/api/certs/" + encodeURIComponent(cert.serial) + "/revoke", { method: "POST" });
  const body = await response.json().catch(() => ({}));
  $("detail-status").textContent = response.ok
    ? "Certificate " + cert.serial + " revoked; " + body.disconnected + " connection(s) closed."
    : "Could not revoke: " + (body.message || response.status);
  $("revoke").hidden = response.ok;
}

async function kick() {
  const id = state.detailId;
  $("kick-confirm").hidden = true;
  $("kick").hidden = false;
  const response = await api("/api/clients/" + encodeURIComponent(id), { method: "DELETE" });
  if (response.ok) {
    state.kickRequested = true;
    $("detail-status").textContent = "Disconnect requested…";
  } else {
    const body = await response.json().catch(() => ({}));
    $("detail-status").textContent = "Could not disconnect: " + (body.message || response.status);
  }
}

// ---- handshake panel -------------------------------------------------------

const GROUP_LABEL = (g) => (g.auth === "mutual" ? "mutual" : "one-way") + ", " + (g.resumed ? "resumed" : "full");
const GROUP_CLASS = ["seg1", "seg0", "seg3", "seg2"];
const GROUP_COLOR = ["--c1", "--c2", "--c3", "--c4"];

// The broker's own work: its flight plus its checks of the reply.
function brokerMs(parts) {
  if (parts.broker_flight == null || parts.broker_verify == null) return fmtMs(null);
  return fmtMs(Math.round((parts.broker_flight + parts.broker_verify) * 1000) / 1000);
}

function bucketLabel(ms) {
  return ms < 1000 ? "≤" + ms + "ms" : "≤" + ms / 1000 + "s";
}

function renderHandshakes() {
  const summary = state.summary;
  if (!summary) return;
  $("hs-groups").tBodies[0].replaceChildren(...summary.groups.map((g, i) => el("tr", { "data-group": g.auth + "-" + g.resumed },
    el("td", {}, el("span", { class: "swatch " + GROUP_CLASS[i] }), GROUP_LABEL(g)),
    el("td", { class: "num", text: g.count }), el("td", { class: "num", text: fmtMs(g.p50_ms) }),
    el("td", { class: "num opt", text: fmtMs(g.p90_ms) }), el("td", { class: "num", text: fmtMs(g.p99_ms) }),
    el("td", { class: "num opt", text: fmtMs(g.max_ms) }),
    el("td", { class: "num hs-device", text: fmtMs(g.parts_p50_ms.device) }),
    el("td", { class: "num opt hs-network", text: fmtMs(g.parts_p50_ms.network_rtt) }),
    el("td", { class: "num opt hs-broker", text: brokerMs(g.parts_p50_ms) }))));
  $("hs-comparison").textContent = summary.comparison.text || "";
  // Full mutual handshakes by the device's key type and by its group (OU).
  const keyed = [
    ...summary.mutual_full_by_key_type.map((g) => ["key " + g.name, g]),
    ...summary.mutual_full_by_device_group.map((g) => ["group " + g.name, g]),
  ];
  $("hs-keys").tBodies[0].replaceChildren(...keyed.map(([label, g]) => el("tr", { "data-keyed": label },
    el("td", { text: label }), el("td", { class: "num", text: g.count }),
    el("td", { class: "num", text: fmtMs(g.p50_ms) }),
    el("td", { class: "num hs-device", text: fmtMs(g.parts_p50_ms.device) }),
    el("td", { class: "num opt", text: fmtMs(g.parts_p50_ms.network_rtt) }),
    el("td", { class: "num opt", text: brokerMs(g.parts_p50_ms) }))));
  drawHistogram(summary);
  const failures = Object.entries(summary.failures).filter(([, n]) => n > 0);
  $("hs-fail-total").textContent = summary.failures_total;
  $("hs-failures").tBodies[0].replaceChildren(...(failures.length ? failures.map(([reason, n]) =>
    el("tr", { "data-reason": reason }, el("td", { text: reason.replaceAll("_", " ") }), el("td", { class: "num", text: n }))) :
    [el("tr", {}, el("td", { text: "none", colSpan: 2, class: "muted" }))]));
  const recent = summary.recent_failures || [];
  $("hs-recent-failures").tBodies[0].replaceChildren(...(recent.length ? recent.map((f) =>
    el("tr", { "data-reason": f.reason }, el("td", { text: f.listener }), el("td", { text: f.peer }), el("td", { text: f.detail }))) :
    [el("tr", {}, el("td", { text: "none", colSpan: 3, class: "muted" }))]));
  $("expiring").tBodies[0].replaceChildren(...(summary.expiring_certificates.length ? summary.expiring_certificates.map((c) =>
    el("tr", {}, el("td", { text: c.client_id }), el("td", { text: c.cn || "" }), el("td", { text: fmtDate(c.not_after) }),
      el("td", { class: "num " + (c.days_left < 0 ? "expired" : "soon"), text: c.days_left }))) :
    [el("tr", {}, el("td", { text: "none", colSpan: 4, class: "muted" }))]));
}

function drawHistogram(summary) {
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const labels = summary.buckets_ms.map(bucketLabel).concat([">" + bucketLabel(summary.buckets_ms.at(-1)).slice(1)]);
  const width = 760, height = 200, left = 34, bottom = 34, top = 8;
  const slot = (width - left) / labels.length;
  const max = Math.max(1, ...summary.groups.flatMap((g) => g.histogram));
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet" });
  const plotHeight = height - bottom - top;
  // Whole-number gridlines only (counts): 0, the middle when whole, max.
  for (const value of [...new Set([0, max / 2, max])].filter(Number.isInteger)) {
    const fraction = value / max;
    const y = top + plotHeight * (1 - fraction);
    svg.append(svgEl("line", { x1: left, x2: width, y1: y, y2: y }));
    const text = svgEl("text", { x: left - 4, y: y + 3, "text-anchor": "end" });
    text.textContent = value;
    svg.append(text);
  }
  const style = getComputedStyle(document.documentElement);
  summary.groups.forEach((group, gi) => {
    const barWidth = (slot - 4) / summary.groups.length;
    group.histogram.forEach((count, bi) => {
      if (!count) return;
      const h = (count / max) * plotHeight;
      const rect = svgEl("rect", { x: left + bi * slot + 2 + gi * barWidth, y: top + plotHeight - h,
        width: Math.max(1, barWidth - 1), height: h, fill: style.getPropertyValue(GROUP_COLOR[gi]).trim() || "#888" });
      const title = svgEl("title", {});
      title.textContent = GROUP_LABEL(group) + " " + labels[bi] + ": " + count;
      rect.append(title);
      svg.append(rect);
    });
  });
  labels.forEach((label, bi) => {
    const text = svgEl("text", { x: left + bi * slot + slot / 2, y: height - bottom + 14, "text-anchor": "middle" });
    text.textContent = label;
    svg.append(text);
  });
  $("hs-chart").replaceChildren(svg);
  $("hs-legend").replaceChildren(...summary.groups.map((g, i) =>
    el("span", {}, el("span", { class: "swatch " + GROUP_CLASS[i] }), GROUP_LABEL(g) + " (" + g.count + ")")));
}

// ---- wiring -----------------------------------------------------------------

function render() {
  renderClients();
  renderDisconnected();
  renderHandshakes();
  if (state.detailId && Date.now() - state.detailFetchedAt > 700) fetchDetail();
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter").addEventListener("input", (event) => { state.filter = event.target.value; renderClients(); });
  for (const th of $("clients").tHead.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      renderClients();
    });
  }
  $("detail-close").addEventListener("click", closeDetail);
  $("kick").addEventListener("click", () => { $("kick").hidden = true; $("kick-confirm").hidden = false; });
  $("kick-confirm").addEventListener("click", kick);
  $("revoke").addEventListener("click", () => { $("revoke").hidden = true; $("revoke-confirm").hidden = false; });
  $("revoke-confirm").addEventListener("click", revokeCertificate);
  $("dynsec-ban").addEventListener("click", () => dynsecAction("disable"));
  $("dynsec-allow").addEventListener("click", () => dynsecAction("enable"));
  window.addEventListener("hashchange", onHashChange);
  loadStatus();
  loadBridges();
  setInterval(loadBridges, 2000);
  onHashChange();
  connectLive();
  // Relative times ("3 s ago") age between snapshots.
  setInterval(renderClients, 5000);
});

// ---- device certificates (provisioning, docs/provisioning.md) ---------------
// Shown only when the broker's provisioning service is on: requests waiting
// for approval (approve / deny) and every device certificate of the lab PKI
// (how it was issued, when it ends, revoked or replaced). Polled every 5 s.

async function loadCertificates() {
  let pending;
  try {
    pending = await (await api("/api/provision/pending")).json();
  } catch (error) {
    return;
  }
  if (!pending.enabled) return;
  $("certificates").hidden = false;
  $("pending-count").textContent = pending.pending.length;
  $("pending").tBodies[0].replaceChildren(...pending.pending.map((p) =>
    el("tr", { "data-device-id": p.device_id },
      el("td", { text: p.device_id }),
      el("td", { text: fmtDate(p.requested_at) }),
      el("td", { text: p.requested_by || "–" }),
      el("td", { class: "mono", text: p.key_sha256.slice(0, 16) + "…", title: p.key_sha256 }),
      el("td", {},
        el("button", { type: "button", class: "approve", text: "Approve", onclick: () => decide(p.device_id, "approve") }),
        " ",
        el("button", { type: "button", class: "deny danger", text: "Deny", onclick: () => decide(p.device_id, "deny") })))));
  try {
    const certs = await (await api("/api/provision/certificates")).json();
    const replaced = new Set(certs.certificates.map((c) => c.replaces).filter(Boolean));
    $("certs").tBodies[0].replaceChildren(...certs.certificates.slice().reverse().map((c) =>
      el("tr", { "data-device-id": c.id, "data-serial": c.serial },
        el("td", { text: c.id }),
        el("td", { text: c.issued_by }),
        el("td", { class: "mono", text: c.serial.slice(0, 12) }),
        el("td", { text: fmtDate(c.not_after) }),
        el("td", { class: "num", text: c.days_left }),
        el("td", { class: "cert-state", text: c.revoked_at ? "revoked" : c.days_left < 0 ? "expired" : replaced.has(c.serial) ? "renewed" : "valid" }))));
  } catch (error) {
    // The PKI folder may not exist yet; the pending list still shows.
  }
}

async function decide(deviceId, action) {
  const response = await api("/api/provision/pending/" + encodeURIComponent(deviceId) + "/" + action, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  $("pending-status").textContent = response.ok
    ? (action === "approve" ? "Approved " : "Denied ") + deviceId + (action === "approve" ? ": it gets its certificate when it asks again." : ".")
    : "Could not " + action + " " + deviceId + ": " + (body.message || response.status);
  loadCertificates();
}

document.addEventListener("DOMContentLoaded", () => {
  loadCertificates();
  setInterval(loadCertificates, 5000);
});
