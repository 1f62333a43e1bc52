"""`make bench --quick` runs end to end against the real server and writes its results (figures not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_results(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "tests.bench.run", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "| server: connections x load |" in run.stdout  # the Markdown table for the README

    results = json.loads((tmp_path / "bench-results.json").read_text())
    assert {"date", "mode", "machine", "settings", "units", "engine", "server", "ratios", "targets",
            "cluster"} <= set(results)
    assert results["mode"] == "quick" and results["machine"]["cores"] >= 1
    by_engine = results["engine"]["latency_by_engine"]
    assert set(by_engine) == {"rules, litert", "rules, keras", "v3, litert", "v3, keras"}
    for latency in (results["engine"]["latency"], *by_engine.values()):
        assert set(latency) == {"320x240", "1280x720", "4000x3000"}
        assert {"decode_ms", "preprocess_ms", "networks_ms", "total_ms", "total_min_ms", "prepare_cpu_ms"} <= set(
            latency["320x240"])
    for kind in ("rules", "v3"):  # both backends read the same
        assert by_engine[f"{kind}, litert"]["320x240"]["read"] == by_engine[f"{kind}, keras"]["320x240"]["read"]
    assert results["engine"]["throughput"]["fps"] > 0
    if results["engine"]["real_frames"]:  # frames cut from photos-dev's photos, where the shared data is
        for frames in results["engine"]["real_frames"].values():
            assert frames["frames"] == 40 and frames["max_ms"] >= frames["median_ms"] > 0
    for key in ("litert_per_digit_ms", "keras_per_digit_ms", "predict_per_digit_ms"):
        assert set(results["engine"]["model"][key]) == {"1", "8", "32", "64"}

    rows = results["server"]["rows"]
    assert {r["kind"] for r in rows} == {"live", "photo"}
    for row in rows:
        assert {"connections", "fps", "throughput_fps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "sent",
                "answered", "skipped", "errors", "missing", "batch", "server_cpu_percent", "server_rss_mb"} <= set(row)
        assert row["answered"] > 0, row
    assert {"baseline_rss_mb", "rss_after_mb", "bound_mb", "within_bound"} <= set(results["server"]["memory"])
    assert {"server_over_in_process", "p99_at_streams_over_p50_at_1",
            "batch32_over_batch1_per_digit_throughput"} <= set(results["ratios"])
    assert all({"value", "goal", "met"} <= set(t) for t in results["targets"].values())
    assert (tmp_path / "bench-results.png").read_bytes().startswith(b"\x89PNG")
    if "skipped" not in results["cluster"]:  # without redis-server or haproxy the section says why instead
        cluster = results["cluster"]
        assert {r["label"] for r in cluster["rows"]} == {"1 worker, Redis", "2 workers, Redis", "2 workers, no Redis"}
        assert all(r["answered"] > 0 and r["frames_per_cpu_s"] for r in cluster["rows"])
        assert cluster["history_write"]["p99_ms"] > 0 and cluster["history_write"]["memory_usage_bytes"] > 0
        assert cluster["failover"]["clients_dropped"] > 0 and cluster["failover"]["answered"] > 0
        assert "| 2 workers, Redis x" in run.stdout
