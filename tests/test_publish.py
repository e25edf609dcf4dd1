"""Crash-safe publishing: a kill at any step leaves `latest` on a complete report, and the
next run recovers or cleans up what the killed one left.

A real kill is simulated in a child process: every file-system call of the publishing
step (rename, symlink, delete) is counted and the process ends with ``os._exit`` (no
cleanup, no ``finally``) right before the k-th one, for every k.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from funnel_models.reports import publish

DATE, OTHER = "2026-01-31", "2026-02-28"


def staged(folder: Path, tag: str) -> Path:
    """A complete report folder in the report's staging area."""
    tmp = publish.staging_folder(folder, DATE)
    (tmp / "summary.json").write_text(json.dumps({"tag": tag}))
    (tmp / "monthly_report.html").write_text(f"<p>{tag}</p>")
    return tmp


def tag_of(link: Path) -> str:
    return json.loads((link / "summary.json").read_text())["tag"]


_CHILD = textwrap.dedent("""
    import json, os, shutil, sys
    from pathlib import Path
    from funnel_models.reports import publish
    folder, date, k = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    tmp = publish.staging_folder(folder, date)
    (tmp / "summary.json").write_text(json.dumps({"tag": "new"}))
    (tmp / "monthly_report.html").write_text("<p>new</p>")
    calls = [0]
    def counted(fn):
        def wrapper(*a, **kw):
            calls[0] += 1
            if calls[0] == k:
                os._exit(9)
            return fn(*a, **kw)
        return wrapper
    os.replace = counted(os.replace)
    os.symlink = counted(os.symlink)
    shutil.rmtree = counted(shutil.rmtree)
    publish.publish(folder, tmp, date)
    print("STEPS", calls[0])
""")


def run_child(folder: Path, date: str, k: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, str(folder), date, str(k)], capture_output=True, text=True,
                          timeout=120)


def leftovers(folder: Path) -> list[str]:
    names = [p.name for p in folder.iterdir()]
    return sorted(n for n in names if n.startswith((".tmp-", ".link-", ".old-")))


@pytest.mark.parametrize("date", [DATE, OTHER], ids=["same-date rerun", "next date"])
def test_a_kill_at_every_step_leaves_latest_on_a_complete_report(tmp_path: Path, date: str) -> None:
    folder = tmp_path / "monthly_report"
    publish.publish(folder, staged(folder, "old"), DATE)
    done = run_child(folder, date, 10_000)
    assert done.returncode == 0, done.stderr
    steps = int(done.stdout.split()[-1])
    assert steps >= 5                                   # rename, 2 x (symlink + rename), delete
    for k in range(1, steps + 1):
        case = tmp_path / f"k{k}"
        publish.publish(case, staged(case, "old"), DATE)
        r = run_child(case, date, k)
        assert r.returncode == 9, (k, r.stderr)
        latest = case / "latest"
        assert latest.is_symlink() and (latest / "summary.json").is_file(), k
        assert tag_of(latest) in ("old", "new")
        assert (case / DATE / "summary.json").is_file(), k
        # the next run recovers: everything published, nothing left behind
        publish.publish(case, staged(case, "next"), date)
        assert tag_of(case / "latest") == "next" and os.readlink(case / "latest") == date
        assert leftovers(case) == []
        versions = sorted(p.name for p in case.glob(".r-*"))
        linked = {os.readlink(case / d) for d in {DATE, date}}
        assert set(versions) == linked, (k, versions, linked)


def test_recover_links_a_date_left_without_its_link(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    publish.publish(folder, staged(folder, "old"), DATE)
    version = os.readlink(folder / DATE)
    (folder / DATE).unlink()                             # a kill between rename and link
    with publish.report_lock(folder):
        publish.recover(folder)
    assert os.readlink(folder / DATE) == version and tag_of(folder / "latest") == "old"


def test_an_earlier_release_s_stranded_folders_are_recovered(tmp_path: Path) -> None:
    """The first release renamed the good report to .old-<date>-* and was killed before
    renaming the new one into place: latest pointed at a missing folder."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    good = folder / f".old-{DATE}-1a2b3c4d"
    good.mkdir()
    (good / "summary.json").write_text(json.dumps({"tag": "stranded"}))
    os.symlink(DATE, folder / "latest")
    assert not (folder / "latest").exists()
    with publish.report_lock(folder):
        publish.recover(folder)
    assert tag_of(folder / "latest") == "stranded" and leftovers(folder) == []


def test_a_real_date_folder_of_an_earlier_release_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "legacy2"
    (folder / DATE).mkdir(parents=True)
    (folder / DATE / "summary.json").write_text(json.dumps({"tag": "legacy"}))
    os.symlink(DATE, folder / "latest")
    publish.publish(folder, staged(folder, "new"), DATE)
    assert (folder / DATE).is_symlink() and tag_of(folder / "latest") == "new"
    assert len(list(folder.glob(".r-*"))) == 1


def test_temporary_folders_of_live_processes_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    mine = publish.staging_folder(folder, DATE)            # this process is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".tmp-{DATE}-{dead.pid}-deadbeef"
    stale.mkdir()
    with publish.report_lock(folder):
        publish.recover(folder)
    assert mine.is_dir() and not stale.exists()


def test_failed_runs_replace_the_older_failed_folder(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    publish.publish(folder, staged(folder, "good"), DATE)
    for tag in ("first", "second"):
        tmp = publish.staging_folder(folder, DATE)
        (tmp / "error.txt").write_text(tag)
        publish.publish_failed(folder, tmp, DATE)
    assert (folder / f"{DATE}.failed" / "error.txt").read_text() == "second"
    assert tag_of(folder / "latest") == "good" and leftovers(folder) == []
