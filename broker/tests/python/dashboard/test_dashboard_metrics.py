"""/metrics read by the Prometheus text-format parser, and the Grafana
dashboard and alert rules in dashboards/ checked against what the broker
really exports (and by promtool)."""

import json
import re
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from dashboard_harness import REPO_ROOT, TlsClient, binary, eventually, get_json, http, refused, tls_context, Pki

DASHBOARDS = REPO_ROOT / "dashboards"
ALERTS = DASHBOARDS / "prometheus" / "alerts.yml"
ALERT_TESTS = DASHBOARDS / "prometheus" / "alerts.test.yml"
GRAFANA = DASHBOARDS / "grafana" / "fleetmq.json"


def scrape(broker):
    status, headers, body = http("GET", broker.http + "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return list(text_string_to_metric_families(body))


def samples(families, name):
    """(labels, value) of every sample called `name`."""
    return [(s.labels, s.value) for f in families for s in f.samples if s.name == name]


def value(families, name, **labels):
    found = [v for l, v in samples(families, name) if all(l.get(k) == w for k, w in labels.items())]
    assert found, f"no sample {name}{labels}"
    return sum(found)


def make_connections(pki, broker, tmp_path):
    """3 full mutual handshakes, 2 resumed mutual ones, 2 full one-way
    ones, 1 refused certificate. Returns the clients still connected."""
    mtls, oneway = broker.port("mtls"), broker.port("oneway")
    clients = []
    for n in range(3):
        cert, key, _ = pki.client(f"metrics-dev-{n}")
        clients.append(TlsClient(mtls, tls_context(pki, cert, key), f"dev-{n}"))
    # Dev-0 comes back twice, resuming its TLS session each time.
    context = tls_context(pki, *pki.client("metrics-dev-r")[:2])
    first = TlsClient(mtls, context, "dev-r")
    session = first.session
    first.close()
    for _ in range(2):
        again = TlsClient(mtls, context, "dev-r", session=session)
        assert again.resumed, "the Python client did not resume"
        session = again.session
        again.close()
    for n in range(2):
        clients.append(TlsClient(oneway, tls_context(pki), f"oneway-{n}"))
    foreign = Pki(tmp_path / "foreign", ca_name="another CA")
    cert, key, _ = foreign.client("intruder")
    assert refused(mtls, tls_context(pki, cert, key), "intruder")
    return clients


def test_handshake_histogram_counts_every_connection(pki, start_fleetmq, tmp_path):
    broker = start_fleetmq(pki.listeners_toml())
    clients = make_connections(pki, broker, tmp_path)
    eventually(lambda: get_json(broker.http + "/api/handshakes/summary")["failures_total"] == 1
               and sum(g["count"] for g in get_json(broker.http + "/api/handshakes/summary")["groups"]) == 8,
               "the registry to see every handshake")
    families = scrape(broker)
    by_name = {f.name: f for f in families}
    assert by_name["fleetmq_tls_handshake_seconds"].type == "histogram"
    assert by_name["fleetmq_connect_to_connack_seconds"].type == "histogram"
    assert by_name["fleetmq_connects"].type == "counter"
    assert by_name["fleetmq_connections"].type == "gauge"

    count = "fleetmq_tls_handshake_seconds_count"
    assert value(families, count, listener="mtls", auth="mutual", resumed="false") == 4
    assert value(families, count, listener="mtls", auth="mutual", resumed="true") == 2
    assert value(families, count, listener="oneway", auth="one_way", resumed="false") == 2
    assert value(families, count, listener="oneway", auth="one_way", resumed="true") == 0
    assert value(families, count) == 8, "one observation per connection made"
    # Buckets are cumulative, end at +Inf with the count, and the sum is the
    # total time of the handshakes (all faster than 10 s here).
    for labels, total in samples(families, count):
        key = {k: labels[k] for k in ("listener", "auth", "resumed")}
        buckets = sorted(((float(l["le"]), v) for l, v in samples(families, "fleetmq_tls_handshake_seconds_bucket")
                          if all(l[k] == w for k, w in key.items())))
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets
        assert buckets[-1] == (float("inf"), total)
        assert value(families, "fleetmq_tls_handshake_seconds_bucket", le="10", **key) == total
        seconds = value(families, "fleetmq_tls_handshake_seconds_sum", **key)
        assert (seconds > 0) == (total > 0), (key, seconds, total)

    # Where each handshake went (decision 0142): every part once per handshake.
    parts = "fleetmq_tls_handshake_part_seconds_count"
    for part in ("broker_flight", "client_wait", "network_rtt", "device", "broker_verify"):
        assert value(families, parts, part=part) == 8, part
    assert value(families, parts, part="device", listener="mtls", auth="mutual", resumed="true") == 2
    assert value(families, parts, part="device", auth="one_way", key_type="none") == 2
    summary = get_json(broker.http + "/api/handshakes/summary")
    mutual = next(g for g in summary["groups"] if g["auth"] == "mutual" and not g["resumed"])
    assert mutual["parts_p50_ms"]["device"] is not None, mutual
    assert summary["comparison"]["text"].startswith("Mutual TLS costs your devices"), summary["comparison"]
    assert summary["comparison"]["resumption_saves_ms"] is not None, summary["comparison"]
    by_key = {g["name"]: g for g in summary["mutual_full_by_key_type"]}
    assert sum(g["count"] for g in by_key.values()) == 4, by_key
    assert all(name.startswith(("ECDSA", "RSA")) for name in by_key), by_key

    assert value(families, "fleetmq_connects_total") == 8
    assert value(families, "fleetmq_connects_total", listener="mtls", auth="mutual") == 6
    assert value(families, "fleetmq_connect_to_connack_seconds_count") == 8
    assert value(families, "fleetmq_tls_handshake_failures_total", listener="mtls", reason="unknown_ca") == 1
    assert value(families, "fleetmq_tls_handshake_failures_total") == 1
    assert value(families, "fleetmq_connections", listener="mtls") == 3
    assert value(families, "fleetmq_connections", listener="oneway") == 2
    assert value(families, "fleetmq_connections", listener="plain") == 0
    assert value(families, "fleetmq_acl_denied_total", action="publish") == 0
    expiry = value(families, "fleetmq_client_cert_expiry_seconds")
    assert 363 * 86400 < expiry <= 366 * 86400, expiry
    assert value(families, "process_resident_memory_bytes") > 0
    for client in clients:
        client.close()


def metric_names_in(expression):
    """Metric names in a PromQL expression (identifiers followed by a
    selector or a range, or standing alone before an operator)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    words = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", without_labels))
    return {w for w in words if w.startswith(("fleetmq_", "process_")) or w == "up"}


def exported_names(broker):
    return {s.name for f in scrape(broker) for s in f.samples}


def test_grafana_and_alerts_use_only_exported_metrics(pki, start_fleetmq, tmp_path):
    broker = start_fleetmq(pki.listeners_toml())
    clients = make_connections(pki, broker, tmp_path)
    eventually(lambda: get_json(broker.http + "/api/handshakes/summary")["failures_total"] == 1,
               "the refused handshake")
    exported = exported_names(broker)

    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["title"] == "fleetmq" and dashboard["uid"]
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    expressions += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(expressions) >= 15
    used = set().union(*(metric_names_in(e) for e in expressions))
    for needed in ("fleetmq_connections", "fleetmq_connects_total", "fleetmq_tls_handshake_seconds_bucket",
                   "fleetmq_tls_handshake_failures_total", "fleetmq_messages_received_total",
                   "fleetmq_messages_sent_total", "fleetmq_acl_denied_total"):
        assert needed in used, f"the dashboard does not show {needed}"
    assert used - exported == set(), f"Grafana uses metrics fleetmq does not export: {used - exported}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"

    rules = ALERTS.read_text()
    alert_exprs = re.findall(r"^\s+expr:\s*(.+)$", rules, re.MULTILINE)
    assert len(alert_exprs) >= 4
    alert_metrics = set().union(*(metric_names_in(e) for e in alert_exprs)) - {"up"}
    assert {"fleetmq_client_cert_expiry_seconds", "fleetmq_tls_handshake_failures_total"} <= alert_metrics
    # The certificate-lifecycle metrics exist where provisioning is on
    # (decision 0153): a second broker with it on exports them.
    lab_pki = tmp_path / "lab-pki"
    subprocess.run([binary(), "certs", "init", "--dir", str(lab_pki)], check=True,
                   capture_output=True)
    provisioning = start_fleetmq(f'[provision]\nenabled = true\npki_dir = "{lab_pki}"\n')
    lifecycle = {"fleetmq_certificates_expiring", "fleetmq_provision_pending"}
    # The worker sets them right after it starts.
    eventually(lambda: lifecycle <= exported_names(provisioning), "the lifecycle metrics")
    exported |= exported_names(provisioning)
    assert alert_metrics - exported == set(), alert_metrics - exported
    for client in clients:
        client.close()


def test_promtool_accepts_and_tests_the_alert_rules():
    check = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
