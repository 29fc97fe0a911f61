"""Plugin authors get told: a failing registration hook and a missing @hookimpl name the plugin;
FEATURIZER_PLUGINS registers a plugin from a folder without installing it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from featurizer import PluginLoadError, hookimpl
from featurizer._plugins import Plugins, make_plugin_manager, reset_plugins
from featurizer.cli import main


def _failing() -> list[object]:
    raise RuntimeError("cannot import the exchange table")


def test_an_exception_in_a_registration_hook_names_the_plugin() -> None:
    broken = SimpleNamespace(featurizer_register_emitters=hookimpl(_failing))
    pm = make_plugin_manager(environ={}, extra_plugins=[broken])
    name = pm.get_name(broken)
    with pytest.raises(PluginLoadError) as raised:
        Plugins(pm).emitters()
    assert str(raised.value) == (
        f"plugin {name!r} failed in featurizer_register_emitters: RuntimeError: cannot import "
        f"the exchange table"
    )
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_a_hook_without_hookimpl_is_an_error() -> None:
    def featurizer_register_emitters() -> list[object]:
        return []

    forgot = SimpleNamespace(featurizer_register_emitters=featurizer_register_emitters)
    with pytest.raises(PluginLoadError, match=r"featurizer_register_emitters\(\) is not decorated"):
        make_plugin_manager(environ={}, extra_plugins=[forgot])
    unrelated = SimpleNamespace(featurizer_helper=lambda: None, other=lambda: None)
    make_plugin_manager(environ={}, extra_plugins=[unrelated])  # not a hook name: fine


PLUGIN = """
from featurizer import hookimpl
from featurizer_features import MidPrice


class FolderMid(MidPrice):
    name = "folder_mid"


@hookimpl
def featurizer_register_feature_definitions():
    return [FolderMid]
"""


def test_a_plugin_from_a_folder_without_installing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "myplugin"
    folder.mkdir()
    (folder / "folder_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("FEATURIZER_PLUGINS", "folder_plugin")
    reset_plugins()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "folder_plugin  (<FEATURIZER_PLUGINS, not installed> )" in out
    assert "featurizer_register_feature_definitions" in out
    monkeypatch.setenv("FEATURIZER_PLUGINS", "no_such_plugin_module")
    reset_plugins()
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "failed to load plugin module 'no_such_plugin_module' named in FEATURIZER_PLUGINS" in err
    assert "is its folder on PYTHONPATH?" in err and err.count("\n") == 1
