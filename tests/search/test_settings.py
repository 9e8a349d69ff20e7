"""The embedding settings: checked at start-up with messages naming the variable."""
from __future__ import annotations

import pytest

from app import embeddings
from app.settings import Settings, SettingsError


@pytest.mark.parametrize(("env", "message"), [
    ({"PROMPTSTUDIO_EMBEDDING_PROVIDER": "magic"}, "PROMPTSTUDIO_EMBEDDING_PROVIDER='magic' is not one of builtin, "
                                                   "openai"),
    ({"PROMPTSTUDIO_EMBEDDING_MODEL": "gpt-embed"}, "PROMPTSTUDIO_EMBEDDING_MODEL='gpt-embed' is not a built-in model"),
    ({"PROMPTSTUDIO_EMBEDDING_DIMENSIONS": "zero"}, "PROMPTSTUDIO_EMBEDDING_DIMENSIONS='zero' is not an integer"),
    ({"PROMPTSTUDIO_EMBEDDING_THREADS": "0"}, "PROMPTSTUDIO_EMBEDDING_THREADS=0 is below the minimum 1"),
])
def test_bad_values_are_refused(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env()


def test_defaults_and_model_tags(monkeypatch):
    s = Settings.from_env()
    assert (s.embedding_provider, s.embedding_model) == ("builtin", None)
    assert embeddings.model_tag(s) == "builtin:wordllama"
    monkeypatch.setenv("PROMPTSTUDIO_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("PROMPTSTUDIO_EMBEDDING_MODEL", "nomic-embed-text")
    monkeypatch.setenv("PROMPTSTUDIO_EMBEDDING_DIMENSIONS", "512")
    s = Settings.from_env()
    assert embeddings.model_tag(s) == "openai:nomic-embed-text@512"  # shortened vectors are another model
