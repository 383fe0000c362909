// The cluster card (issue 19, decision 0185): the nodes of a fleetmq
// cluster with their heartbeat and client count, and which node accepted
// each device last, from GET /api/cluster, polled every 3 s. A broker
// without [cluster] shows one line saying so. Uses `$`, `el` and `api` from
// app.js, which loads first. Heartbeat ages are the node's own figures,
// not the browser's clock.

"use strict";

function clusterNodeRow(node) {
  const age = node.heartbeat_age_ms;
  return el("tr", { "data-node": node.name },
    el("td", { text: node.name }),
    el("td", { text: node.alive ? "alive" : "stale", class: node.alive ? "state-up" : "state-down" }),
    el("td", { text: age === null || age === undefined ? "—" : Math.round(age / 1000) + " s ago" }),
    el("td", { text: node.clients === null || node.clients === undefined ? "—" : String(node.clients), class: "num" }));
}

function clusterDeviceRow(device) {
  return el("tr", { "data-client": device.client_id },
    el("td", { text: device.client_id }),
    el("td", { text: device.node || "" }));
}

async function loadCluster() {
  let view;
  let problem = "";
  try {
    const response = await api("/api/cluster");
    view = await response.json();
    if (!response.ok) problem = view.message || ("HTTP " + response.status);
  } catch (error) {
    return; // The next poll tries again.
  }
  const summary = $("cluster-summary");
  if (problem) {
    summary.textContent = "Cluster state unavailable: " + problem;
    return;
  }
  const on = view.enabled === true;
  $("cluster-tables").hidden = !on;
  if (!on) {
    summary.textContent = view.message;
    return;
  }
  const alive = view.nodes.filter((n) => n.alive).length;
  summary.textContent = "This is node " + view.node + " · " + alive + " of " + view.nodes.length +
    " nodes alive · " + (view.ready ? "accepting QoS 1/2" : "refusing QoS 1/2 (JetStream not ready)") +
    " · " + view.devices_total + " client ids" +
    (view.devices_listed < view.devices_total ? " (first " + view.devices_listed + " listed)" : "");
  $("cluster-nodes").tBodies[0].replaceChildren(...view.nodes.map(clusterNodeRow));
  $("cluster-devices").tBodies[0].replaceChildren(...view.devices.map(clusterDeviceRow));
}

document.addEventListener("DOMContentLoaded", () => {
  loadCluster();
  setInterval(loadCluster, 3000);
});
