// fleetmq dashboard: the firmware-update card (issue 21, docs/ota.md).
// Rollouts (id, version, chip, wave k/n, state and why the broker halted
// one) and, for the chosen rollout, each device's state with its download
// percentage and the reason it failed or rolled back. Pause, resume and
// abort go through the same authenticated API as the page's other actions
// (`api()` from app.js: the session cookie, same origin). Polled every 2 s
// from GET /api/ota/rollouts; hidden while the service is off and no
// rollout exists. Built with textContent only, like app.js.
"use strict";

const ota = {
  rollouts: [],
  selected: null,     // id of the rollout whose devices are shown
  confirmAbort: null, // id of the rollout whose abort awaits confirmation
};

const OTA_ACTIONS = {
  running: ["pause", "abort"],
  paused: ["resume", "abort"],
  halted: ["resume", "abort"],
};

async function loadOta() {
  let body;
  try {
    const response = await api("/api/ota/rollouts");
    if (!response.ok) return;
    body = await response.json();
  } catch (error) {
    return; // The next poll tries again.
  }
  ota.rollouts = body.rollouts || [];
  $("ota-section").hidden = !body.enabled && ota.rollouts.length === 0;
  if (!ota.rollouts.some((r) => r.id === ota.selected)) {
    const open = ota.rollouts.filter((r) => OTA_ACTIONS[r.state]);
    const newest = (open.length ? open : ota.rollouts).at(-1);
    ota.selected = newest ? newest.id : null;
  }
  renderOta();
}

function otaCounts(rollout) {
  const counts = {};
  for (const status of Object.values(rollout.status)) counts[status.state] = (counts[status.state] || 0) + 1;
  return Object.entries(counts).map(([state, n]) => n + " " + state.replace("_", " ")).join(", ");
}

function otaButtons(rollout) {
  const actions = OTA_ACTIONS[rollout.state] || [];
  return actions.map((action) => {
    const confirming = action === "abort" && ota.confirmAbort === rollout.id;
    return el("button", {
      type: "button",
      class: "ota-" + action + (action === "abort" ? " danger" + (confirming ? " strong" : "") : ""),
      text: confirming ? "Confirm abort" : action[0].toUpperCase() + action.slice(1),
      onclick: (event) => {
        event.stopPropagation();
        if (action === "abort" && !confirming) {
          ota.confirmAbort = rollout.id;
          renderOta();
          return;
        }
        otaAction(rollout.id, action);
      },
    });
  });
}

function renderOta() {
  $("ota-rollouts").tBodies[0].replaceChildren(...(ota.rollouts.length ? ota.rollouts.slice().reverse().map((r) =>
    el("tr", { "data-rollout": r.id, class: r.id === ota.selected ? "selected" : "", onclick: () => { ota.selected = r.id; renderOta(); } },
      el("td", { text: r.id }), el("td", { text: r.version }), el("td", { text: r.chip }),
      el("td", { class: "ota-wave", text: (r.wave + 1) + "/" + r.waves.length }),
      el("td", { class: "ota-state state-" + r.state, text: r.state + (r.reason ? ": " + r.reason : "") }),
      el("td", { class: "opt", text: otaCounts(r) }),
      el("td", {}, ...otaButtons(r)))) :
    [el("tr", {}, el("td", { text: "no rollout yet (fleetmq firmware rollout)", colSpan: 7, class: "muted" }))]));
  const rollout = ota.rollouts.find((r) => r.id === ota.selected);
  $("ota-devices-title").textContent = rollout ? "Devices of " + rollout.id + " (" + rollout.version + ")" : "";
  $("ota-devices").hidden = !rollout;
  if (!rollout) return;
  $("ota-devices").tBodies[0].replaceChildren(...rollout.devices.map((device, index) => {
    const status = rollout.status[device] || { state: "waiting", progress: 0 };
    const wave = rollout.waves.findIndex((upto) => index < upto) + 1;
    const progress = el("progress", { max: 100, value: status.progress || 0 });
    return el("tr", { "data-device-id": device },
      el("td", { text: device }), el("td", { class: "num", text: wave }),
      el("td", { class: "ota-device-state state-" + status.state, text: status.state.replace("_", " ") }),
      el("td", { class: "ota-progress" }, progress, " " + (status.progress || 0) + "%"),
      el("td", { text: status.running || "–" }),
      el("td", { class: "ota-reason", text: status.reason || "" }),
      el("td", { class: "opt", text: status.updated_at ? fmtDate(status.updated_at * 1000) : "–" }));
  }));
}

async function otaAction(id, action) {
  ota.confirmAbort = null;
  const response = await api("/api/ota/rollouts/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  $("ota-status").textContent = response.ok
    ? "Rollout " + id + ": " + action + " sent; the broker applies it within a second."
    : "Could not " + action + " " + id + ": " + (body.message || response.status);
  loadOta();
}

document.addEventListener("DOMContentLoaded", () => {
  loadOta();
  setInterval(loadOta, 2000);
});
