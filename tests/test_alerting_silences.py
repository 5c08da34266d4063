"""Silences: expiry, matching, and the file the CLI writes being picked up by the running collector."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.alerting.silences import SilenceError, SilenceStore

NOW = 1_764_486_840.0


def test_cli_silence_reaches_the_running_store(tmp_path: Path) -> None:
    path = tmp_path / "silences.json"
    collector = SilenceStore.load(path)
    assert collector.active(NOW) == []
    cli = SilenceStore.load(path)
    silence = cli.add(NOW, NOW + 3600, sites=["vannvag"], comment="bytter radiolink", author="kari")
    assert [s.id for s in collector.active(NOW)] == [silence.id]
    assert collector.muting(NOW, "vannvag", "silent", "agent_silent", "pc1") == silence
    assert collector.muting(NOW, "radhus", "silent", "agent_silent", "srv") is None
    assert cli.remove(silence.id) is True
    assert collector.active(NOW) == []
    assert cli.remove(silence.id) is False
    cli.add(NOW, NOW + 60, subjects=["pc1"])
    assert collector.muting(NOW + 60, "vannvag", "silent", "agent_silent", "pc1") is None  # expired
    assert cli.active(NOW) == []  # and dropped from the file


def test_rules_match_by_id_or_kind(tmp_path: Path) -> None:
    store = SilenceStore.load(tmp_path / "s.json")
    store.add(NOW, NOW + 60, rules=["host_disk"])
    assert store.muting(NOW, "radhus", "disk-full", "host_disk", "srv:/") is not None
    assert store.muting(NOW, "radhus", "cpu", "host_cpu", "srv") is None


def test_bad_silences_are_refused(tmp_path: Path) -> None:
    store = SilenceStore.load(tmp_path / "s.json")
    with pytest.raises(SilenceError, match="expiry in the future"):
        store.add(NOW, NOW, sites=["radhus"])
    with pytest.raises(SilenceError, match="at least one of sites, rules or subjects"):
        store.add(NOW, NOW + 60)


def test_a_broken_file_keeps_the_known_silences(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = SilenceStore.load(path)
    store.add(NOW, NOW + 60, subjects=["srv"])
    path.write_text("[{not json", encoding="utf-8")
    assert len(store.active(NOW)) == 1
