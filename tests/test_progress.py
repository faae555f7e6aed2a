"""The progress record of a long run (``model/progress.py``): what the dashboard's "still being
made" line and the About page's provisional list are drawn from."""

from __future__ import annotations

import json

import pytest

from model.progress import (PROGRESS_FILE, Progress, Step, progress_line, provisional, read_progress,
                            remaining_seconds)


def test_plan_states_line_and_estimate(tmp_path):
    p = Progress(tmp_path, [Step("train pscnet", 120, "pscnet"), Step("archive pscnet", 60, "pscnet"),
                            Step("train unet", 90, "unet"), Step("validate", 30, "validation")])
    rec = read_progress(tmp_path)
    assert [s["state"] for s in rec["steps"]] == ["queued"] * 4
    assert remaining_seconds(rec) == 300
    p.start("train pscnet")
    rec = read_progress(tmp_path)
    t0 = rec["steps"][0]["started"]
    # 50 s into a step estimated at 120 s: 70 s of it left, plus the queued 180 s
    assert remaining_seconds(rec, now=t0 + 50) == pytest.approx(250)
    line = progress_line(rec, now=t0 + 50)
    assert line == "Still being made: 0 of 4 steps done; now train pscnet (50 s); about 4 min left."
    assert provisional(rec) == ["pscnet", "unet", "validation"]
    p.done("train pscnet")
    p.start("archive pscnet")
    p.done("archive pscnet")
    p.start("train unet")
    p.done("train unet", "failed", "out of memory")
    rec = read_progress(tmp_path)
    assert rec["steps"][0]["seconds"] is not None
    assert provisional(rec) == ["validation"]
    assert "2 of 4 steps done" in progress_line(rec) and "failed: train unet" in progress_line(rec)
    p.finish()
    assert progress_line(read_progress(tmp_path)) == "" and provisional(read_progress(tmp_path)) == []


def test_resume_from_another_process_and_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no progress record"):
        Progress.resume(tmp_path)
    Progress(tmp_path, [Step("a", 1), Step("b", 1)])
    q = Progress.resume(tmp_path)
    q.start("b")
    assert read_progress(tmp_path)["steps"][1]["state"] == "running"
    with pytest.raises(KeyError, match="no step 'c'"):
        q.start("c")
    with pytest.raises(ValueError, match="state must be one of"):
        q.done("a", "finished")
    with pytest.raises(ValueError, match="unique"):
        Progress(tmp_path, [Step("a"), Step("a")])


def test_torn_record_reads_as_absent_and_stale_run_is_flagged(tmp_path):
    (tmp_path / PROGRESS_FILE).write_text('{"steps": [')
    assert read_progress(tmp_path) is None and progress_line(None) == ""
    Progress(tmp_path, [Step("a", 10)])
    rec = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert "the run may have stopped" in progress_line(rec, now=rec["updated"] + 7200)
    assert "the run may have stopped" not in progress_line(rec, now=rec["updated"] + 60)


def test_an_archive_step_of_several_models_makes_each_of_them_provisional(tmp_path):
    Progress(tmp_path, [Step("train pscnet", 60, "pscnet"),
                        Step("archive pscnet, smap_bilinear", 60, "pscnet, smap_bilinear"),
                        Step("validate", 30, "validation")])
    assert provisional(read_progress(tmp_path)) == ["pscnet", "smap_bilinear", "validation"]
